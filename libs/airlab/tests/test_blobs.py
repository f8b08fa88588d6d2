"""The artifact store: one test matrix, run on the local directory and on S3 (moto's server over HTTP
through the real minio SDK)."""

import hashlib
import io
import os
import urllib.request
from pathlib import Path

import pytest
from minio import Minio

from airlab.blobs import (
    BlobNotFound,
    ChecksumMismatch,
    LocalArtifactStore,
    S3ArtifactStore,
    StoreUnavailable,
    experiment_key,
    open_artifact_store,
)
from airlab.errors import InvalidArgument

BUCKET = "airlab-test"


@pytest.fixture(scope="module")
def s3_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"{host}:{port}"
    server.stop()


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path):
    if request.param == "local":
        store = open_artifact_store(f"file://{tmp_path / 'artifacts'}")
        assert isinstance(store, LocalArtifactStore)

        def corrupt(key: str, data: bytes) -> None:
            (store.root / key).write_bytes(data)

    else:
        endpoint = request.getfixturevalue("s3_server")
        bucket = f"{BUCKET}-{os.urandom(4).hex()}"
        store = open_artifact_store(f"s3+http://{endpoint}/{bucket}", access_key="test", secret_key="test")
        assert isinstance(store, S3ArtifactStore)
        raw = Minio(endpoint, access_key="test", secret_key="test", secure=False)

        def corrupt(key: str, data: bytes) -> None:
            # Behind the store's back: new bytes, the old checksum kept in the metadata.
            sha = store.stat(key).sha256
            raw.put_object(bucket, key, io.BytesIO(data), len(data), metadata={"sha256": sha})

    store.corrupt = corrupt
    return store


def test_small_object_round_trip_with_metadata(backend):
    key = experiment_key("r1", "x1", "result.json")
    info = backend.put(key, b'{"accuracy": 0.97}', metadata={"seed": "3"})
    assert info.sha256 == hashlib.sha256(b'{"accuracy": 0.97}').hexdigest()
    assert backend.get(key) == b'{"accuracy": 0.97}'
    stat = backend.stat(key)
    assert (stat.size, stat.sha256, stat.content_type) == (18, info.sha256, "application/json")
    assert stat.metadata == {"seed": "3"}
    assert backend.exists(key)
    backend.put(key, b"{}", content_type="text/plain")
    assert backend.get(key) == b"{}" and backend.stat(key).content_type == "text/plain"


def test_fifty_megabytes_go_up_in_parts_and_stream_back(backend, tmp_path):
    source = tmp_path / "model.bin"
    payload = os.urandom(50 * 1024 * 1024)
    source.write_bytes(payload)
    key = experiment_key("r1", "x1", "models", "model.bin")
    info = backend.put_file(key, source)
    assert info.size == len(payload)
    streamed = hashlib.sha256()
    chunks = 0
    for chunk in backend.stream(key):
        streamed.update(chunk)
        chunks += 1
    assert streamed.hexdigest() == hashlib.sha256(payload).hexdigest() and chunks > 1
    target = tmp_path / "back.bin"
    backend.download(key, target)
    assert target.read_bytes() == payload


def test_streams_are_stored_too(backend):
    backend.put("research/r1/logs/train.log", io.BytesIO(b"line\n" * 1000))
    assert backend.get("research/r1/logs/train.log").count(b"line") == 1000


def test_presigned_url_downloads_the_object(backend):
    backend.put("research/r1/reports/report.md", b"# report")
    url = backend.presigned_url("research/r1/reports/report.md")
    with urllib.request.urlopen(url) as response:
        assert response.read() == b"# report"


def test_listing_and_deleting_a_research(backend):
    for key in ("research/r1/plan.json", "research/r1/experiments/x/result.json", "research/r2/plan.json"):
        backend.put(key, b"{}")
    assert sorted(i.key for i in backend.list("research/r1/")) == [
        "research/r1/experiments/x/result.json",
        "research/r1/plan.json",
    ]
    assert all(i.size == 2 for i in backend.list("research/"))
    assert backend.delete_prefix("research/r1/") == 2
    assert [i.key for i in backend.list("research/")] == ["research/r2/plan.json"]
    backend.delete("research/r2/plan.json")
    assert list(backend.list()) == []
    with pytest.raises(InvalidArgument):
        backend.delete_prefix("")


def test_missing_objects_are_not_found(backend):
    for call in (
        lambda: backend.get("research/none"),
        lambda: backend.stat("research/none"),
        lambda: backend.delete("research/none"),
        lambda: backend.presigned_url("research/none"),
    ):
        with pytest.raises(BlobNotFound):
            call()
    assert not backend.exists("research/none")


def test_corruption_behind_the_stores_back_is_detected(backend):
    backend.put("research/r1/result.json", b'{"accuracy": 0.91}')
    backend.corrupt("research/r1/result.json", b'{"accuracy": 0.99}')
    with pytest.raises(ChecksumMismatch):
        backend.get("research/r1/result.json")


@pytest.mark.parametrize(
    "key", ["", "/etc/passwd", "research/../secrets", "a//b", "./a", "a/./b", "a\\b", "a\nb", "x" * 1100]
)
def test_invalid_keys_are_refused(backend, key):
    with pytest.raises(InvalidArgument) as refused:
        backend.put(key, b"x")
    assert str(refused.value).startswith("key: ")


def test_reserved_and_bad_metadata_are_refused(backend):
    with pytest.raises(InvalidArgument, match=r"metadata\.sha256"):
        backend.put("a", b"x", metadata={"sha256": "0"})
    with pytest.raises(InvalidArgument):
        backend.put("a", b"x", metadata={"Bad Name": "v"})
    assert not backend.exists("a")


class BrokenStream(io.RawIOBase):
    """A fake upload source that fails halfway, as a dying producer would."""

    def __init__(self) -> None:
        self.sent = 0

    def readable(self) -> bool:
        return True

    def read(self, size=-1):
        if self.sent > 3 * 1024 * 1024:
            raise OSError("producer died")
        self.sent += 1024 * 1024
        return b"x" * 1024 * 1024


def test_a_failed_write_leaves_nothing_visible(backend):
    with pytest.raises(OSError, match="producer died"):
        backend.put("research/r1/models/partial.bin", BrokenStream())
    assert not backend.exists("research/r1/models/partial.bin")
    assert list(backend.list("research/r1/")) == []


def test_local_writes_leave_no_temp_files(tmp_path):
    store = LocalArtifactStore(tmp_path / "a")
    store.put("research/r1/plan.json", b"{}")
    with pytest.raises(OSError):
        store.put("research/r1/models/partial.bin", BrokenStream())
    names = sorted(p.name for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert names == ["plan.json", "plan.json.json"]


def test_unreachable_s3_is_a_clear_error():
    with pytest.raises(StoreUnavailable, match="unreachable"):
        S3ArtifactStore("127.0.0.1:9", "airlab", access_key="a", secret_key="b", secure=False, timeout=0.5)
    with pytest.raises(InvalidArgument, match="bucket"):
        S3ArtifactStore("127.0.0.1:9", "B_", access_key="a", secret_key="b", secure=False)


def test_urls_pick_the_backend_and_refuse_credentials(tmp_path):
    assert isinstance(open_artifact_store(str(tmp_path / "x")), LocalArtifactStore)
    for url in ("s3://user:pw@host:9000/bucket", "s3://host:9000", "ftp://host/x"):
        with pytest.raises(InvalidArgument):
            open_artifact_store(url)
    assert Path(tmp_path / "x").is_dir()
