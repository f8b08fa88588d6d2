"""The event bus against a real nats-server with JetStream."""

import asyncio

import pytest

from airlab import metrics
from airlab.bus import EventBus
from airlab.events import body_of, make_event, research_filter, type_filter
from airlab.settings import BusSettings
from airlab.v1 import events_pb2


async def collect(bus: EventBus, subject: str, **kwargs) -> list:
    return [event async for event in bus.read(subject, **kwargs)]


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


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
    event = make_event("research.created", "r1", events_pb2.ResearchCreated(goal="g"))
    first = await bus.publish(event)
    again = await bus.publish(event)
    assert first == again
    events = await collect(bus, research_filter("r1"))
    assert [e.id for e in events] == [event.id]
    assert events[0].sequence == first
    assert events[0].source == "test"
    assert events[0].research_created.goal == "g"


async def test_consumer_handles_each_event_once_and_acks(bus):
    seen: list[str] = []
    done = asyncio.Event()

    async def handler(event):
        seen.append(event.id)
        if len(seen) == 5:
            done.set()

    consumer = await bus.consume("worker", [type_filter("experiment.progress")], handler)
    ids = [
        (await bus.publish(make_event("experiment.progress", body=events_pb2.ExperimentProgress(step=n))), n)[
            1
        ]
        for n in range(5)
    ]
    await bus.publish(make_event("experiment.started"))  # not on the consumer's subjects
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

    await bus.consume("fragile", [type_filter("experiment.progress")], always_fails, max_deliver=3)
    event = make_event("experiment.progress", "r9", events_pb2.ExperimentProgress(step=1))
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
    assert letter.dead_letter.deliveries == 3
    assert "ValueError: cannot handle this" in letter.dead_letter.error
    assert letter.dead_letter.event.id == event.id
    await asyncio.sleep(0.5)
    assert len(attempts) == 3  # terminated: not delivered again
    # The lab's metrics say so (airlab.metrics): two retries, one dead letter, two redeliveries.
    handled = {
        outcome: sample("airlab_events_handled_total", consumer="fragile", event_type="experiment.progress",
                        outcome=outcome)
        for outcome in ("acked", "retried", "dead_lettered")
    }  # fmt: skip
    assert handled == {"acked": 0, "retried": 2, "dead_lettered": 1}
    assert sample("airlab_dead_letters_total", consumer="fragile") == 1
    assert sample("airlab_event_redeliveries_total", consumer="fragile") == 2


async def test_a_handler_that_fails_once_succeeds_on_redelivery(bus):
    calls: list[int] = []
    done = asyncio.Event()

    async def flaky(event):
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("transient")
        done.set()

    await bus.consume("flaky", [type_filter("experiment.progress")], flaky)
    await bus.publish(make_event("experiment.progress"))
    await asyncio.wait_for(done.wait(), 10)
    assert len(calls) == 2
    for _ in range(100):  # the ack is counted once the server confirmed it
        if sample(
            "airlab_events_handled_total", consumer="flaky", event_type="experiment.progress", outcome="acked"
        ):
            break
        await asyncio.sleep(0.05)
    labels = {"consumer": "flaky", "event_type": "experiment.progress"}
    assert sample("airlab_events_handled_total", **labels, outcome="acked") == 1
    assert sample("airlab_events_handled_total", **labels, outcome="retried") == 1
    assert sample("airlab_event_handling_seconds_count", **labels) == 2


async def test_undecodable_messages_go_to_dead_letters(bus):
    handled: list[str] = []

    async def handler(event):
        handled.append(event.id)

    await bus.consume("strict", [type_filter("experiment.progress")], handler)
    await bus.js.publish("airlab.experiment.progress._", b"\xff\xfe not protobuf", stream="AIRLAB")
    for _ in range(100):
        dead = await collect(bus, "airlab.deadletter.strict.>")
        if dead:
            break
        await asyncio.sleep(0.05)
    assert handled == []
    assert dead and dead[0].dead_letter.event.type == "bus.undecodable"


async def test_read_replays_from_a_sequence_and_follows_new_events(bus):
    for n in range(3):
        await bus.publish(make_event("experiment.progress", "r2", events_pb2.ExperimentProgress(step=n)))
    await bus.publish(make_event("experiment.progress", "r3", events_pb2.ExperimentProgress(step=99)))
    stored = await collect(bus, research_filter("r2"))
    assert [e.experiment_progress.step for e in stored] == [0, 1, 2]
    tail = await collect(bus, research_filter("r2"), from_sequence=stored[1].sequence)
    assert [e.experiment_progress.step for e in tail] == [1, 2]
    assert await collect(bus, research_filter("nobody")) == []

    followed: list[int] = []

    async def follow():
        async for event in bus.read(research_filter("r2"), from_sequence=stored[2].sequence, follow=True):
            followed.append(event.experiment_progress.step)
            if len(followed) == 2:
                return

    watcher = asyncio.create_task(follow())
    await asyncio.sleep(0.3)
    await bus.publish(make_event("experiment.progress", "r2", events_pb2.ExperimentProgress(step=3)))
    await asyncio.wait_for(watcher, 10)
    assert followed == [2, 3]


def test_event_types_must_be_aggregate_dot_event():
    with pytest.raises(ValueError):
        make_event("Research Created")


def test_an_event_carries_the_body_its_type_names():
    event = make_event("code.ready", "r1", events_pb2.CodeOutcome(name="i1", attempts=2))
    assert event.WhichOneof("body") == "code_ready" and body_of(event).attempts == 2
    assert make_event("code.failed").WhichOneof("body") == "code_failed"  # an empty body of its type
    with pytest.raises(TypeError, match="carries CodeOutcome"):
        make_event("code.ready", "r1", events_pb2.ResearchCreated(goal="g"))
    with pytest.raises(ValueError, match="no body in the contract"):
        make_event("work.item")
    letter = make_event("deadletter.any_consumer", "r1", events_pb2.DeadLetter(error="x"))
    assert letter.WhichOneof("body") == "dead_letter"
