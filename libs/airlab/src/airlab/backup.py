"""Backups of the lab's state into the artifact store, and restores into an empty stack.

A backup holds every JetStream KV bucket of the lab (records with their keys) and every memory
collection (texts, payloads and vectors, with the embedding model that made them), under
`backups/<name>/` with a manifest of counts and checksums. Events stay in the JetStream stream, which
has its own retention; the artifact store is the backup's home, so back it up with its own tools.

Researches running at backup time go on after a restore: each research record keeps the requests its
loop sent that no answer had reached (airlab.research_record), and the restore sends them again with
their own ids. Whoever answers treats a request it already answered as a repeat (the runner announces an
ended experiment's end again; a job recorded as running on a runner that does not run it is queued
again), so nothing is lost and nothing finished runs again. The runners' presence and GPU leases are
the live processes' state, not the lab's: they are neither saved nor restored."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import nats.js.errors

from airlab import bus_access, tls
from airlab.blobs import ArtifactStore, artifact_store_from
from airlab.bus import EventBus
from airlab.errors import FailedPrecondition, NotFound
from airlab.ids import check_token
from airlab.memory import KINDS, MemoryStore, memory_from
from airlab.research_record import research_store
from airlab.settings import Settings
from airlab.state import RESEARCH_BUCKET
from airlab.v1 import research_pb2

PREFIX = "backups"
# KV buckets are streams named KV_<bucket>; the lab's buckets start with this.
BUCKET_PREFIX = "airlab_"
# Buckets of the running processes' live state (airlab_runner.presence, airlab_runner.gpus): a restored
# entry would describe processes that are not there.
LIVE_BUCKETS = frozenset({"airlab_runners", "airlab_gpu_leases"})


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


@dataclass
class Restored:
    manifest: Manifest
    # Researches that were running at backup time, and the requests sent again for them.
    running: list[str] = field(default_factory=list)
    requests_sent: int = 0


def default_name() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _key(name: str, *parts: str) -> str:
    return "/".join([PREFIX, name, *parts])


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(row, separators=(",", ":")).encode() + b"\n" for row in rows)


async def lab_buckets(bus: EventBus) -> list[str]:
    names = [info.config.name for info in await bus.js.streams_info()]
    buckets = (n[3:] for n in names if n and n.startswith(f"KV_{BUCKET_PREFIX}"))
    return sorted(b for b in buckets if b not in LIVE_BUCKETS)


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
) -> Restored:
    """Restore a backup into an empty stack, then send again what its running researches were waiting
    for. A stack that already holds records or memories is refused unless `force` (then restored keys and
    memories overwrite those with the same key or id)."""
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
    restored = Restored(manifest)
    if RESEARCH_BUCKET in buckets:
        await _resume(bus, restored)
    return restored


async def _resume(bus: EventBus, restored: Restored) -> None:
    """Send again the requests the restored running researches await (their own ids)."""
    researches = await research_store(bus).open()
    for key in await researches.keys():
        record = await researches.find(key)
        if record is None or record.value.research.state != research_pb2.RESEARCH_STATE_RUNNING:
            continue
        restored.running.append(key)
        for request in record.value.awaited_requests():
            await bus.publish(request)
            restored.requests_sent += 1


@asynccontextmanager
async def _lab_state(
    settings: Settings, nats_url: str
) -> AsyncIterator[tuple[EventBus, MemoryStore, ArtifactStore]]:
    """The lab's bus (as the admin user, at `nats_url`), memory and artifact store."""
    store = artifact_store_from(settings)
    memory = memory_from(settings)
    bus = EventBus(
        nats_url,
        source="cli",
        credentials=bus_access.credentials_for(settings, bus_access.ADMIN),
        tls=tls.client_files(settings),
    )
    try:
        await bus.connect(timeout=10)
        yield bus, memory, store
    finally:
        memory.close()
        await bus.close()


async def back_up_lab(settings: Settings, nats_url: str, name: str = "") -> Manifest:
    """`airlab backup`: a backup of the lab the settings name."""
    async with _lab_state(settings, nats_url) as (bus, memory, store):
        return await create_backup(bus, memory, store, name)


async def restore_lab(settings: Settings, nats_url: str, name: str, *, force: bool = False) -> Restored:
    """`airlab restore`: the backup restored into the lab the settings name."""
    async with _lab_state(settings, nats_url) as (bus, memory, store):
        return await restore_backup(bus, memory, store, name, force=force)
