"""How one host's CPU cores are shared between the local LLM server and the runner's experiment slots.

The rule, chosen by `make bench-contention` (the README has its table): the LLM server is pinned to cores of
its own and runs one thread per core; experiment slots get the other cores, split evenly, and every job is
pinned to its slot's cores (a cpuset cgroup where the controller exists, CPU affinity always) with its
thread pools (OpenMP, BLAS, joblib, PyTorch) sized to them.

Why: llama.cpp's threads, like OpenMP's, wait for each other at every step by spinning. When the threads of
the LLM and of a job outnumber the cores, a thread that loses its core stalls the others of its group, and
each step then costs a scheduler time slice: measured on 2 cores, the LLM fell from 40 to 0.4 tokens/s
beside one scikit-learn job, and the job starved too. Lending the LLM's cores to jobs at idle priority was
measured as well: the LLM kept its speed, but a job with one thread on a lent core stalled whenever the LLM
took it back (0.01-0.04 of its speed), so nothing is lent.

A host without a local LLM (compose with vLLM on a GPU, or OpenAI) gives every core to experiments; a host
whose every core is the LLM's (one core) runs jobs on them at idle priority, taking turns with it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, Field

# Environment variables that size the thread pools of the libraries experiments use.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    # joblib/loky: n_jobs=-1 means this many workers.
    "LOKY_MAX_CPU_COUNT",
    # Read by the PyTorch template (torch.set_num_threads), and by any job code that sizes its own pools.
    "JOB_CPU_THREADS",
)


class CpuSettings(BaseModel):
    # Cores reserved for the local LLM server on this host: -1 picks a quarter of the cores (at least 1)
    # when a local LLM server runs here, none otherwise; 0 reserves none.
    llm_cores: int = Field(default=-1, ge=-1, le=1024)
    # Cores the plan may use, e.g. [0, 1, 2, 3]; empty: those this process may run on.
    cores: list[int] = Field(default_factory=list)


@dataclass(frozen=True)
class SlotCpus:
    """Where one experiment runs: the cores it is pinned to, its thread count, and whether it runs at idle
    priority (when it shares the LLM's cores, on a host with no others)."""

    cores: tuple[int, ...]
    threads: int
    idle_priority: bool = False

    def env(self) -> dict[str, str]:
        return dict.fromkeys(THREAD_VARIABLES, str(self.threads))

    def capped(self, cpu_millis: int) -> SlotCpus:
        """The same cores, with no more threads than a CPU limit of `cpu_millis` can keep busy."""
        return SlotCpus(self.cores, max(1, min(self.threads, whole_cpus(cpu_millis))), self.idle_priority)

    def cpuset(self) -> str:
        return ",".join(str(core) for core in self.cores)


@dataclass(frozen=True)
class CpuPlan:
    # Cores reserved for the local LLM server (empty: no local LLM on this host).
    llm: tuple[int, ...]
    # Cores for experiment slots.
    experiments: tuple[int, ...]

    def slot(self, index: int, slots: int) -> SlotCpus:
        """The cores of experiment slot `index` of `slots`: an even share of the experiment cores (slots
        share cores when there are fewer cores than slots); on a host whose every core is the LLM's, a
        share of those at idle priority."""
        if slots < 1 or not 0 <= index < slots:
            raise ValueError(f"slot {index} of {slots} does not exist")
        own = _share(self.experiments, index, slots)
        if own:
            return SlotCpus(own, len(own))
        borrowed = _share(self.llm, index, slots)
        return SlotCpus(borrowed, len(borrowed), idle_priority=True)


def _share(cores: Sequence[int], index: int, slots: int) -> tuple[int, ...]:
    """Slot `index`'s even part of `cores`; with fewer cores than slots, one core shared round-robin."""
    if not cores:
        return ()
    if len(cores) < slots:
        return (cores[index % len(cores)],)
    size = len(cores) // slots
    start = index * size
    end = len(cores) if index == slots - 1 else start + size
    return tuple(cores[start:end])


def whole_cpus(cpu_millis: int) -> int:
    """A CPU limit in thousandths of a core, rounded up to whole cores."""
    return max(1, -(-cpu_millis // 1000))


def available_cores() -> tuple[int, ...]:
    """The cores this process may run on (its affinity mask, which respects a container's cpuset)."""
    try:
        return tuple(sorted(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return tuple(range(os.cpu_count() or 1))


def plan_cpus(settings: CpuSettings, *, local_llm: bool) -> CpuPlan:
    """The plan for this host. `local_llm`: whether a local LLM server runs beside the experiments."""
    cores = tuple(settings.cores) or available_cores()
    automatic = max(1, len(cores) // 4) if local_llm else 0
    wanted = min(automatic if settings.llm_cores < 0 else settings.llm_cores, len(cores))
    llm, experiments = cores[:wanted], cores[wanted:]
    return CpuPlan(llm, experiments)


def pin_command(cores: Sequence[int], *, idle_priority: bool = False) -> list[str]:
    """A command prefix that runs a program on `cores` (and at idle priority): util-linux's taskset and
    chrt, so the setting is in place before the program starts its first thread."""
    prefix = ["taskset", "--cpu-list", ",".join(str(core) for core in cores)]
    if idle_priority:
        prefix += ["chrt", "--idle", "0"]
    return prefix
