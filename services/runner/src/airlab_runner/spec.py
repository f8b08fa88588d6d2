"""Checks of an experiment spec before anything is stored or run: every bad field is named."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from airlab.blobs import check_key
from airlab.dataset_access import DataPlaces, Origin
from airlab.domain import MAX_PATH_CHARS, is_system_path
from airlab.errors import InvalidArgument
from airlab.ids import check_token
from airlab.v1 import runner_pb2

BACKENDS = ("local", "docker", "kubernetes")
MAX_CODE_BYTES = 10 << 20
MAX_FILES = 1000
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
# Variables that carry credentials never reach a job, even when a spec asks for them.
SECRET_ENV = re.compile(r"^(AIRLAB_|AWS_|OPENAI_|MINIO_|QDRANT_)|(KEY|SECRET|TOKEN|PASSWORD|CREDENTIALS?)$")

DEFAULT_CPU_MILLIS, DEFAULT_MEMORY_MIB, DEFAULT_WALL_SECONDS = 1000, 1024, 3600


def _bounded(field: str, value: int, low: int, high: int) -> None:
    if value != 0 and not low <= value <= high:
        raise InvalidArgument(field, f"must be 0 (default) or {low}..{high}, got {value}")


def check_spec(
    spec: runner_pb2.ExperimentSpec, backends: tuple[str, ...], places: DataPlaces | None = None
) -> None:
    check_token("spec.research_id", spec.research_id)
    check_token("spec.experiment_id", spec.experiment_id)
    if bool(spec.files) == bool(spec.code_ref):
        raise InvalidArgument("spec.files", "give either files or code_ref (exactly one)")
    if len(spec.files) > MAX_FILES:
        raise InvalidArgument("spec.files", f"at most {MAX_FILES} files")
    total = 0
    for path, content in spec.files.items():
        check_key(path, f"spec.files[{path[:60]!r}]")
        total += len(content)
    if total > MAX_CODE_BYTES:
        raise InvalidArgument("spec.files", f"{total} bytes of code; at most {MAX_CODE_BYTES}")
    if spec.code_ref:
        check_key(spec.code_ref.rstrip("/"), "spec.code_ref")
    check_key(spec.entrypoint, "spec.entrypoint")
    if not spec.entrypoint.endswith(".py"):
        raise InvalidArgument("spec.entrypoint", "must be a .py file")
    if spec.files and spec.entrypoint not in spec.files:
        raise InvalidArgument("spec.entrypoint", f"{spec.entrypoint!r} is not among spec.files")
    if spec.backend and spec.backend not in BACKENDS:
        raise InvalidArgument(
            "spec.backend", f"unknown backend {spec.backend!r}; one of {', '.join(BACKENDS)}"
        )
    if spec.backend and spec.backend not in backends:
        raise InvalidArgument(
            "spec.backend", f"{spec.backend!r} is not enabled on this runner ({', '.join(backends)})"
        )
    resources = spec.resources
    _bounded("spec.resources.cpu_millis", resources.cpu_millis, 100, 256_000)
    _bounded("spec.resources.memory_mib", resources.memory_mib, 64, 1_048_576)
    _bounded("spec.resources.wall_seconds", resources.wall_seconds, 1, 604_800)
    if resources.gpus > 16:
        raise InvalidArgument("spec.resources.gpus", f"must be 0..16, got {resources.gpus}")
    for index, mount in enumerate(spec.datasets):
        field = f"spec.datasets[{index}]"
        for part, value in (("source", mount.source), ("target", mount.target)):
            if "\x00" in value or len(value) > MAX_PATH_CHARS:
                raise InvalidArgument(
                    f"{field}.{part}", f"must be at most {MAX_PATH_CHARS} characters, without NUL"
                )
            if part == "source" and value.startswith("s3://"):
                continue
            if not value.startswith("/") or ".." in value.split("/"):
                raise InvalidArgument(f"{field}.{part}", "must be an absolute path without '..'")
        check_dataset_source(f"{field}.source", mount.source, mount.owner, places or DataPlaces())
        if mount.target.rstrip("/") in ("", "/airlab", "/airlab/work") or mount.target.startswith(
            "/airlab/work/"
        ):
            raise InvalidArgument(f"{field}.target", "must not cover the work dir")
    for name, value in spec.env.items():
        if not ENV_NAME.match(name):
            raise InvalidArgument(f"spec.env.{name[:40]}", "names are uppercase letters, digits and '_'")
        if SECRET_ENV.search(name):
            raise InvalidArgument(
                f"spec.env.{name}", "looks like a credential: jobs never receive credentials"
            )
        if len(value) > 4096 or "\x00" in value:
            raise InvalidArgument(f"spec.env.{name}", "values are at most 4096 characters, without NUL")


def check_dataset_source(field: str, source: str, owner: str, places: DataPlaces) -> Origin:
    """Whether a job of `owner`'s research may mount `source`: the lab's rule first (their own uploads,
    nothing else of the workspace, the dataset roots: airlab.dataset_access), then, on the path resolved
    through its links, that it is a regular file or a directory outside the system's own directories, and
    that a host path (not an upload, which the runner copies for the job) is one the job's identity could
    read on its own, every folder on the way included. Where it comes from, or InvalidArgument."""
    origin = places.check(field, source, owner)
    if origin == "object":
        return origin
    resolved = os.path.realpath(source)
    if is_system_path(resolved):
        raise InvalidArgument(field, f"{source} is a system path; datasets do not come from there")
    if not os.path.exists(resolved):
        raise InvalidArgument(field, f"{source} does not exist on the runner's host")
    info = os.stat(resolved)
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
        raise InvalidArgument(field, f"{source} is neither a regular file nor a directory")
    if origin == "host":
        refused = unreadable_for_jobs(resolved)
        if refused:
            raise InvalidArgument(
                field,
                f"{source} is not readable by every user ({refused}): experiments run as an unprivileged "
                "user of their own (make it readable, e.g. chmod o+r and o+x on its folders, or upload it)",
            )
    return origin


def unreadable_for_jobs(resolved: str) -> str:
    """What keeps a job's identity from reading `resolved` on the host ("" when nothing does). A root
    runner's jobs run as a uid of their own, which owns nothing there: they get the permissions every user
    has, down the whole path. An unprivileged runner's jobs map back to its own uid: they read what it
    reads."""
    if os.geteuid() != 0:
        return "" if os.access(resolved, os.R_OK) else "the runner's user cannot read it"
    path = Path(resolved)
    for folder in reversed(path.parents):
        if not os.stat(folder).st_mode & stat.S_IXOTH:
            return f"the folder {folder} is closed to other users"
    mode = os.stat(path).st_mode
    needed = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
    return "" if mode & needed == needed else "only its owner or group may read it"


def resolved_resources(resources: runner_pb2.Resources) -> runner_pb2.Resources:
    return runner_pb2.Resources(
        cpu_millis=resources.cpu_millis or DEFAULT_CPU_MILLIS,
        memory_mib=resources.memory_mib or DEFAULT_MEMORY_MIB,
        gpus=resources.gpus,
        wall_seconds=resources.wall_seconds or DEFAULT_WALL_SECONDS,
    )
