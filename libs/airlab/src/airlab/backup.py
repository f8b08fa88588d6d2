"""Backups of the lab's state into the artifact store, and restores into an empty stack.

A backup holds every JetStream KV bucket of the lab (records with their keys) and every memory
collection (texts, payloads and vectors, with the embedding model that made them), under
`backups/<name>/` with a manifest of counts and checksums. Events stay in the JetStream stream, which
has its own retention; the artifact store is the backup's home, so back it up with its own tools."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import nats.js.errors

from airlab.blobs import ArtifactStore
from airlab.bus import EventBus
from airlab.errors import FailedPrecondition, NotFound
from airlab.ids import check_token
from airlab.memory import KINDS, MemoryStore

PREFIX = "backups"
# KV buckets are streams named KV_<bucket>; the lab's buckets start with this.
BUCKET_PREFIX = "airlab_"


@dataclass
class Manifest:
    name: str
    created: str
    buckets: dict[str, int] = field(default_factory=dict)
    memories: dict[str, int] = field(default_factory=dict)
    embedding_model: str = ""
    embedding_dim: int = 0
    # sha256 of each part, by artifact key.
    parts: dict[str, str] = field(default_factory=dict)


def default_name() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _key(name: str, *parts: str) -> str:
    return "/".join([PREFIX, name, *parts])


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(row, separators=(",", ":")).encode() + b"\n" for row in rows)


async def lab_buckets(bus: EventBus) -> list[str]:
    names = [info.config.name for info in await bus.js.streams_info()]
    return sorted(n[3:] for n in names if n and n.startswith(f"KV_{BUCKET_PREFIX}"))


async def _bucket_rows(bus: EventBus, bucket: str) -> list[dict[str, Any]]:
    kv = await bus.js.key_value(bucket)
    rows = []
    for key in await bus.kv_keys(bucket):
        try:
            entry = await kv.get(key)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            continue
        rows.append({"key": key, "value": base64.b64encode(entry.value or b"").decode()})
    return rows


async def create_backup(bus: EventBus, memory: MemoryStore, store: ArtifactStore, name: str = "") -> Manifest:
    name = check_token("name", name or default_name())
    if store.exists(_key(name, "manifest.json")):
        raise FailedPrecondition(f"backup {name} already exists")
    manifest = Manifest(
        name=name,
        created=datetime.now(UTC).isoformat(),
        embedding_model=memory.embedder.name,
        embedding_dim=memory.embedder.dim,
    )

    def put(key: str, rows: list[dict[str, Any]]) -> None:
        data = _jsonl(rows)
        store.put(key, data, content_type="application/x-ndjson")
        manifest.parts[key] = hashlib.sha256(data).hexdigest()

    for bucket in await lab_buckets(bus):
        rows = await _bucket_rows(bus, bucket)
        put(_key(name, "kv", f"{bucket}.jsonl"), rows)
        manifest.buckets[bucket] = len(rows)
    for kind in KINDS:
        points = list(memory.export(kind))
        put(_key(name, "memory", f"{kind}.jsonl"), points)
        manifest.memories[kind] = len(points)
    # The manifest goes last: a backup without one is incomplete and is not listed.
    store.put(_key(name, "manifest.json"), json.dumps(asdict(manifest), indent=2).encode())
    return manifest


def list_backups(store: ArtifactStore) -> list[Manifest]:
    found = []
    for info in store.list(f"{PREFIX}/"):
        if info.key.endswith("/manifest.json"):
            found.append(Manifest(**json.loads(store.get(info.key))))
    return sorted(found, key=lambda m: m.created)


def read_manifest(store: ArtifactStore, name: str) -> Manifest:
    check_token("name", name)
    try:
        return Manifest(**json.loads(store.get(_key(name, "manifest.json"))))
    except NotFound:
        raise NotFound(f"backup {name} not found (or incomplete)") from None


def _rows(store: ArtifactStore, manifest: Manifest, key: str) -> list[dict[str, Any]]:
    data = store.get(key)
    if hashlib.sha256(data).hexdigest() != manifest.parts.get(key):
        raise FailedPrecondition(f"backup part {key} does not match its manifest")
    return [json.loads(line) for line in data.splitlines() if line]


async def restore_backup(
    bus: EventBus, memory: MemoryStore, store: ArtifactStore, name: str, *, force: bool = False
) -> Manifest:
    """Restore a backup into an empty stack. A stack that already holds records or memories is refused
    unless `force` (then restored keys and memories overwrite those with the same key or id)."""
    manifest = read_manifest(store, name)
    if not force:
        occupied = [b for b in await lab_buckets(bus) if await _bucket_rows(bus, b)]
        occupied += [f"memory:{kind}" for kind in KINDS if memory.count(kind)]
        if occupied:
            raise FailedPrecondition(f"the stack is not empty ({', '.join(occupied)}): restore needs --force")
    # Read and check every part before writing anything.
    buckets = {b: _rows(store, manifest, _key(name, "kv", f"{b}.jsonl")) for b in manifest.buckets}
    memories = {k: _rows(store, manifest, _key(name, "memory", f"{k}.jsonl")) for k in manifest.memories}
    for bucket, rows in buckets.items():
        kv = await bus.key_value(bucket)
        for row in rows:
            await kv.put(row["key"], base64.b64decode(row["value"]))
    same_model = (manifest.embedding_model, manifest.embedding_dim) == (
        memory.embedder.name,
        memory.embedder.dim,
    )
    for kind, points in memories.items():
        if same_model:
            memory.restore(kind, points)
        else:  # vectors of another model must not mix with ours: embed the texts again
            memory.reembed_points(kind, points)
    return manifest
