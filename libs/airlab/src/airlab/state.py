"""State records in a JetStream KV bucket, changed by compare-and-set on the record's revision.

Each record carries the ids of the events already applied to it and an outbox of events its changes
produced. A handler's effect and its follow-up events are committed in one CAS write, and the outbox is
published (deduplicated by event id) and cleared after it: a crash at any point neither loses nor doubles
an effect or an event."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import nats.js.errors
from nats.js.kv import KeyValue

from airlab.errors import AlreadyExists, Conflict, NotFound, Unavailable
from airlab.events import event_from_dict, event_to_dict
from airlab.v1 import events_pb2

if TYPE_CHECKING:  # the bus's module names the research records (airlab.records), which use this one
    from airlab.bus import Publisher

log = logging.getLogger(__name__)

# Buckets of the lab's records, shared by the services that read them.
RESEARCH_BUCKET = "airlab_research"

# How many applied event ids a record remembers. Redeliveries come long before this many newer events.
APPLIED_LIMIT = 512

T = TypeVar("T")


class Codec(Protocol[T]):
    """How one bucket's records are typed. A record is stored as JSON; `decode` turns its JSON data into
    the typed value once per read, and `encode` turns a changed value back once per write. A decoded value
    must never change the JSON it came from (copy what may change): the store keeps that JSON to rewrite
    an unchanged record (a flush, an event that changed nothing) without encoding it again."""

    def decode(self, data: Any) -> T: ...

    def encode(self, value: T) -> Any: ...


class JsonObjects:
    """The codec of a bucket whose records are plain JSON objects (the runner's jobs)."""

    def decode(self, data: Any) -> dict[str, Any]:
        return copy.deepcopy(data)

    def encode(self, value: dict[str, Any]) -> Any:
        return value


JSON_OBJECTS = JsonObjects()


@dataclass
class Record(Generic[T]):
    """A record as read: its typed value, and the JSON it was stored as (`stored`, never handed out)."""

    key: str
    value: T
    stored: Any
    revision: int
    applied: list[str] = field(default_factory=list)
    outbox: list[events_pb2.Event] = field(default_factory=list)

    def encode(self) -> bytes:
        return json.dumps(
            {
                "data": self.stored,
                "applied": self.applied[-APPLIED_LIMIT:],
                "outbox": [event_to_dict(e) for e in self.outbox],
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, key: str, raw: bytes, revision: int, codec: Codec[T]) -> Record[T]:
        doc = json.loads(raw)
        return cls(
            key=key,
            value=codec.decode(doc["data"]),
            stored=doc["data"],
            revision=revision,
            applied=list(doc.get("applied", [])),
            outbox=[event_from_dict(e) for e in doc.get("outbox", [])],
        )


@dataclass
class Change(Generic[T]):
    """What a mutation produces: the record's new value and the events that announce it."""

    value: T
    events: Sequence[events_pb2.Event] = ()


# A mutation gets the record's value to change in place or replace; it returns None to change nothing.
Mutation = Callable[[T], "Change[T] | None"]


class Bus(Protocol):
    async def publish(self, event: events_pb2.Event) -> int: ...
    async def key_value(self, bucket: str, *, history: int = 8) -> KeyValue: ...
    async def kv_keys(self, bucket: str) -> list[str]: ...


class StateStore(Generic[T]):
    """Records of one kind in one KV bucket, typed by its codec. Build it before the bus connects;
    `await open()` after."""

    def __init__(self, bus: Bus, bucket: str, codec: Codec[T], *, kind: str = "record") -> None:
        self.bus = bus
        self.publisher: Publisher = bus
        self.bucket = bucket
        self.codec = codec
        self.kind = kind  # names the records in errors, e.g. "research r01... not found"
        self._kv: KeyValue | None = None

    async def open(self) -> StateStore[T]:
        self._kv = await self.bus.key_value(self.bucket)
        return self

    @property
    def kv(self) -> KeyValue:
        if self._kv is None:
            raise Unavailable(f"the {self.kind} store is not open yet")
        return self._kv

    async def get(self, key: str) -> Record[T]:
        try:
            entry = await self.kv.get(key)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            raise NotFound(f"{self.kind} {key} not found") from None
        if entry.value is None or entry.revision is None:
            raise NotFound(f"{self.kind} {key} not found")
        return Record.decode(key, entry.value, entry.revision, self.codec)

    async def find(self, key: str) -> Record[T] | None:
        try:
            return await self.get(key)
        except NotFound:
            return None

    async def keys(self) -> list[str]:
        """Keys of the bucket; a deleted one may be listed, and find() then returns None for it."""
        _ = self.kv  # Unavailable before open()
        return await self.bus.kv_keys(self.bucket)

    async def create(
        self, key: str, value: T, events: Sequence[events_pb2.Event] = (), *, publish: bool = True
    ) -> Record[T]:
        """Store a new record with its announcing events; AlreadyExists if the key is taken."""
        stored = self.codec.encode(value)
        record = Record(key=key, value=value, stored=stored, revision=0, outbox=list(events))
        try:
            record.revision = await self.kv.create(key, record.encode())
        except nats.js.errors.KeyWrongLastSequenceError:
            raise AlreadyExists(f"{self.kind} {key} already exists") from None
        return await self.flush(record) if publish else record

    async def mutate(
        self,
        key: str,
        mutation: Mutation[T],
        *,
        cause_id: str | None = None,
        attempts: int = 50,
        off_loop: bool = False,
        read: Record[T] | None = None,
    ) -> tuple[Record[T], bool]:
        """Apply `mutation` to the record's value by CAS, retrying on concurrent writes.

        With `cause_id` (the id of the event or request that causes the change) the mutation is applied at
        most once: a second call with the same id changes nothing. `mutation` returns None to change nothing.
        With `off_loop` it runs in a worker thread, so a slow one (the loop's TPE) does not hold up the
        event loop. `read` is the record as the caller just read it: the first attempt works on it instead
        of reading it again (its value is handed to the mutation, so the caller must not use it after).
        Returns the record (outbox flushed) and whether this call changed it; when it did not, the returned
        value is the one the mutation saw (what is stored is the record as it was)."""
        for _ in range(attempts):
            record, read = read or await self.get(key), None
            if cause_id is not None and cause_id in record.applied:
                return await self.flush(record), False
            change = await asyncio.to_thread(mutation, record.value) if off_loop else mutation(record.value)
            if change is None and cause_id is None:
                return await self.flush(record), False
            # An unchanged record is written back as it was stored: whatever the mutation did to the value
            # before it chose to change nothing is not kept.
            updated = Record(
                key=key,
                value=record.value if change is None else change.value,
                stored=record.stored if change is None else self.codec.encode(change.value),
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

    async def flush(self, record: Record[T]) -> Record[T]:
        """Publish the record's outbox (a re-published event is dropped by its id), then clear what was
        published. Events a concurrent writer added meanwhile stay for that writer's own flush."""
        if not record.outbox:
            return record
        for event in record.outbox:
            await self.publisher.publish(event)
        published = {e.id for e in record.outbox}
        current: Record[T] | None = record
        while True:
            current = current or await self.get(record.key)
            remaining = [e for e in current.outbox if e.id not in published]
            if len(remaining) == len(current.outbox):
                return current
            cleared = Record(
                current.key, current.value, current.stored, current.revision, current.applied, remaining
            )
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
