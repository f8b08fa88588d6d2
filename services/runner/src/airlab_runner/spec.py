"""Checks of an experiment spec before anything is stored or run: every bad field is named."""

from __future__ import annotations

import os
import re
import stat

from airlab.blobs import check_key
from airlab.domain import is_system_path
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
    spec: runner_pb2.ExperimentSpec, backends: tuple[str, ...], dataset_roots: tuple[str, ...] = ()
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
            if not value.startswith("/") or ".." in value.split("/") or "\x00" in value:
                raise InvalidArgument(f"{field}.{part}", "must be an absolute path without '..'")
        if not os.path.exists(mount.source):
            raise InvalidArgument(f"{field}.source", f"{mount.source} does not exist on the runner's host")
        check_dataset_source(f"{field}.source", mount.source, dataset_roots)
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


def check_dataset_source(field: str, source: str, roots: tuple[str, ...] = ()) -> None:
    """A dataset mount must be a regular file or a directory, readable by every user (a job runs as an
    unprivileged user and reads no more than one could), outside the system's own directories and, when
    the runner names dataset roots, inside one of them. Symlinks are resolved first, so a link cannot
    smuggle in a file the checks would refuse."""
    resolved = os.path.realpath(source)
    if is_system_path(resolved):
        raise InvalidArgument(field, f"{source} is a system path; datasets do not come from there")
    if roots and not any(resolved == r or resolved.startswith(r.rstrip("/") + "/") for r in roots):
        raise InvalidArgument(field, f"{source} is outside this runner's dataset roots ({', '.join(roots)})")
    info = os.stat(resolved)
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
        raise InvalidArgument(field, f"{source} is neither a regular file nor a directory")
    needed = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(info.st_mode) else 0)
    if info.st_mode & needed != needed:
        raise InvalidArgument(
            field,
            f"{source} is not readable by every user: experiments run as an unprivileged user "
            "(make it world-readable, e.g. chmod o+r, or copy it somewhere that is)",
        )


def resolved_resources(resources: runner_pb2.Resources) -> runner_pb2.Resources:
    return runner_pb2.Resources(
        cpu_millis=resources.cpu_millis or DEFAULT_CPU_MILLIS,
        memory_mib=resources.memory_mib or DEFAULT_MEMORY_MIB,
        gpus=resources.gpus,
        wall_seconds=resources.wall_seconds or DEFAULT_WALL_SECONDS,
    )
