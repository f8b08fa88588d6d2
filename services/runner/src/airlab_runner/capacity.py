"""What one job may ask for on this runner: the host's cores and memory, and the longest wall-clock limit
(runner.max_job_wall_seconds)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from airlab.cpus import available_cores
from airlab.errors import InvalidArgument
from airlab.settings import RunnerSettings
from airlab.v1 import runner_pb2


@dataclass(frozen=True)
class Capacity:
    cores: int
    memory_mib: int
    # The longest wall-clock limit a job may ask for (runner.max_job_wall_seconds).
    wall_seconds: int

    @classmethod
    def of_host(cls, wall_seconds: int | None = None) -> Capacity:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") >> 20
        if wall_seconds is None:
            wall_seconds = RunnerSettings.model_fields["max_job_wall_seconds"].default
        return cls(len(available_cores()), memory, wall_seconds)


def check_capacity(resources: runner_pb2.Resources, capacity: Capacity, *, on_host: bool = True) -> None:
    """Refuse, naming the field, a job that asks for more time than a job may have here, or (when it runs
    on this host) more cores or memory than the host has."""
    if on_host and resources.cpu_millis > capacity.cores * 1000:
        raise InvalidArgument(
            "spec.resources.cpu_millis",
            f"{resources.cpu_millis} asked for; this host has {capacity.cores} core(s)",
        )
    if on_host and resources.memory_mib > capacity.memory_mib:
        raise InvalidArgument(
            "spec.resources.memory_mib",
            f"{resources.memory_mib} MiB asked for; this host has {capacity.memory_mib} MiB",
        )
    if resources.wall_seconds > capacity.wall_seconds:
        raise InvalidArgument(
            "spec.resources.wall_seconds",
            f"{resources.wall_seconds} s asked for; a job may have at most {capacity.wall_seconds} s here",
        )
