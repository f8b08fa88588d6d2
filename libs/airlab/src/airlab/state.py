"""State records in a JetStream KV bucket, changed by compare-and-set on the record's revision.

Each record carries the ids of the events already applied to it and an outbox of events its changes
produced. A handler's effect and its follow-up events are committed in one CAS write, and the outbox is
published (deduplicated by event id) and cleared after it: a crash at any point neither loses nor doubles
an effect or an event."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import nats.js.errors
from nats.js.kv import KeyValue

from airlab.bus import Publisher
from airlab.errors import AlreadyExists, Conflict, NotFound, Unavailable
from airlab.events import event_from_dict, event_to_dict
from airlab.v1 import events_pb2

log = logging.getLogger(__name__)

# Buckets of the lab's records, shared by the services that read them.
RESEARCH_BUCKET = "airlab_research"

# How many applied event ids a record remembers. Redeliveries come long before this many newer events.
APPLIED_LIMIT = 512


@dataclass
class Record:
    key: str
    data: dict[str, Any]
    revision: int
    applied: list[str] = field(default_factory=list)
    outbox: list[events_pb2.Event] = field(default_factory=list)

    def encode(self) -> bytes:
        return json.dumps(
            {
                "data": self.data,
                "applied": self.applied[-APPLIED_LIMIT:],
                "outbox": [event_to_dict(e) for e in self.outbox],
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, key: str, raw: bytes, revision: int) -> Record:
        doc = json.loads(raw)
        return cls(
            key=key,
            data=doc["data"],
            revision=revision,
            applied=list(doc.get("applied", [])),
            outbox=[event_from_dict(e) for e in doc.get("outbox", [])],
        )


@dataclass
class Change:
    """What a mutation produces: the record's new data and the events that announce it."""

    data: dict[str, Any]
    events: Sequence[events_pb2.Event] = ()


Mutation = Callable[[dict[str, Any]], Change | None]


class Bus(Publisher, Protocol):
    async def key_value(self, bucket: str, *, history: int = 8) -> KeyValue: ...
    async def kv_keys(self, bucket: str) -> list[str]: ...


class StateStore:
    """Records of one kind in one KV bucket. Build it before the bus connects; `await open()` after."""

    def __init__(self, bus: Bus, bucket: str, *, kind: str = "record") -> None:
        self.bus = bus
        self.publisher: Publisher = bus
        self.bucket = bucket
        self.kind = kind  # names the records in errors, e.g. "research r01... not found"
        self._kv: KeyValue | None = None

    async def open(self) -> StateStore:
        self._kv = await self.bus.key_value(self.bucket)
        return self

    @property
    def kv(self) -> KeyValue:
        if self._kv is None:
            raise Unavailable(f"the {self.kind} store is not open yet")
        return self._kv

    async def get(self, key: str) -> Record:
        try:
            entry = await self.kv.get(key)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            raise NotFound(f"{self.kind} {key} not found") from None
        if entry.value is None or entry.revision is None:
            raise NotFound(f"{self.kind} {key} not found")
        return Record.decode(key, entry.value, entry.revision)

    async def find(self, key: str) -> Record | None:
        try:
            return await self.get(key)
        except NotFound:
            return None

    async def keys(self) -> list[str]:
        """Keys of the bucket; a deleted one may be listed, and find() then returns None for it."""
        _ = self.kv  # Unavailable before open()
        return await self.bus.kv_keys(self.bucket)

    async def create(
        self, key: str, data: dict[str, Any], events: Sequence[events_pb2.Event] = (), *, publish: bool = True
    ) -> Record:
        """Store a new record with its announcing events; AlreadyExists if the key is taken."""
        record = Record(key=key, data=data, revision=0, outbox=list(events))
        try:
            record.revision = await self.kv.create(key, record.encode())
        except nats.js.errors.KeyWrongLastSequenceError:
            raise AlreadyExists(f"{self.kind} {key} already exists") from None
        return await self.flush(record) if publish else record

    async def mutate(
        self,
        key: str,
        mutation: Mutation,
        *,
        cause_id: str | None = None,
        attempts: int = 50,
        off_loop: bool = False,
    ) -> tuple[Record, bool]:
        """Apply `mutation` to the record's data by CAS, retrying on concurrent writes.

        With `cause_id` (the id of the event or request that causes the change) the mutation is applied at
        most once: a second call with the same id changes nothing. `mutation` returns None to change nothing.
        With `off_loop` it runs in a worker thread, so a slow one (the loop's TPE) does not hold up the
        event loop. Returns the record (outbox flushed) and whether this call changed it."""
        for _ in range(attempts):
            record = await self.get(key)
            if cause_id is not None and cause_id in record.applied:
                return await self.flush(record), False
            data = json.loads(json.dumps(record.data))
            change = await asyncio.to_thread(mutation, data) if off_loop else mutation(data)
            if change is None and cause_id is None:
                return await self.flush(record), False
            updated = Record(
                key=key,
                data=record.data if change is None else change.data,
                revision=record.revision,
                applied=record.applied + ([cause_id] if cause_id else []),
                outbox=record.outbox + (list(change.events) if change else []),
            )
            try:
                updated.revision = await self.kv.update(key, updated.encode(), last=record.revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                continue
            return await self.flush(updated), change is not None
        raise Conflict(f"{self.kind} {key} kept changing under {attempts} attempts to update it")

    async def flush(self, record: Record) -> Record:
        """Publish the record's outbox (a re-published event is dropped by its id), then clear what was
        published. Events a concurrent writer added meanwhile stay for that writer's own flush."""
        if not record.outbox:
            return record
        for event in record.outbox:
            await self.publisher.publish(event)
        published = {e.id for e in record.outbox}
        current: Record | None = record
        while True:
            current = current or await self.get(record.key)
            remaining = [e for e in current.outbox if e.id not in published]
            if len(remaining) == len(current.outbox):
                return current
            cleared = Record(current.key, current.data, current.revision, current.applied, remaining)
            try:
                cleared.revision = await self.kv.update(current.key, cleared.encode(), last=current.revision)
            except nats.js.errors.KeyWrongLastSequenceError:
                current = None
                continue
            return cleared

    async def flush_all(self) -> int:
        """Publish every outbox left by a crash; returns how many records had one."""
        count = 0
        for key in await self.keys():
            record = await self.find(key)
            if record is not None and record.outbox:
                await self.flush(record)
                count += 1
        return count
