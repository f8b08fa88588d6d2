"""User datasets on S3: a job's dataset mount may name s3://BUCKET/KEY on the lab's S3 endpoint. The runner
fetches the object once into its dataset cache (with the lab's credentials, which the job never sees) and
mounts the local copy read-only like any host path."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from airlab.errors import FailedPrecondition, InvalidArgument
from airlab.settings import Settings


class S3Datasets:
    def __init__(self, settings: Settings, cache_dir: Path) -> None:
        self.settings = settings
        self.cache_dir = cache_dir

    def local_copy(self, uri: str, field: str) -> str:
        """The path of the cached copy of `uri`, fetched first if needed."""
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        if not bucket or not key or ".." in key.split("/"):
            raise InvalidArgument(field, f"{uri[:200]!r}: expected s3://BUCKET/KEY")
        target = self.cache_dir / hashlib.sha256(uri.encode()).hexdigest()[:24] / PurePosixPath(key).name
        if target.is_file():
            return str(target)
        endpoint = urlparse(self.settings.resolved_artifacts_url())
        if endpoint.scheme not in ("s3", "s3+http", "s3+https"):
            raise FailedPrecondition(f"{field}: S3 datasets need the lab's artifacts on S3 (artifacts_url)")
        from minio import Minio
        from minio.error import S3Error

        client = Minio(
            endpoint.netloc,
            access_key=self.settings.s3_access_key.get_secret_value(),
            secret_key=self.settings.s3_secret_key.get_secret_value(),
            secure=endpoint.scheme != "s3+http",
            region=self.settings.s3_region,
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + ".part")
        try:
            client.fget_object(bucket, key, str(partial))
        except S3Error as exc:
            raise InvalidArgument(field, f"{uri}: {exc.code}") from None
        partial.chmod(0o644)  # read by the job, which runs as an unprivileged user
        os.replace(partial, target)
        return str(target)
