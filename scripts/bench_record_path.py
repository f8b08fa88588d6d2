"""The manager's work per loop event, timed through its real conductor on a real JetStream KV bucket: each
research is driven from plan to report by scripted answers (the coder's code is ready at once, every run
finishes with a made-up score, ideas are proposed and evaluated as the loop asks), and every
`Conductor.on_event` call is timed. No services, no LLM, no runs: what is left is the record's read,
the loop's step and the record's write, the part a change of the state store can make faster or slower.

It runs against whichever airlab the import path holds, so scripts/bench_versions.py runs it on two
checkouts side by side. Prints one JSON line: {"events": n, "p50_ms": ..., "mean_ms": ...}.

Usage: .venv/bin/python scripts/bench_record_path.py [--researches 4]"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from airlab.bus import EventBus
from airlab.events import body_of, make_event, research_filter
from airlab.natsd import start_nats
from airlab.settings import ResearchDefaults
from airlab.v1 import events_pb2, idea_pb2, loop_pb2, research_pb2
from airlab_manager.catalog import DatasetCatalog
from airlab_manager.conductor import Conductor

# The store of whichever version runs (scripts are not type-checked: the two branches differ).
try:  # this version's typed store
    from airlab.research_record import StoredResearch, research_store

    def open_store(bus: EventBus):
        return research_store(bus)

    def new_record(research: research_pb2.Research):
        return StoredResearch(research)

except ImportError:  # the version before it: records as dicts
    from airlab.research_record import to_data
    from airlab.state import RESEARCH_BUCKET, StateStore

    def open_store(bus: EventBus):
        return StateStore(bus, RESEARCH_BUCKET, kind="research")

    def new_record(research: research_pb2.Research):
        return to_data(research)


ENDED = ("research.completed", "research.failed")


def planned(research_id: str) -> research_pb2.Research:
    return research_pb2.Research(
        id=research_id,
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
            budget=research_pb2.Budget(max_experiments=24, max_wall_seconds=3600),
        ),
    )


def answer(event: events_pb2.Event, rng: random.Random, serial: int) -> events_pb2.Event | None:
    """What the other services would answer to a request of the loop's (None: nobody answers it)."""
    rid, body = event.research_id, body_of(event)
    if event.type == "code.requested":
        code = events_pb2.CodeOutcome(
            name=body.name,
            attempts=1,
            code_ref=f"research/{rid}/code/{body.name}/final/",
            entrypoint="train.py",
            origin=loop_pb2.CODE_ORIGIN_TEMPLATE,
        )
        return make_event("code.ready", rid, code, event_id=f"{event.id}.a")
    if event.type == "experiment.requested":
        score = 0.9 + rng.random() * 0.05
        outcome = events_pb2.ExperimentOutcome(
            experiment_id=body.experiment_id,
            metrics={"accuracy": score, "val_accuracy": score},
            run_seconds=1.0,
            validation_curve=[score],
        )
        return make_event("experiment.finished", rid, outcome, event_id=f"{event.id}.a")
    if event.type == "idea.requested":
        ideas = [
            idea_pb2.Idea(
                id=f"i{serial:05d}{n:021d}",
                title=f"Random forest variant {serial}-{n}",
                change="replace the logistic regression with a random forest",
                expected_effect="+1% accuracy",
                search_space={"n_estimators": idea_pb2.Range(low=10, high=300, integer=True)},
            )
            for n in range(max(1, body.count))
        ]
        proposed = events_pb2.IdeaProposed(round=body.round, ideas=ideas)
        return make_event("idea.proposed", rid, proposed, event_id=f"{event.id}.a")
    if event.type == "evaluation.requested":
        comparison = loop_pb2.Comparison(metric=body.metric, mean=0.91, baseline_mean=0.9, gain=0.01)
        completed = events_pb2.EvaluationCompleted(name=body.name, evaluation=comparison)
        return make_event("evaluation.completed", rid, completed, event_id=f"{event.id}.a")
    if event.type == "report.requested":
        written = events_pb2.ReportWritten(markdown_key=f"research/{rid}/reports/report.md")
        return make_event("report.written", rid, written, event_id=f"{event.id}.a")
    return None


async def drive(bus: EventBus, conductor: Conductor, research_id: str, rng: random.Random) -> list[float]:
    """Feed the research's events to the conductor until nothing is left to answer; each call's seconds."""
    times: list[float] = []
    planned_id = f"planned-{research_id}"  # ids the loop derives from it must differ between researches
    pending = [make_event("research.planned", research_id, events_pb2.ResearchPlanned(), event_id=planned_id)]
    seen = 0
    serial = 0
    while pending and len(times) < 400:
        event = pending.pop(0)
        began = time.perf_counter()
        await conductor.on_event(event)
        times.append(time.perf_counter() - began)
        published = [e async for e in bus.read(research_filter(research_id))]
        for request in published[seen:]:
            serial += 1
            reply = answer(request, rng, serial)
            if reply is not None:
                pending.append(reply)
        seen = len(published)
    return times


async def measure(researches: int) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="airlab-bench-record-"))
    nats = start_nats(work / "nats")
    bus = EventBus(nats.url, source="bench")
    try:
        await bus.connect(timeout=10)
        store = await open_store(bus).open()
        conductor = Conductor(store, DatasetCatalog.load(), ResearchDefaults())
        rng = random.Random(7)
        times: list[float] = []
        ended: list[str] = []
        for n in range(researches):
            research_id = f"r{n:026d}"
            await store.create(research_id, new_record(planned(research_id)))
            times += await drive(bus, conductor, research_id, rng)
            ended += [e.type async for e in bus.read(research_filter(research_id)) if e.type in ENDED]
        await bus.close()
    finally:
        nats.stop()
    return {
        "events": len(times),
        "ended": ended,
        "p50_ms": statistics.median(times) * 1000,
        "mean_ms": statistics.fmean(times) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--researches", type=int, default=4)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.researches))))


if __name__ == "__main__":
    main()
