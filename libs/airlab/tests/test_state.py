"""State records in a real JetStream KV bucket."""

import asyncio

import pytest

from airlab.errors import AlreadyExists, NotFound, Unavailable
from airlab.events import make_event, research_filter
from airlab.state import JSON_OBJECTS, Change, StateStore
from airlab.v1 import events_pb2


async def open_store(bus, bucket="things"):
    return await StateStore(bus, bucket, JSON_OBJECTS, kind="thing").open()


async def events_of(bus, research_id):
    return [e async for e in bus.read(research_filter(research_id))]


async def test_create_get_and_missing(bus):
    store = await open_store(bus)
    record = await store.create("a", {"n": 1})
    assert record.revision > 0
    assert (await store.get("a")).value == {"n": 1}
    with pytest.raises(AlreadyExists):
        await store.create("a", {"n": 2})
    assert (await store.get("a")).value == {"n": 1}
    with pytest.raises(NotFound, match="thing b not found"):
        await store.get("b")
    assert await store.keys() == ["a"]


async def test_a_store_refuses_work_before_it_is_open(bus):
    with pytest.raises(Unavailable):
        await StateStore(bus, "x", JSON_OBJECTS).get("a")


async def test_concurrent_mutations_lose_no_update(bus):
    store = await open_store(bus)
    await store.create("counter", {"n": 0})

    def increment(data):
        data["n"] += 1
        return Change(data)

    await asyncio.gather(*(store.mutate("counter", increment) for _ in range(20)))
    assert (await store.get("counter")).value["n"] == 20


async def test_a_cause_is_applied_once_and_its_events_published_once(bus):
    store = await open_store(bus)
    await store.create("r5", {"n": 0})

    def increment(data):
        data["n"] += 1
        return Change(
            data,
            [
                make_event(
                    "experiment.progress",
                    "r5",
                    events_pb2.ExperimentProgress(step=data["n"]),
                    event_id="cause-1.counted",
                )
            ],
        )

    _, first = await store.mutate("r5", increment, cause_id="cause-1")
    record, second = await store.mutate("r5", increment, cause_id="cause-1")
    assert (first, second) == (True, False)
    assert record.value["n"] == 1
    assert record.outbox == []
    assert [e.id for e in await events_of(bus, "r5")] == ["cause-1.counted"]


class FailingPublisher:
    """A fake publisher that fails, standing in for a crash between the commit and the publish."""

    async def publish(self, event):
        raise ConnectionError("crashed before publishing")


async def test_events_committed_before_a_crash_are_published_on_recovery(bus):
    store = await open_store(bus)
    await store.create("r6", {"state": "new"})
    crashing = await StateStore(bus, "things", JSON_OBJECTS).open()
    crashing.publisher = FailingPublisher()

    def advance(data):
        return Change({"state": "done"}, [make_event("research.completed", "r6", event_id="c-7.done")])

    with pytest.raises(ConnectionError):
        await crashing.mutate("r6", advance, cause_id="c-7")
    record = await store.get("r6")
    assert record.value == {"state": "done"} and [e.id for e in record.outbox] == ["c-7.done"]
    assert await events_of(bus, "r6") == []

    # The redelivered cause changes nothing again but flushes the outbox; recovery finds nothing left.
    _, changed = await store.mutate("r6", advance, cause_id="c-7")
    assert changed is False
    assert await store.flush_all() == 0
    assert [e.id for e in await events_of(bus, "r6")] == ["c-7.done"]
    assert (await store.get("r6")).outbox == []


async def test_flush_all_publishes_every_pending_outbox(bus):
    store = await open_store(bus)
    for key in ("r7", "r8"):
        await store.create(
            key, {}, [make_event("research.created", key, event_id=f"{key}.created")], publish=False
        )
    assert await store.flush_all() == 2
    assert await store.flush_all() == 0
    assert [e.id for e in await events_of(bus, "r8")] == ["r8.created"]


async def test_mutation_errors_leave_the_record_unchanged(bus):
    store = await open_store(bus)
    created = await store.create("r9", {"n": 1})

    def refuse(data):
        raise ValueError("not allowed")

    with pytest.raises(ValueError):
        await store.mutate("r9", refuse, cause_id="c-1")
    after = await store.get("r9")
    assert after.revision == created.revision and after.applied == []
