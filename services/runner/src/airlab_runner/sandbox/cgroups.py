"""cgroup limits for the local sandbox, on cgroup v2 (a user's machine, usually) or v1 (these machines)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from airlab_runner.sandbox import Limits, SandboxUnavailable

ROOT = Path("/sys/fs/cgroup")
CPU_PERIOD_US = 100_000
V1_CONTROLLERS = ("memory", "cpu", "pids")
CPUSET = "cpuset"


def version(root: Path = ROOT) -> int:
    if (root / "cgroup.controllers").is_file():
        return 2
    if all((root / c / "cgroup.procs").is_file() for c in V1_CONTROLLERS):
        return 1
    raise SandboxUnavailable(
        f"no usable cgroups under {root}: the local sandbox needs the memory, cpu and pids controllers "
        "(cgroup v2, or v1 mounted per controller) and permission to create groups"
    )


class JobCgroup:
    """The cgroup(s) of one job: created with limits, joined by the job's first process, killed whole."""

    def __init__(
        self, parent: str, job_id: str, limits: Limits, root: Path = ROOT, cores: tuple[int, ...] = ()
    ) -> None:
        self.version = version(root)
        self.root = root
        if self.version == 2:
            self.dirs = [root / parent / job_id]
        else:
            self.dirs = [root / controller / parent / job_id for controller in V1_CONTROLLERS]
        self.parent = parent
        self.limits = limits
        self.cores = cores
        # Whether the job's cores are enforced by a cpuset cgroup (its CPU affinity is set regardless).
        self.cpuset = False

    def _pin_v1(self) -> None:
        """v1: a cpuset group under the parent, whose cpus and mems must be set before anything joins."""
        base = self.root / CPUSET
        if not self.cores or not (base / "cgroup.procs").is_file():
            return
        parent, group = base / self.parent, self._cpuset_v1()
        parent.mkdir(exist_ok=True)
        for name in ("cpuset.cpus", "cpuset.mems"):
            # A new cpuset group starts with empty cpus and mems (clone_children off): the root's are given.
            if not (parent / name).is_file() or not (parent / name).read_text().strip():
                (parent / name).write_text((base / name).read_text().strip())
        group.mkdir(exist_ok=True)
        (group / "cpuset.mems").write_text((parent / "cpuset.mems").read_text().strip())
        (group / "cpuset.cpus").write_text(",".join(map(str, self.cores)))
        self.dirs.append(group)
        self.cpuset = True

    def _cpuset_v1(self) -> Path:
        return self.root / CPUSET / self.parent / self.dirs[0].name

    def _pin_v2(self, parent: Path) -> None:
        """v2: the cpuset controller where the host delegates it (affinity alone where it does not)."""
        if not self.cores:
            return
        try:
            (parent / "cgroup.subtree_control").write_text("+cpuset")
            (self.dirs[0] / "cpuset.cpus").write_text(",".join(map(str, self.cores)))
        except OSError:
            return
        self.cpuset = True

    def create(self) -> None:
        memory = self.limits.memory_mib * 1024 * 1024
        quota = max(1000, self.limits.cpu_millis * CPU_PERIOD_US // 1000)
        try:
            if self.version == 2:
                parent = self.root / self.parent
                parent.mkdir(exist_ok=True)
                # Controllers must be enabled for the parent's children.
                (parent / "cgroup.subtree_control").write_text("+memory +cpu +pids")
                group = self.dirs[0]
                group.mkdir(exist_ok=True)
                (group / "memory.max").write_text(str(memory))
                with contextlib.suppress(FileNotFoundError):
                    (group / "memory.swap.max").write_text("0")
                (group / "cpu.max").write_text(f"{quota} {CPU_PERIOD_US}")
                (group / "pids.max").write_text(str(self.limits.pids))
                self._pin_v2(parent)
            else:
                memory_dir, cpu_dir, pids_dir = self.dirs
                for group in self.dirs:
                    group.mkdir(parents=True, exist_ok=True)
                (memory_dir / "memory.limit_in_bytes").write_text(str(memory))
                with contextlib.suppress(FileNotFoundError, OSError):
                    (memory_dir / "memory.memsw.limit_in_bytes").write_text(str(memory))
                (cpu_dir / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
                (cpu_dir / "cpu.cfs_quota_us").write_text(str(quota))
                (pids_dir / "pids.max").write_text(str(self.limits.pids))
                self._pin_v1()
        except OSError as exc:
            self.remove()
            raise SandboxUnavailable(
                f"cannot set up cgroup limits ({exc}): the local sandbox needs them"
            ) from exc

    def procs_files(self) -> list[Path]:
        return [group / "cgroup.procs" for group in self.dirs]

    def pids(self) -> set[int]:
        found: set[int] = set()
        for procs in self.procs_files():
            with contextlib.suppress(OSError):
                found |= {int(p) for p in procs.read_text().split()}
        return found

    def kill(self) -> None:
        """SIGKILL every process in the group, until none is left."""
        if self.version == 2:
            with contextlib.suppress(OSError):
                (self.dirs[0] / "cgroup.kill").write_text("1")
        for _ in range(100):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def oom_killed(self) -> bool:
        events = self.dirs[0] / ("memory.events" if self.version == 2 else "memory.oom_control")
        with contextlib.suppress(OSError):
            for line in events.read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == "oom_kill" and int(value) > 0:
                    return True
        if self.version == 1:
            with contextlib.suppress(OSError, ValueError):
                return int((self.dirs[0] / "memory.failcnt").read_text()) > 0
        return False

    def remove(self) -> None:
        self.kill()
        groups = list(self.dirs)
        if self.version == 1 and self._cpuset_v1() not in groups:  # left by a run that died
            groups.append(self._cpuset_v1())
        for group in groups:
            for _ in range(50):
                try:
                    group.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
