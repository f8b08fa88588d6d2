"""The docker sandbox: each job in a container through the Docker Engine API: no network, memory, CPU and
pids limits, a read-only root, a non-root user, every capability dropped, the work dir as its only
writable volume, GPUs through device requests; killed at its wall limit, removed once its outputs are in
the work dir."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import Any

from airlab_runner.sandbox import (
    WORK_MOUNT,
    LineSink,
    Outcome,
    SandboxJob,
    SandboxResult,
    SandboxUnavailable,
    ended,
)

MAX_LINE_BYTES = 64 * 1024


def container_options(job: SandboxJob, image: str) -> dict[str, Any]:
    """The keyword arguments of `containers.create` for a job: its whole security and resource setup."""
    from docker.types import DeviceRequest, Ulimit

    limits = job.limits
    volumes = {str(job.workdir): {"bind": WORK_MOUNT, "mode": "rw"}}
    volumes.update({source: {"bind": target, "mode": "ro"} for source, target in job.datasets})
    environment = {"HOME": WORK_MOUNT, "PYTHONUNBUFFERED": "1", **job.job_env()}
    options: dict[str, Any] = {
        "image": job.image or image,
        "command": ["python3", job.entrypoint],
        "working_dir": WORK_MOUNT,
        "user": "{}:{}".format(*job.owner()),
        "environment": environment,
        "network_mode": "none",
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "tmpfs": {"/tmp": "rw,size=512m,mode=1777"},
        "volumes": volumes,
        "mem_limit": f"{limits.memory_mib}m",
        "memswap_limit": f"{limits.memory_mib}m",
        "nano_cpus": limits.cpu_millis * 1_000_000,
        "pids_limit": limits.pids,
        "ulimits": [
            Ulimit(name="nofile", soft=limits.open_files, hard=limits.open_files),
            Ulimit(name="fsize", soft=limits.file_mib << 20, hard=limits.file_mib << 20),
            Ulimit(name="core", soft=0, hard=0),
        ],
        "labels": {"airlab.job": job.job_id},
        "detach": True,
    }
    if job.cpus and job.cpus.cores:
        options["cpuset_cpus"] = job.cpus.cpuset()
        if job.cpus.idle_priority:
            options["cpu_shares"] = 2  # the lowest weight: the container yields borrowed cores at once
    if job.gpu_ids:
        environment["NVIDIA_VISIBLE_DEVICES"] = ",".join(job.gpu_ids)
        options["device_requests"] = [DeviceRequest(device_ids=list(job.gpu_ids), capabilities=[["gpu"]])]
    return options


class DockerSandbox:
    name = "docker"

    def __init__(
        self, *, base_url: str = "unix:///var/run/docker.sock", image: str = "airlab-experiment:cpu"
    ) -> None:
        self.base_url = base_url
        self.image = image
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import docker

            self._client = docker.DockerClient(base_url=self.base_url, timeout=30)
        return self._client

    def check(self) -> None:
        import docker.errors

        try:
            self.client.ping()
        except Exception as exc:
            raise SandboxUnavailable(f"the Docker Engine at {self.base_url} does not answer: {exc}") from exc
        try:
            self.client.images.get(self.image)
        except docker.errors.ImageNotFound:
            raise SandboxUnavailable(
                f"the experiment image {self.image!r} is not on this Docker host"
            ) from None

    def cleanup(self, job_id: str) -> None:
        import docker.errors

        for container in self.client.containers.list(all=True, filters={"label": f"airlab.job={job_id}"}):
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)

    def run(self, job: SandboxJob, on_line: LineSink, cancel: threading.Event) -> SandboxResult:
        import docker.errors

        began = time.monotonic()
        if os.geteuid() == 0:
            _give_to_job(job.workdir, job.owner())
        try:
            container = self.client.containers.create(**container_options(job, self.image))
        except docker.errors.ImageNotFound:
            return SandboxResult(
                "error", None, f"image {job.image or self.image!r} is not on this Docker host"
            )
        except docker.errors.APIError as exc:
            return SandboxResult("error", None, f"Docker refused the container: {exc.explanation or exc}")
        try:
            try:
                container.start()
            except docker.errors.APIError as exc:
                detail = str(exc.explanation or exc)
                if job.gpu_ids and "device driver" in detail:
                    detail = f"GPUs were requested but this Docker host has no NVIDIA runtime ({detail})"
                return SandboxResult("error", None, detail, time.monotonic() - began)
            reader = threading.Thread(target=_pump_logs, args=(container, on_line), daemon=True)
            reader.start()
            outcome, exit_code = self._wait(container, job, began, cancel)
            reader.join(10)
            container.reload()
            oom = bool(container.attrs["State"].get("OOMKilled"))
        finally:
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
        return ended(outcome, exit_code, oom, job.limits, time.monotonic() - began)

    @staticmethod
    def _wait(
        container: Any, job: SandboxJob, began: float, cancel: threading.Event
    ) -> tuple[Outcome, int | None]:
        import requests

        deadline = began + job.limits.wall_seconds
        while True:
            try:
                status = container.wait(timeout=0.5)
                return "exited", int(status.get("StatusCode", -1))
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                pass
            if cancel.is_set() or time.monotonic() > deadline:
                with contextlib.suppress(Exception):
                    container.kill()
                return ("cancelled" if cancel.is_set() else "timeout"), None


def _give_to_job(workdir: Path, identity: tuple[int, int]) -> None:
    """The container's user owns the work dir, 0700 (and nothing else of the host)."""
    uid, gid = identity
    for root, dirs, files in os.walk(workdir):
        for name in [*dirs, *files]:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)
    os.chown(workdir, uid, gid)
    workdir.chmod(0o700)


def _pump_logs(container: Any, on_line: LineSink) -> None:
    """Pass every line of the container's output on; an endless line is cut every MAX_LINE_BYTES."""
    pending = b""
    for chunk in container.logs(stream=True, follow=True, stdout=True, stderr=True):
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            on_line(line[:MAX_LINE_BYTES].decode("utf-8", errors="replace"))
        while len(pending) > MAX_LINE_BYTES:
            on_line(pending[:MAX_LINE_BYTES].decode("utf-8", errors="replace"))
            pending = pending[MAX_LINE_BYTES:]
    if pending:
        on_line(pending.decode("utf-8", errors="replace"))
