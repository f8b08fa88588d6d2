"""Sandboxes that run untrusted experiment code: one interface, three backends (local, docker, kubernetes)."""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
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
DEFAULT_JOB_UIDS: tuple[int, int] = RunnerSettings.model_fields["job_uids"].default
# Above it: systemd's "foreign" range and the uids that 32-bit signed tools get wrong.
MAX_JOB_UID = 2_147_352_575


class JobIdentities:
    """The uid (and gid, the same number) each running job gets. A root runner gives each job one of its
    own from `uids` (first, last), skipping any that names a host account, so no host user and no other job
    owns the job's process, its files or its /proc entries; the job's work dir is made that uid's, 0700,
    and nothing of that uid outlives the job (its cgroup or container is killed). An unprivileged runner
    (compose and k8s run it as uid 10001 with no capabilities) cannot give files away: its jobs run as
    itself and have no more than it has."""

    def __init__(self, uids: tuple[int, int] = DEFAULT_JOB_UIDS) -> None:
        first, last = uids
        holds_nobody = first <= NOBODY + 1 and last >= NOBODY  # 65534, or 65535 (the "no uid" of 16 bits)
        if not 1000 <= first <= last <= MAX_JOB_UID or holds_nobody:
            raise ValueError(
                f"job uids must be a range within 1000..{MAX_JOB_UID} without {NOBODY} (nobody) and "
                f"{NOBODY + 1}, got {first}..{last}"
            )
        self.first, self.last = first, last
        self._in_use: set[int] = set()
        self._lock = threading.Lock()

    def lease(self, job_id: str) -> tuple[int, int]:
        """The job's (uid, gid): the runner's own when it is not root, else a free one of the range (the
        same job lands on the same uid while that one is free)."""
        if os.geteuid() != 0:
            return os.geteuid(), os.getegid()
        size = self.last - self.first + 1
        start = int(hashlib.sha256(job_id.encode()).hexdigest(), 16) % size
        with self._lock:
            for step in range(size):
                uid = self.first + (start + step) % size
                if uid not in self._in_use and not _host_account(uid):
                    self._in_use.add(uid)
                    return uid, uid
        raise SandboxUnavailable(f"every job uid in {self.first}..{self.last} is in use or a host account")

    def release(self, identity: tuple[int, int]) -> None:
        with self._lock:
            self._in_use.discard(identity[0])


def _host_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        try:
            grp.getgrgid(uid)
        except KeyError:
            return False
    return True


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
    # The (uid, gid) the job runs as (JobIdentities); unset, the sandbox refuses to run it as root.
    identity: tuple[int, int] | None = None

    def owner(self) -> tuple[int, int]:
        """Who the job runs as on the host, never root."""
        if self.identity is None or self.identity[0] == 0:
            if os.geteuid() != 0:
                return os.geteuid(), os.getegid()
            raise SandboxUnavailable("a root runner's job needs an identity of its own (JobIdentities)")
        return self.identity

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
