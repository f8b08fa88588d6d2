"""The skeleton every agent service shares: consume a request, call the agent, publish its answer."""

import pytest

from airlab.events import make_event
from airlab.service import ServiceContext
from airlab.settings import BusSettings, Settings
from airlab.v1 import events_pb2


class FakeFlakyBus:
    """Stands in for the event bus: publishing fails `outages` times (NATS away), then works."""

    def __init__(self, outages: int) -> None:
        self.outages = outages
        self.published: list[events_pb2.Event] = []
        self.handlers = {}

    async def consume(self, durable, subjects, handler, **_):
        self.handlers[durable] = (subjects, handler)

    async def publish(self, event):
        if self.outages:
            self.outages -= 1
            raise ConnectionError("nats: no servers available")
        self.published.append(event)
        return len(self.published)


async def test_an_answer_survives_a_bus_outage_and_the_agent_is_not_asked_again():
    bus = FakeFlakyBus(outages=2)
    settings = Settings(bus=BusSettings(publish_retry_seconds=30))
    context = ServiceContext(name="idea", settings=settings, bus=bus, host=None)
    calls = []

    async def propose(event):
        calls.append(event.id)  # an LLM call: paid for once
        return "idea.proposed", events_pb2.IdeaProposed(round=event.idea_requested.round)

    context.answer("idea", {"idea.requested": (propose, "proposed")})
    for hook in context.startup:
        await hook()
    subjects, handler = bus.handlers["idea"]
    assert subjects == ["airlab.idea.requested.*"]
    request = make_event("idea.requested", "r1", events_pb2.IdeaRequested(round=2), event_id="req-1")
    await handler(request)
    assert calls == ["req-1"]
    [reply] = bus.published
    assert reply.type == "idea.proposed" and reply.id == "req-1.proposed" and reply.idea_proposed.round == 2
    assert reply.correlation_id == "req-1" and reply.source == "idea"


async def test_a_bus_that_stays_away_fails_the_handler_after_the_retry_window():
    bus = FakeFlakyBus(outages=10_000)
    context = ServiceContext(
        name="idea",
        settings=Settings(bus=BusSettings(publish_retry_seconds=0.5)),
        bus=bus,
        host=None,
    )

    async def propose(event):
        return "idea.proposed", events_pb2.IdeaProposed()

    context.answer("idea", {"idea.requested": (propose, "proposed")})
    for hook in context.startup:
        await hook()
    with pytest.raises(ConnectionError):
        await bus.handlers["idea"][1](make_event("idea.requested", "r1", event_id="req-2"))
