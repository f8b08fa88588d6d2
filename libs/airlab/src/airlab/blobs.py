"""The artifact store: code, logs, metrics, models, plots and reports, kept under validated keys.

Two backends behave the same: S3/MinIO (through the `minio` SDK) and a local directory. Every object
carries the SHA-256 of its content, recorded at write and verified at read; a write is never visible
half-done. `open_artifact_store(url)` picks the backend from a URL."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import mimetypes
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Protocol, cast
from urllib.parse import parse_qs, urlparse

from airlab.errors import InvalidArgument, LabError, NotFound, Unavailable
from airlab.settings import Settings

CHUNK = 1 << 20
MAX_KEY_BYTES = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BlobNotFound(NotFound):
    pass


class ChecksumMismatch(LabError):
    """The stored bytes are not the bytes that were written."""

    code = "DATA_LOSS"


class StoreUnavailable(Unavailable):
    pass


def check_key(key: str, field_name: str = "key") -> str:
    """A relative '/'-separated path: no '..', '.' or empty segments, backslashes or control characters."""
    if not key:
        raise InvalidArgument(field_name, "is required")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidArgument(field_name, f"is longer than {MAX_KEY_BYTES} bytes")
    if _CONTROL.search(key):
        raise InvalidArgument(field_name, "contains control characters")
    if key.startswith("/") or "\\" in key:
        raise InvalidArgument(field_name, f"{key[:80]!r} must be a relative path with '/' separators")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise InvalidArgument(field_name, f"{key[:80]!r} has an empty, '.' or '..' segment")
    return key


def check_prefix(prefix: str) -> str:
    """A listing/deletion prefix: '' or a valid key, optionally ending in '/'."""
    if prefix:
        check_key(prefix.rstrip("/"), "prefix")
    return prefix


# -- key layout ---------------------------------------------------------------------------------------------


def research_prefix(research_id: str) -> str:
    return f"research/{research_id}/"


def plan_key(research_id: str) -> str:
    return f"research/{research_id}/plan.json"


def experiment_key(research_id: str, experiment_id: str, *parts: str) -> str:
    """research/<id>/experiments/<id>/<parts>: code/, logs/, metrics.jsonl, result.json, models/, plots/."""
    return check_key("/".join([f"research/{research_id}/experiments/{experiment_id}", *parts]))


def report_key(research_id: str, name: str) -> str:
    return check_key(f"research/{research_id}/reports/{name}")


@dataclass
class BlobInfo:
    key: str
    size: int
    # Empty in listings of the S3 backend (stat() has it).
    sha256: str = ""
    content_type: str = "application/octet-stream"
    metadata: dict[str, str] = field(default_factory=dict)
    modified: datetime | None = None


class ArtifactStore(Protocol):
    def put(
        self,
        key: str,
        data: bytes | BinaryIO,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> BlobInfo: ...
    def put_file(
        self, key: str, path: Path, *, content_type: str | None = None, metadata: dict[str, str] | None = None
    ) -> BlobInfo: ...
    def get(self, key: str) -> bytes: ...
    def stream(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]: ...
    def download(self, key: str, path: Path) -> BlobInfo: ...
    def stat(self, key: str) -> BlobInfo: ...
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str = "") -> Iterator[BlobInfo]: ...
    def delete(self, key: str) -> None: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def presigned_url(self, key: str, expires: timedelta = timedelta(hours=1)) -> str: ...


def _guess_type(key: str, given: str | None) -> str:
    return given or mimetypes.guess_type(key)[0] or "application/octet-stream"


def _check_metadata(metadata: dict[str, str] | None) -> dict[str, str]:
    metadata = dict(metadata or {})
    for name, value in metadata.items():
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,63}", name):
            raise InvalidArgument(
                f"metadata.{name}", "names are 1-64 chars of lowercase letters, digits and '-'"
            )
        if not value.isascii() or _CONTROL.search(value) or len(value) > 1024:
            raise InvalidArgument(f"metadata.{name}", "values are printable ASCII, at most 1024 chars")
    if "sha256" in metadata:
        raise InvalidArgument("metadata.sha256", "is reserved for the store's checksum")
    return metadata


def _hash_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _spool(data: bytes | BinaryIO) -> tuple[BinaryIO, str, int]:
    """A seekable copy of `data` with its checksum and size (large streams spill to a temp file)."""
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        return io.BytesIO(raw), hashlib.sha256(raw).hexdigest(), len(raw)
    spool = tempfile.SpooledTemporaryFile(max_size=32 * CHUNK)  # noqa: SIM115 - returned to the caller
    digest, size = hashlib.sha256(), 0
    while chunk := data.read(CHUNK):
        digest.update(chunk)
        spool.write(chunk)
        size += len(chunk)
    spool.seek(0)
    return spool, digest.hexdigest(), size  # type: ignore[return-value]


class _VerifyingReader:
    """Yields chunks while hashing them; raises ChecksumMismatch after the last one if the hash is wrong."""

    def __init__(self, key: str, chunks: Iterator[bytes], expected: str) -> None:
        self.key, self.chunks, self.expected = key, chunks, expected

    def __iter__(self) -> Iterator[bytes]:
        digest = hashlib.sha256()
        for chunk in self.chunks:
            digest.update(chunk)
            yield chunk
        if digest.hexdigest() != self.expected:
            raise ChecksumMismatch(
                f"{self.key}: content hashes to {digest.hexdigest()[:16]}..., "
                f"the stored checksum is {self.expected[:16]}..."
            )


class _StoreBase:
    """What both backends derive from stat() and stream()."""

    def stat(self, key: str) -> BlobInfo:
        raise NotImplementedError

    def stream(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except BlobNotFound:
            return False
        return True

    def get(self, key: str) -> bytes:
        return b"".join(self.stream(key))

    def download(self, key: str, path: Path) -> BlobInfo:
        """Copy an object to a local file, verified, written atomically."""
        info = self.stat(key)
        LocalArtifactStore._atomic_write(path, cast(BinaryIO, _IterReader(self.stream(key))))
        return info


# -- local directory ----------------------------------------------------------------------------------------


class LocalArtifactStore(_StoreBase):
    """Objects are plain files under `root` (browsable), their checksum and metadata in `root/.meta/`.

    A write goes to a temp file then is renamed into place; the metadata is committed first, so a crash
    leaves either the old object, the new one, or (for a new key) nothing visible."""

    META_DIR = ".meta"

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        (self.root / self.META_DIR).mkdir(parents=True, exist_ok=True)

    def _paths(self, key: str) -> tuple[Path, Path]:
        check_key(key)
        if key.split("/", 1)[0] == self.META_DIR:
            raise InvalidArgument("key", f"{self.META_DIR}/ is reserved")
        return self.root / key, self.root / self.META_DIR / f"{key}.json"

    @staticmethod
    def _write_temp(target: Path, source: BinaryIO) -> tuple[Path, str, int]:
        """Copy `source` into a temp file beside `target`, hashing on the way; fsynced."""
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        digest, size = hashlib.sha256(), 0
        try:
            with open(tmp, "wb") as out:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp, digest.hexdigest(), size

    @classmethod
    def _atomic_write(cls, target: Path, source: BinaryIO) -> None:
        tmp, _, _ = cls._write_temp(target, source)
        tmp.replace(target)

    def put(
        self,
        key: str,
        data: bytes | BinaryIO,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> BlobInfo:
        data_path, meta_path = self._paths(key)
        metadata = _check_metadata(metadata)
        source = io.BytesIO(bytes(data)) if isinstance(data, bytes | bytearray | memoryview) else data
        tmp, sha, size = self._write_temp(data_path, source)
        try:
            info = BlobInfo(key, size, sha, _guess_type(key, content_type), metadata, datetime.now(UTC))
            record = {"sha256": sha, "size": size, "content_type": info.content_type, "metadata": metadata}
            # The checksum is committed before the data becomes visible under its key.
            self._atomic_write(meta_path, io.BytesIO(json.dumps(record).encode()))
            tmp.replace(data_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return info

    def put_file(
        self, key: str, path: Path, *, content_type: str | None = None, metadata: dict[str, str] | None = None
    ) -> BlobInfo:
        with open(path, "rb") as handle:
            return self.put(key, handle, content_type=content_type, metadata=metadata)

    def stat(self, key: str) -> BlobInfo:
        data_path, meta_path = self._paths(key)
        try:
            record = json.loads(meta_path.read_text())
            stat = data_path.stat()
        except FileNotFoundError:
            raise BlobNotFound(f"artifact {key} not found") from None
        modified = datetime.fromtimestamp(stat.st_mtime, UTC)
        return BlobInfo(
            key, stat.st_size, record["sha256"], record["content_type"], record["metadata"], modified
        )

    def stream(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        info = self.stat(key)
        data_path, _ = self._paths(key)

        def chunks() -> Iterator[bytes]:
            with open(data_path, "rb") as handle:
                while chunk := handle.read(chunk_size):
                    yield chunk

        return iter(_VerifyingReader(key, chunks(), info.sha256))

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        check_prefix(prefix)
        meta_root = self.root / self.META_DIR
        for meta_path in sorted(meta_root.rglob("*.json")):
            key = meta_path.relative_to(meta_root).as_posix()[: -len(".json")]
            if key.startswith(prefix) and not meta_path.name.startswith("."):
                with contextlib.suppress(BlobNotFound):
                    yield self.stat(key)

    def delete(self, key: str) -> None:
        data_path, meta_path = self._paths(key)
        if not meta_path.exists() and not data_path.exists():
            raise BlobNotFound(f"artifact {key} not found")
        data_path.unlink(missing_ok=True)
        meta_path.unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        if not prefix:
            raise InvalidArgument("prefix", "is required: refusing to delete everything")
        keys = [info.key for info in self.list(prefix)]
        for key in keys:
            self.delete(key)
        return len(keys)

    def presigned_url(self, key: str, expires: timedelta = timedelta(hours=1)) -> str:
        """A file:// URL: on one machine the file itself is the download."""
        self.stat(key)
        return self._paths(key)[0].as_uri()


class _IterReader(io.RawIOBase):
    """A file-like view of an iterator of chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.buffer = chunks, b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            try:
                self.buffer += next(self.chunks)
            except StopIteration:
                break
        if size < 0:
            size = len(self.buffer)
        out, self.buffer = self.buffer[:size], self.buffer[size:]
        return out


# -- S3 / MinIO ---------------------------------------------------------------------------------------------


class S3ArtifactStore(_StoreBase):
    """Objects in one S3 bucket through the minio SDK; the checksum travels as x-amz-meta-sha256."""

    PART_SIZE = 16 * CHUNK

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        *,
        access_key: str,
        secret_key: str,
        secure: bool = True,
        region: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        import urllib3
        from minio import Minio
        from minio.helpers import check_bucket_name

        try:
            check_bucket_name(bucket, strict=True)
        except ValueError:
            raise InvalidArgument("bucket", f"{bucket!r} is not a valid S3 bucket name") from None

        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout, read=max(timeout, 60)),
            retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
            maxsize=10,
        )
        self.endpoint = endpoint
        self.bucket = bucket
        self.client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=http,
        )
        self._call(self._bootstrap)

    def _bootstrap(self) -> None:
        if not self.client.bucket_exists(self.bucket):
            self.client.make_bucket(self.bucket)

    def _call(self, fn, *args, **kwargs):
        from minio.error import S3Error
        from urllib3.exceptions import HTTPError

        try:
            return fn(*args, **kwargs)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                raise BlobNotFound(
                    f"artifact {exc.object_name or args[0] if args else ''} not found"
                ) from None
            raise StoreUnavailable(
                f"S3 {self.endpoint} bucket {self.bucket}: {exc.code}: {exc.message}"
            ) from exc
        except (HTTPError, OSError) as exc:
            raise StoreUnavailable(f"S3 {self.endpoint} is unreachable: {exc}") from exc

    def put(
        self,
        key: str,
        data: bytes | BinaryIO,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> BlobInfo:
        check_key(key)
        metadata = _check_metadata(metadata)
        body, sha, size = _spool(data)
        with contextlib.closing(body):
            return self._upload(key, body, sha, size, content_type, metadata)

    def put_file(
        self, key: str, path: Path, *, content_type: str | None = None, metadata: dict[str, str] | None = None
    ) -> BlobInfo:
        check_key(key)
        metadata = _check_metadata(metadata)
        sha, size = _hash_file(path)
        with open(path, "rb") as handle:
            return self._upload(key, handle, sha, size, content_type, metadata)

    def _upload(
        self,
        key: str,
        body: BinaryIO,
        sha: str,
        size: int,
        content_type: str | None,
        metadata: dict[str, str],
    ) -> BlobInfo:
        content_type = _guess_type(key, content_type)
        # Objects over PART_SIZE go up as a multipart upload; S3 shows nothing until it completes.
        self._call(
            self.client.put_object,
            self.bucket,
            key,
            body,
            size,
            content_type=content_type,
            metadata={"sha256": sha, **metadata},
            part_size=self.PART_SIZE,
        )
        return BlobInfo(key, size, sha, content_type, metadata, datetime.now(UTC))

    def stat(self, key: str) -> BlobInfo:
        check_key(key)
        result = self._call(self.client.stat_object, self.bucket, key)
        metadata = {
            k.lower().removeprefix("x-amz-meta-"): v
            for k, v in (result.metadata or {}).items()
            if k.lower().startswith("x-amz-meta-")
        }
        sha = metadata.pop("sha256", "")
        return BlobInfo(key, result.size or 0, sha, result.content_type or "", metadata, result.last_modified)

    def stream(self, key: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        info = self.stat(key)
        if not info.sha256:
            raise ChecksumMismatch(f"{key}: stored without a checksum: not written through airlab")
        response = self._call(self.client.get_object, self.bucket, key)

        def chunks() -> Iterator[bytes]:
            try:
                yield from response.stream(chunk_size)
            finally:
                response.close()
                response.release_conn()

        return iter(_VerifyingReader(key, chunks(), info.sha256))

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        check_prefix(prefix)
        objects = self._call(self.client.list_objects, self.bucket, prefix=prefix, recursive=True)
        for item in objects:
            yield BlobInfo(item.object_name, item.size or 0, modified=item.last_modified)

    def delete(self, key: str) -> None:
        self.stat(key)  # S3 deletes of missing keys succeed silently: report them
        self._call(self.client.remove_object, self.bucket, key)

    def delete_prefix(self, prefix: str) -> int:
        from minio.deleteobjects import DeleteObject

        if not prefix:
            raise InvalidArgument("prefix", "is required: refusing to delete everything")
        keys = [info.key for info in self.list(prefix)]
        errors = list(self._call(self.client.remove_objects, self.bucket, [DeleteObject(k) for k in keys]))
        if errors:
            raise StoreUnavailable(f"could not delete {len(errors)} objects under {prefix}: {errors[0]}")
        return len(keys)

    def presigned_url(self, key: str, expires: timedelta = timedelta(hours=1)) -> str:
        self.stat(key)
        return self._call(self.client.presigned_get_object, self.bucket, key, expires=expires)


def artifact_store_from(settings: Settings) -> ArtifactStore:
    """The artifact store the settings name (credentials from AIRLAB_S3_ACCESS_KEY / _SECRET_KEY)."""
    return open_artifact_store(
        settings.resolved_artifacts_url(),
        access_key=settings.s3_access_key.get_secret_value(),
        secret_key=settings.s3_secret_key.get_secret_value(),
        region=settings.s3_region,
    )


def open_artifact_store(
    url: str, *, access_key: str = "", secret_key: str = "", region: str | None = None
) -> ArtifactStore:
    """`file:///path` or a plain path: a local directory. `s3://host:port/bucket` (TLS) or
    `s3+http://host:port/bucket`: S3/MinIO; credentials come from the caller (the environment), never
    from the URL. `?region=` is accepted on S3 URLs."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return LocalArtifactStore(Path(parsed.path if parsed.scheme else url))
    if parsed.scheme in ("s3", "s3+http", "s3+https"):
        bucket = parsed.path.strip("/")
        if not parsed.netloc or not bucket or "/" in bucket:
            raise InvalidArgument("artifacts_url", f"{url!r}: expected s3://HOST[:PORT]/BUCKET")
        if parsed.username or parsed.password:
            raise InvalidArgument("artifacts_url", "must not carry credentials: set them in the environment")
        query = parse_qs(parsed.query)
        return S3ArtifactStore(
            parsed.netloc,
            bucket,
            access_key=access_key,
            secret_key=secret_key,
            secure=parsed.scheme != "s3+http",
            region=(query.get("region") or [region or ""])[0] or None,
        )
    raise InvalidArgument("artifacts_url", f"unsupported scheme {parsed.scheme!r}: use file:// or s3://")
