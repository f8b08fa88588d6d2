"""The conductor over a real JetStream KV bucket: one event, one decode and one encode of the record."""

from __future__ import annotations

from collections import Counter
from typing import Any

from airlab.events import make_event, research_filter
from airlab.research_record import ResearchCodec, StoredResearch
from airlab.settings import ResearchDefaults
from airlab.state import RESEARCH_BUCKET, StateStore
from airlab.v1 import events_pb2, research_pb2
from airlab_manager.catalog import DatasetCatalog
from airlab_manager.conductor import Conductor

RID = "r" + "c" * 26


class CountingCodec(ResearchCodec):
    """The research codec, counting its calls."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def decode(self, data: dict[str, Any]) -> StoredResearch:
        self.calls["decode"] += 1
        return super().decode(data)

    def encode(self, value: StoredResearch) -> dict[str, Any]:
        self.calls["encode"] += 1
        return super().encode(value)


def planned() -> research_pb2.Research:
    return research_pb2.Research(
        id=RID,
        goal="beat the baseline on digits",
        state=research_pb2.RESEARCH_STATE_PLANNED,
        plan=research_pb2.Plan(
            dataset="digits",
            task="classification",
            metric="accuracy",
            direction=research_pb2.METRIC_DIRECTION_MAXIMIZE,
            baseline="logistic_regression",
            seeds=[0, 1, 2],
            test_fraction=0.25,
            budget=research_pb2.Budget(max_experiments=12, max_wall_seconds=3600),
        ),
    )


async def test_an_event_decodes_the_record_once_and_encodes_it_once(bus):
    codec = CountingCodec()
    store = await StateStore(bus, RESEARCH_BUCKET, codec, kind="research").open()
    conductor = Conductor(store, DatasetCatalog.load(), ResearchDefaults())
    await store.create(RID, StoredResearch(planned()))
    codec.calls.clear()

    planned_event = make_event("research.planned", RID, events_pb2.ResearchPlanned(), event_id="e-planned")
    await conductor.on_event(planned_event)
    assert codec.calls == {"decode": 1, "encode": 1}
    stored = (await store.get(RID)).value
    assert stored.research.state == research_pb2.RESEARCH_STATE_RUNNING and stored.running_loop()
    published = [e async for e in bus.read(research_filter(RID))]
    assert [e.type for e in published] == ["code.requested"]  # the baseline's code, from the outbox
    assert not (await store.get(RID)).outbox

    codec.calls.clear()
    await conductor.on_event(planned_event)  # a redelivery: read, found applied, nothing written
    assert codec.calls == {"decode": 1}

    codec.calls.clear()
    unknown = events_pb2.ExperimentOutcome(experiment_id="x" + "0" * 26)
    await conductor.on_event(make_event("experiment.finished", RID, unknown, event_id="e-stray"))
    assert codec.calls == {"decode": 1}  # an event that changes nothing is recorded without encoding
    assert "e-stray" in (await store.get(RID)).applied


async def test_the_record_keeps_the_requests_that_await_an_answer(bus):
    """What a restore sends again: each request the loop sent, until its answer (or a stale one) came."""
    store = await StateStore(bus, RESEARCH_BUCKET, ResearchCodec(), kind="research").open()
    conductor = Conductor(store, DatasetCatalog.load(), ResearchDefaults())
    await store.create(RID, StoredResearch(planned()))
    planned_event = make_event("research.planned", RID, events_pb2.ResearchPlanned(), event_id="e-p")
    await conductor.on_event(planned_event)
    (code_request,) = [e async for e in bus.read(research_filter(RID))]
    stored = (await store.get(RID)).value
    assert [e.id for e in stored.awaited_requests()] == [code_request.id]

    ready = make_event(
        "code.ready",
        RID,
        events_pb2.CodeOutcome(name="baseline", code_ref=f"research/{RID}/code/baseline/"),
        event_id="e-ready",
        correlation_id=code_request.id,
    )
    await conductor.on_event(ready)
    awaited = (await store.get(RID)).value.awaited_requests()
    assert {e.type for e in awaited} == {"experiment.requested"} and len(awaited) == 3  # the baseline's seeds
    first = awaited[0].experiment_requested.experiment_id
    outcome = events_pb2.ExperimentOutcome(experiment_id=first, metrics={"accuracy": 0.9})
    # The runner's end correlates to the job's attempt, not to the request: it is matched by experiment.
    await conductor.on_event(make_event("experiment.finished", RID, outcome, correlation_id="j1.finish.1"))
    left = {e.experiment_requested.experiment_id for e in (await store.get(RID)).value.awaited_requests()}
    assert len(left) == 2 and first not in left
