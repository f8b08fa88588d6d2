"""The local sandbox: bubblewrap (every namespace unshared: no network, its own pids, a non-root uid),
a read-only view of just the system and Python directories, one writable work dir, cgroup limits on
memory, CPU and pids, rlimits, and a wall-clock limit that kills the whole process tree.

The job never has more rights on the host than an unprivileged user. A runner that is not root starts
bubblewrap in a user namespace: the job's uid maps back to the runner's own. A runner that is root
would map it back to root, so it sets the sandbox up without a user namespace instead and drops the job
to a uid/gid of its own (JobIdentities: no host account, no other job) with no capabilities (setpriv)
before anything of the job runs: files only root may read stay unreadable inside, and no host user can
reach the job's files or processes."""

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

# The job's uid inside an unprivileged runner's user namespace (outside, it is the runner's own).
NAMESPACED_UID = 65534
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
        if os.geteuid() == 0 and shutil.which("setpriv") is None:
            raise SandboxUnavailable(
                "a runner running as root drops jobs to an unprivileged user with setpriv: install it "
                "(apt-get install util-linux)"
            )
        probe = self.run_command(["/bin/true"], timeout=20)
        if probe.returncode != 0:
            raise SandboxUnavailable(f"bubblewrap cannot create its namespaces here: {probe.stderr.strip()}")

    def run_command(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """Run argv in a bare bubblewrap (no cgroups), for the startup check."""
        # The probe runs as nobody: it only checks that the namespaces can be made.
        drop = _drop(NAMESPACED_UID, NAMESPACED_UID)
        command = ["bwrap", *_namespaces(), "--die-with-parent", *self._view(), "--", *drop, *argv]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=_bare_env())

    def _view(self) -> list[str]:
        """Read-only mounts of the system and of the Python that runs experiments. /tmp comes first: the
        Python may live under /tmp (a checkout there), and a later tmpfs would hide it."""
        args: list[str] = ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp"]
        # Shared memory for the job's own process pools (joblib's semaphores), writable by its user.
        args += ["--perms", "1777", "--tmpfs", "/dev/shm", "--perms", "0755", "--dir", "/etc"]
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
                args += [*_parents(path), "--ro-bind", path, path]
        return args

    def _command(self, job: SandboxJob, cgroup: JobCgroup) -> list[str]:
        limits = job.limits
        uid, gid = job.owner()
        if os.geteuid() == 0:
            # The job writes its work dir as the uid of its own it runs as; no one else enters it.
            for path in (job.workdir, *job.workdir.rglob("*")):
                os.chown(path, uid, gid, follow_symlinks=False)
            job.workdir.chmod(0o700)
        # An unprivileged runner's user namespace maps the job's uid back to the runner's own.
        ids = [] if os.geteuid() == 0 else ["--uid", str(NAMESPACED_UID), "--gid", str(NAMESPACED_UID)]
        bwrap = [
            "bwrap", *_namespaces(), "--die-with-parent", "--new-session", *ids,
            *self._view(),
            *_parents(WORK_MOUNT), "--bind", str(job.workdir), WORK_MOUNT, "--chdir", WORK_MOUNT,
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
            bwrap += [*_parents(target), "--ro-bind", source, target]
        # Everything but the work dir and /tmp becomes read-only once the mounts are in place.
        bwrap += ["--remount-ro", "/", *_drop(uid, gid), self.python, job.entrypoint]
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


def _namespaces() -> list[str]:
    """Every namespace; as root, all but the user namespace (see the module's docstring)."""
    if os.geteuid() != 0:
        return ["--unshare-all"]
    return ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]


def _drop(uid: int, gid: int) -> list[str]:
    """As root: become the job's uid/gid with no groups and no capabilities, for good, then run it."""
    if os.geteuid() != 0:
        return []
    return [
        "setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
        "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs",
    ]  # fmt: skip


def _parents(path: str) -> list[str]:
    """Directories above a mount point, world-traversable: bubblewrap makes missing ones 0700 as root."""
    args = []
    parts = Path(path).parts
    for depth in range(2, len(parts)):
        args += ["--perms", "0755", "--dir", str(Path(*parts[:depth]))]
    return args


def _bare_env() -> dict[str, str]:
    """The environment of the sandbox's own launcher: a PATH, nothing of the runner's."""
    return {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


def _pump(stream, on_line: LineSink) -> None:
    """Pass every line on; an endless line is cut every MAX_LINE_BYTES."""
    for raw in iter(lambda: stream.readline(MAX_LINE_BYTES), b""):
        on_line(raw.decode("utf-8", errors="replace").rstrip("\n"))
    stream.close()
