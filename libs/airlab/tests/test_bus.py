"""The event bus against a real nats-server with JetStream."""

import asyncio

import pytest

from airlab.bus import EventBus
from airlab.events import make_event, research_filter, type_filter
from airlab.settings import BusSettings


async def collect(bus: EventBus, subject: str, **kwargs) -> list:
    return [event async for event in bus.read(subject, **kwargs)]


async def test_stream_creation_is_idempotent_and_follows_settings(nats_server):
    first = EventBus(nats_server.url, source="a")
    await first.connect()
    await first.ensure_stream()
    second = EventBus(nats_server.url, source="b", settings=BusSettings(duplicate_window_seconds=60))
    await second.connect()
    info = await second.js.stream_info("AIRLAB")
    assert info.config.subjects == ["airlab.>"]
    assert info.config.duplicate_window == 60
    await first.close()
    await second.close()


async def test_an_event_published_twice_is_stored_once(bus):
    event = make_event("research.created", "r1", {"goal": "g"})
    first = await bus.publish(event)
    again = await bus.publish(event)
    assert first == again
    events = await collect(bus, research_filter("r1"))
    assert [e.id for e in events] == [event.id]
    assert events[0].sequence == first
    assert events[0].source == "test"
    assert dict(events[0].payload) == {"goal": "g"}


async def test_consumer_handles_each_event_once_and_acks(bus):
    seen: list[str] = []
    done = asyncio.Event()

    async def handler(event):
        seen.append(event.id)
        if len(seen) == 5:
            done.set()

    consumer = await bus.consume("worker", [type_filter("work.item")], handler)
    ids = [(await bus.publish(make_event("work.item", payload={"n": n})), n)[1] for n in range(5)]
    await bus.publish(make_event("other.thing"))  # not on the consumer's subjects
    await asyncio.wait_for(done.wait(), 10)
    await asyncio.sleep(0.2)
    assert len(seen) == len(ids) == 5
    info = await bus.js.consumer_info("AIRLAB", "worker")
    assert info.num_ack_pending == 0 and info.num_pending == 0
    await consumer.stop()


async def test_failing_handler_is_retried_then_dead_lettered(bus):
    attempts: list[int] = []

    async def always_fails(event):
        attempts.append(1)
        raise ValueError("cannot handle this")

    await bus.consume("fragile", [type_filter("work.item")], always_fails, max_deliver=3)
    event = make_event("work.item", "r9", {"n": 1})
    await bus.publish(event)
    for _ in range(200):
        dead = await collect(bus, "airlab.deadletter.*.r9")
        if dead:
            break
        await asyncio.sleep(0.05)
    assert len(attempts) == 3
    assert len(dead) == 1
    letter = dead[0]
    assert letter.type == "deadletter.fragile"
    assert letter.correlation_id == event.id
    assert letter.payload["deliveries"] == 3
    assert "ValueError: cannot handle this" in letter.payload["error"]
    assert letter.payload["event"]["id"] == event.id
    await asyncio.sleep(0.5)
    assert len(attempts) == 3  # terminated: not delivered again


async def test_a_handler_that_fails_once_succeeds_on_redelivery(bus):
    calls: list[int] = []
    done = asyncio.Event()

    async def flaky(event):
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("transient")
        done.set()

    await bus.consume("flaky", [type_filter("work.item")], flaky)
    await bus.publish(make_event("work.item"))
    await asyncio.wait_for(done.wait(), 10)
    assert len(calls) == 2


async def test_undecodable_messages_go_to_dead_letters(bus):
    handled: list[str] = []

    async def handler(event):
        handled.append(event.id)

    await bus.consume("strict", [type_filter("work.item")], handler)
    await bus.js.publish("airlab.work.item._", b"\xff\xfe not protobuf", stream="AIRLAB")
    for _ in range(100):
        dead = await collect(bus, "airlab.deadletter.strict.>")
        if dead:
            break
        await asyncio.sleep(0.05)
    assert handled == []
    assert dead and dead[0].payload["event"]["type"] == "bus.undecodable"


async def test_read_replays_from_a_sequence_and_follows_new_events(bus):
    for n in range(3):
        await bus.publish(make_event("research.progress", "r2", {"n": n}))
    await bus.publish(make_event("research.progress", "r3", {"n": 99}))
    stored = await collect(bus, research_filter("r2"))
    assert [e.payload["n"] for e in stored] == [0, 1, 2]
    tail = await collect(bus, research_filter("r2"), from_sequence=stored[1].sequence)
    assert [e.payload["n"] for e in tail] == [1, 2]
    assert await collect(bus, research_filter("nobody")) == []

    followed: list[int] = []

    async def follow():
        async for event in bus.read(research_filter("r2"), from_sequence=stored[2].sequence, follow=True):
            followed.append(int(event.payload["n"]))
            if len(followed) == 2:
                return

    watcher = asyncio.create_task(follow())
    await asyncio.sleep(0.3)
    await bus.publish(make_event("research.progress", "r2", {"n": 3}))
    await asyncio.wait_for(watcher, 10)
    assert followed == [2, 3]


def test_event_types_must_be_aggregate_dot_event():
    with pytest.raises(ValueError):
        make_event("Research Created")
