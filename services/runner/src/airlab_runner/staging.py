"""A job's datasets, copied for it when it starts. Each mount is checked again (whose it is, where it lies,
that the job's identity could read a host path: airlab_runner.spec), then opened one path component at a
time without following links, and copied from what was opened into the job's run dir, read-only. The
sandbox binds that copy: the path is never looked up again, so a link swapped in after the check changes
nothing, and a private upload reaches the job through the runner, never through permission bits that let
every local user read it."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from airlab.dataset_access import DataPlaces
from airlab.errors import FailedPrecondition, InvalidArgument
from airlab.v1 import runner_pb2
from airlab_runner.datasets import S3Datasets
from airlab_runner.spec import check_dataset_source

STAGED = "datasets"


class DatasetStager:
    def __init__(self, places: DataPlaces, s3: S3Datasets | None = None) -> None:
        self.places = places
        self.s3 = s3

    def stage(self, mounts: Iterable[runner_pb2.DatasetMount], run_dir: Path) -> list[tuple[str, str]]:
        """(copy, target) for each mount, the copies under run_dir/datasets/; InvalidArgument when a mount
        no longer passes its checks."""
        staged = []
        for index, mount in enumerate(mounts):
            field = f"spec.datasets[{index}].source"
            origin = check_dataset_source(field, mount.source, mount.owner, self.places)
            source = mount.source
            if origin == "object":
                if self.s3 is None:
                    raise FailedPrecondition("this runner cannot fetch S3 datasets")
                source = self.s3.local_copy(source, field)
            copy = run_dir / STAGED / str(index) / (PurePosixPath(mount.target).name or "data")
            copy.parent.mkdir(parents=True)
            copy_checked(os.path.realpath(source), copy, field, host=origin == "host")
            staged.append((str(copy), mount.target))
        return staged


def _open_without_links(path: str, field: str) -> int:
    """A descriptor of `path` (absolute, resolved), reached component by component with O_NOFOLLOW: a
    component that became a link since the path was checked is refused, not followed."""
    parts = PurePosixPath(path).parts
    folder = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in parts[1:-1]:
            inner = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
            os.close(folder)
            folder = inner
        return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
    except OSError as exc:
        raise InvalidArgument(field, f"{path} changed since it was checked ({exc.strerror})") from None
    finally:
        os.close(folder)


def copy_checked(resolved: str, copy: Path, field: str, *, host: bool) -> None:
    """Copy the file or folder at `resolved` to `copy`, its files read-only (of a folder: its regular
    files and sub-folders; links and anything else inside are left out). The sandbox mounts the copy
    read-only. A host path must still be readable by every user, now judged on what was opened."""
    fd = _open_without_links(resolved, field)
    try:
        info = os.fstat(fd)
        if host and os.geteuid() == 0 and not info.st_mode & stat.S_IROTH:
            raise InvalidArgument(field, f"{resolved} is not readable by every user")
        if stat.S_ISREG(info.st_mode):
            _copy_file(fd, copy)
        elif stat.S_ISDIR(info.st_mode):
            _copy_folder(fd, copy)
        else:
            raise InvalidArgument(field, f"{resolved} is neither a regular file nor a directory")
    finally:
        os.close(fd)


def _copy_file(fd: int, copy: Path) -> None:
    with open(os.dup(fd), "rb") as source, open(copy, "wb") as target:
        shutil.copyfileobj(source, target, 1 << 20)
    copy.chmod(0o444)


def _copy_folder(fd: int, copy: Path) -> None:
    copy.mkdir()
    for root, _dirs, files, root_fd in os.fwalk(".", dir_fd=fd, follow_symlinks=False):
        here = copy / root
        here.mkdir(exist_ok=True)
        for name in files:
            try:
                file_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=root_fd)
            except OSError:
                continue  # a link (or a file gone meanwhile): not part of the dataset
            try:
                if stat.S_ISREG(os.fstat(file_fd).st_mode):
                    _copy_file(file_fd, here / name)
            finally:
                os.close(file_fd)
