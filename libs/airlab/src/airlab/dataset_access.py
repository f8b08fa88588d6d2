"""Which data a research may read: one rule, checked twice. The manager checks a research's dataset against
its owner when the research starts (StartResearch answers INVALID_ARGUMENT naming the field); the runner
checks every mount again when the job starts, on the resolved path, then copies what it checked for the
job (airlab_runner.staging) so that a link swapped afterwards changes nothing.

A research may read:
  - its own user's uploads (the artifact store's uploads/<user>/, on disk or in the lab's bucket);
  - host paths outside the lab's workspace (whose artifacts, logs, runs and keys are never data) and, when
    the runner names dataset roots, inside one of them; the runner also wants them readable, down the whole
    path, by the unprivileged identity a job runs as;
  - S3 objects in buckets other than the lab's own, which the lab's credentials reach.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from airlab.errors import InvalidArgument
from airlab.settings import Settings

UPLOADS = "uploads"
# Where a dataset a research may read comes from: a user's upload (private; the runner copies it for the
# job), a host path (which the job's identity must be able to read on its own), or an S3 object.
Origin = Literal["upload", "host", "object"]


def upload_key(owner: str, digest: str, stem: str) -> str:
    """Where a user's uploaded table lives in the artifact store: under that user's own prefix."""
    return f"{UPLOADS}/{owner}/{digest}/{stem}.csv"


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or path.is_relative_to(folder)


def _shown(source: str) -> str:
    return repr(source if len(source) <= 120 else source[:120] + "...")


@dataclass(frozen=True)
class DataPlaces:
    """Where the lab keeps its own things, and where datasets may come from."""

    # The lab's workspace on this host: nothing in it is a dataset, except uploads.
    workspace: Path | None = None
    # The local artifact store's root (its uploads/ holds users' uploads); None when artifacts are on S3.
    artifacts: Path | None = None
    # The lab's own bucket when artifacts are on S3: only uploads/<user>/ of it is a dataset.
    bucket: str = ""
    # runner.dataset_roots, resolved: host paths must lie inside one of them (empty: anywhere else).
    roots: tuple[Path, ...] = ()

    @classmethod
    def of(cls, settings: Settings) -> DataPlaces:
        url = urlparse(settings.resolved_artifacts_url())
        local = url.scheme in ("", "file")
        return cls(
            workspace=Path(os.path.realpath(settings.workspace)),
            artifacts=Path(os.path.realpath(url.path)) if local else None,
            bucket="" if local else url.path.strip("/"),
            roots=tuple(Path(os.path.realpath(root)) for root in settings.runner.dataset_roots),
        )

    @property
    def uploads(self) -> Path | None:
        return self.artifacts / UPLOADS if self.artifacts else None

    def check(self, field: str, source: str, owner: str) -> Origin:
        """Where `source` (a host path, resolved through its links, or s3://BUCKET/KEY) comes from, if a
        research of `owner` may read it; InvalidArgument naming `field` otherwise. An empty owner (a job an
        admin submitted for no user) may read no upload at all."""
        if source.startswith("s3://"):
            bucket, _, key = source.removeprefix("s3://").partition("/")
            own_prefix = f"{UPLOADS}/{owner}/" if owner else None
            if (
                self.bucket
                and bucket == self.bucket
                and (own_prefix is None or not key.startswith(own_prefix))
            ):
                raise InvalidArgument(
                    field,
                    f"{_shown(source)} is in the lab's own bucket, where a research reads only its user's "
                    f"uploads ({UPLOADS}/<user>/...)",
                )
            return "object"
        resolved = Path(os.path.realpath(source))
        uploads = self.uploads
        if uploads is not None and _inside(resolved, uploads):
            if not owner or not _inside(resolved, uploads / owner):
                raise InvalidArgument(field, f"{_shown(source)} is another user's upload")
            return "upload"
        for lab_place in (self.workspace, self.artifacts):
            if lab_place is not None and _inside(resolved, lab_place):
                raise InvalidArgument(
                    field,
                    f"{_shown(source)} is inside the lab's workspace, whose artifacts, logs, runs and keys "
                    "are never datasets (upload the file instead)",
                )
        if self.roots and not any(_inside(resolved, root) for root in self.roots):
            raise InvalidArgument(
                field,
                f"{_shown(source)} is outside the dataset roots ({', '.join(map(str, self.roots))})",
            )
        return "host"
