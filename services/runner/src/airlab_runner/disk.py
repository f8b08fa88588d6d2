"""A job's disk quota: what its work dir takes on disk, measured while it runs and once more when it ended.
A job over it is stopped and fails saying so. Every backend's work dir is a directory the runner sees
(a host path, or the runs claim a Kubernetes runner mounts), so one watch serves them all; the job's /tmp
is memory (a tmpfs counted against its memory limit), and each file is capped by its rlimit besides."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

POLL_SECONDS = 0.5


def disk_used(folder: Path) -> int:
    """Bytes the files under `folder` take on disk (allocated blocks, so a sparse file counts what it
    holds; links are not followed)."""
    total = 0
    pending = [str(folder)]
    while pending:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError), os.scandir(pending.pop()) as entries:
            for entry in entries:
                with contextlib.suppress(FileNotFoundError):
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
    return total


class DiskWatch:
    """Watches `folder` while a job runs. `stop` is set when the job must end: `cancel` was set, or the
    folder passed `limit_bytes` (then `exceeded` is true)."""

    def __init__(self, folder: Path, limit_bytes: int, cancel: threading.Event) -> None:
        self.folder = folder
        self.limit_bytes = limit_bytes
        self.cancel = cancel
        self.stop = threading.Event()
        self.exceeded = False
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"disk:{folder.name}", daemon=True)

    def __enter__(self) -> DiskWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._ended.set()
        self._thread.join(5)
        self.check()  # what it left behind counts too

    def check(self) -> None:
        if disk_used(self.folder) > self.limit_bytes:
            self.exceeded = True
            self.stop.set()

    def _watch(self) -> None:
        while not self._ended.wait(POLL_SECONDS):
            if self.cancel.is_set():
                self.stop.set()
            self.check()

    def reason(self) -> str:
        quota = self.limit_bytes >> 20
        return f"killed: its files passed the disk quota of {quota} MiB (runner.max_job_disk_mib)"
