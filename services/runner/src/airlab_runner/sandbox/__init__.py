"""Sandboxes that run untrusted experiment code: one interface, three backends (local, docker, kubernetes)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from airlab.cpus import SlotCpus
from airlab.extras import require
from airlab.settings import RunnerSettings

Outcome = Literal["exited", "timeout", "oom", "cancelled", "error"]
# Where the job's work dir appears inside every sandbox (and its current directory).
WORK_MOUNT = "/airlab/work"


NOBODY = 65534


def job_identity() -> tuple[int, int]:
    """The uid and gid a container job runs as: nobody when the runner is root (it hands the job its work
    dir), else the runner's own. An unprivileged runner (uid 10001, no capabilities, in compose and k8s)
    cannot give files away, and its jobs then have no more than it has: only their own work dir."""
    if os.geteuid() == 0:
        return NOBODY, NOBODY
    return os.geteuid(), os.getegid()


class SandboxUnavailable(RuntimeError):
    """The backend cannot run jobs here (a missing tool, daemon or permission): said at startup."""


@dataclass
class Limits:
    cpu_millis: int = 1000
    memory_mib: int = 1024
    wall_seconds: int = 3600
    pids: int = 256
    # Largest file the job may write, and its open files.
    file_mib: int = 1024
    open_files: int = 1024


@dataclass
class SandboxJob:
    job_id: str
    # Host directory holding the code; the job's only writable place, mounted at WORK_MOUNT.
    workdir: Path
    # Path of the script inside workdir.
    entrypoint: str
    limits: Limits = field(default_factory=Limits)
    # Only these variables reach the job.
    env: dict[str, str] = field(default_factory=dict)
    # (host source, absolute target) mounted read-only.
    datasets: list[tuple[str, str]] = field(default_factory=list)
    # GPUs leased on this host (local, docker), or only counted (kubernetes: the cluster places them).
    gpu_ids: list[str] = field(default_factory=list)
    gpu_count: int = 0
    image: str = ""
    # The cores the job is pinned to and its thread-pool size (None: the backend's whole share).
    cpus: SlotCpus | None = None

    def job_env(self) -> dict[str, str]:
        """The job's variables, with its thread pools sized to its cores."""
        return {**self.env, **(self.cpus.env() if self.cpus else {})}


@dataclass
class SandboxResult:
    outcome: Outcome
    exit_code: int | None
    detail: str = ""
    duration_seconds: float = 0.0


LineSink = Callable[[str], None]


def ended(
    outcome: Outcome, exit_code: int | None, oom: bool, limits: Limits, duration: float
) -> SandboxResult:
    """How a run ended, said the same way by every backend."""
    if outcome == "timeout":
        return SandboxResult(
            "timeout", None, f"killed at the wall-clock limit of {limits.wall_seconds} s", duration
        )
    if outcome == "cancelled":
        return SandboxResult("cancelled", None, "cancelled", duration)
    if oom:
        return SandboxResult(
            "oom", exit_code, f"killed at the memory limit of {limits.memory_mib} MiB", duration
        )
    return SandboxResult("exited", exit_code, "", duration)


class Sandbox(Protocol):
    name: str

    def check(self) -> None:
        """Raise SandboxUnavailable with the reason if this backend cannot run jobs on this host."""

    def run(self, job: SandboxJob, on_line: LineSink, cancel: threading.Event) -> SandboxResult:
        """Run the job to its end (or its wall limit, or `cancel`), passing each output line to `on_line`;
        the job's files are in job.workdir afterwards."""

    def cleanup(self, job_id: str) -> None:
        """Remove whatever a run of this job left behind when the runner died during it (processes,
        containers, cluster Jobs)."""


def sandbox_for(backend: str, settings: RunnerSettings, work_root: Path) -> Sandbox:
    """The sandbox of a backend, configured from the runner's settings (the one place that picks it)."""
    if backend == "local":
        from airlab_runner.sandbox.local import LocalSandbox

        return LocalSandbox(python=settings.python or None, cgroup_parent=settings.cgroup_parent)
    if backend == "docker":
        require("docker", "docker", "the docker sandbox")
        from airlab_runner.sandbox.docker import DockerSandbox

        return DockerSandbox(base_url=settings.docker_url, image=settings.docker_image)
    if backend == "kubernetes":
        require("kubernetes", "k8s", "the kubernetes sandbox")
        from airlab_runner.sandbox.kubernetes import KubernetesSandbox

        return KubernetesSandbox(
            namespace=settings.kubernetes_namespace,
            image=settings.kubernetes_image,
            runs_claim=settings.kubernetes_runs_claim,
            runs_root=work_root,
        )
    raise SandboxUnavailable(f"unknown sandbox backend {backend!r}")
