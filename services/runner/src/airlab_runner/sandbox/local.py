"""The local sandbox: bubblewrap (every namespace unshared: no network, its own pids, a non-root uid),
a read-only view of just the system and Python directories, one writable work dir, cgroup limits on
memory, CPU and pids, rlimits, and a wall-clock limit that kills the whole process tree."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from airlab.cpus import pin_command
from airlab_runner.sandbox import (
    WORK_MOUNT,
    Limits,
    LineSink,
    Outcome,
    SandboxJob,
    SandboxResult,
    SandboxUnavailable,
    ended,
)
from airlab_runner.sandbox.cgroups import JobCgroup, version

SANDBOX_UID = 65534  # nobody
MAX_LINE_BYTES = 64 * 1024
# System paths the job may read. Nothing else of the host is visible: no home, no workspace, no secrets.
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "passwd", "group", "nsswitch.conf")


class LocalSandbox:
    name = "local"

    def __init__(self, *, python: str | None = None, cgroup_parent: str = "airlab") -> None:
        self.python = python or sys.executable
        self.cgroup_parent = cgroup_parent

    def check(self) -> None:
        for tool, package in (("bwrap", "bubblewrap"), ("prlimit", "util-linux"), ("taskset", "util-linux")):
            if shutil.which(tool) is None:
                raise SandboxUnavailable(
                    f"the local sandbox needs {tool}: install it (apt-get install {package}); "
                    "airlab never runs experiment code unsandboxed"
                )
        version()
        probe = self.run_command(["/bin/true"], timeout=20)
        if probe.returncode != 0:
            raise SandboxUnavailable(f"bubblewrap cannot create its namespaces here: {probe.stderr.strip()}")

    def run_command(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """Run argv in a bare bubblewrap (no cgroups), for the startup check."""
        command = ["bwrap", "--unshare-all", "--die-with-parent", *self._view(), "--", *argv]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=_bare_env())

    def _view(self) -> list[str]:
        """Read-only mounts of the system and of the Python that runs experiments. /tmp comes first: the
        Python may live under /tmp (a checkout there), and a later tmpfs would hide it."""
        args: list[str] = ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        for path in SYSTEM_PATHS:
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        for name in ETC_FILES:
            if os.path.exists(f"/etc/{name}"):
                args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
        python_dirs = {sys.base_prefix, sys.prefix, str(Path(self.python).resolve().parent.parent)}
        python_dirs.add(str(Path(self.python).parent.parent))
        for path in sorted(python_dirs):
            if not path.startswith(SYSTEM_PATHS) and os.path.isdir(path):
                args += ["--ro-bind", path, path]
        return args

    def _command(self, job: SandboxJob, cgroup: JobCgroup) -> list[str]:
        limits = job.limits
        bwrap = [
            "bwrap", "--unshare-all", "--die-with-parent", "--new-session",
            "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
            *self._view(),
            "--bind", str(job.workdir), WORK_MOUNT, "--chdir", WORK_MOUNT,
            "--clearenv", "--setenv", "HOME", WORK_MOUNT, "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin",
            "--setenv", "PYTHONUNBUFFERED", "1",
        ]  # fmt: skip
        for name, value in job.job_env().items():
            bwrap += ["--setenv", name, value]
        if job.gpu_ids:
            bwrap += ["--setenv", "CUDA_VISIBLE_DEVICES", ",".join(job.gpu_ids)]
            for device in sorted(Path("/dev").glob("nvidia*")):
                bwrap += ["--dev-bind", str(device), str(device)]
        for source, target in job.datasets:
            bwrap += ["--ro-bind", source, target]
        # Everything but the work dir and /tmp becomes read-only once the mounts are in place.
        bwrap += ["--remount-ro", "/", self.python, job.entrypoint]
        cpu_seconds = max(1, limits.wall_seconds * max(1, limits.cpu_millis // 1000) + 5)
        prlimit = [
            "prlimit", f"--cpu={cpu_seconds}", f"--fsize={limits.file_mib * 1024 * 1024}",
            f"--nofile={limits.open_files}", "--core=0", "--",
        ]  # fmt: skip
        # Pinned to its cores (and at idle priority on cores it borrows) before its first thread starts.
        pin = pin_command(job.cpus.cores, idle_priority=job.cpus.idle_priority) if job.cpus else []
        # The first process joins the job's cgroups before anything of the job runs.
        join = "; ".join(f"echo $$ > {shlex.quote(str(f))}" for f in cgroup.procs_files())
        return ["/bin/sh", "-c", f'{join}; exec "$@"', "sh", *pin, *prlimit, *bwrap]

    def cleanup(self, job_id: str) -> None:
        """Kill what is left in the job's cgroups and remove them."""
        JobCgroup(self.cgroup_parent, job_id, Limits()).remove()

    def run(self, job: SandboxJob, on_line: LineSink, cancel: threading.Event) -> SandboxResult:
        cores = job.cpus.cores if job.cpus else ()
        cgroup = JobCgroup(self.cgroup_parent, job.job_id, job.limits, cores=cores)
        cgroup.create()
        began = time.monotonic()
        try:
            process = subprocess.Popen(
                self._command(job, cgroup),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=_bare_env(),
            )
        except OSError as exc:
            cgroup.remove()
            return SandboxResult("error", None, f"could not start the sandbox: {exc}")
        reader = threading.Thread(target=_pump, args=(process.stdout, on_line), daemon=True)
        reader.start()
        outcome: Outcome | None = None
        deadline = began + job.limits.wall_seconds
        while process.poll() is None:
            if cancel.is_set():
                outcome = "cancelled"
            elif time.monotonic() > deadline:
                outcome = "timeout"
            if outcome:
                cgroup.kill()
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(0.05)
        exit_code = process.wait()
        cgroup.kill()  # anything the job left behind (daemons, orphans)
        reader.join(5)
        duration = time.monotonic() - began
        oom = cgroup.oom_killed() and exit_code in (137, -9)
        cgroup.remove()
        return ended(outcome or "exited", exit_code, oom, job.limits, duration)


def _bare_env() -> dict[str, str]:
    """The environment of the sandbox's own launcher: a PATH, nothing of the runner's."""
    return {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


def _pump(stream, on_line: LineSink) -> None:
    """Pass every line on; an endless line is cut every MAX_LINE_BYTES."""
    for raw in iter(lambda: stream.readline(MAX_LINE_BYTES), b""):
        on_line(raw.decode("utf-8", errors="replace").rstrip("\n"))
    stream.close()
