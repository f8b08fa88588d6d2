"""Entrypoint of the manager service: `airlab-manager` (or `python -m airlab_manager`).

It serves the Lab API and ManagerService, plans researches, and conducts their loop. It is the one
process that opens the lab's memory (Qdrant's embedded mode allows one client) and the research bucket
(other services ask it for records: airlab.records)."""

from __future__ import annotations

import asyncio
import logging

from airlab import bus_access, metrics, records
from airlab.blobs import artifact_store_from
from airlab.dataset_access import DataPlaces
from airlab.enums import enum_words
from airlab.events import type_filter
from airlab.llm.accounting import KvUsageLedger, usage_store
from airlab.memory import MemorySessions
from airlab.research_record import StoredResearch, research_store
from airlab.service import ServiceContext, run_service
from airlab.state import StateStore
from airlab.v1 import lab_pb2_grpc, manager_pb2_grpc, research_pb2
from airlab_manager.catalog import DatasetCatalog
from airlab_manager.conductor import HANDLED, Conductor
from airlab_manager.lab import PLAN_TRIGGERS, Lab
from airlab_manager.planner import Planner
from airlab_manager.servicers import LabServicer, ManagerServicer

PLANNER_CONSUMER, CONDUCTOR_CONSUMER = bus_access.DURABLES["manager"]
RESEARCH_COUNT_SECONDS = 15.0
log = logging.getLogger(__name__)


def setup(context: ServiceContext) -> None:
    settings = context.settings
    catalog = DatasetCatalog.load()
    planner = Planner(catalog, settings.research, DataPlaces.of(settings))
    store = research_store(context.bus)
    usage = usage_store(context.bus)
    lab = Lab(
        store=store,
        reader=context.bus,
        planner=planner,
        source=context.name,
        artifacts=artifact_store_from(settings),
    )
    conductor = Conductor(store, catalog, settings.research, ledger=KvUsageLedger(usage), source=context.name)
    # Users only (airlab.access): the Lab API checks who owns each research itself.
    context.host.add(lab_pb2_grpc.add_LabServiceServicer_to_server, LabServicer(lab), "airlab.v1.LabService")
    context.host.add(
        manager_pb2_grpc.add_ManagerServiceServicer_to_server,
        ManagerServicer(lab, conductor),
        "airlab.v1.ManagerService",
    )

    async def start() -> None:
        await store.open()
        await usage.open()
        # The other services ask for research records here: the bucket is the manager's alone.
        await records.serve(context.bus, store)
        # Loading the embedding model takes a moment: off the event loop.
        conductor.memory = await asyncio.to_thread(MemorySessions, settings)
        await lab.recover()
        await context.bus.consume(PLANNER_CONSUMER, [type_filter(t) for t in PLAN_TRIGGERS], lab.on_event)
        subjects = [type_filter(t) for t in HANDLED] + [type_filter("deadletter.*")]
        await context.bus.consume(CONDUCTOR_CONSUMER, subjects, conductor.on_event)
        counting.append(asyncio.ensure_future(count_researches(store)))

    async def stop() -> None:
        for task in counting:
            task.cancel()

    counting: list[asyncio.Future[None]] = []  # held, so the task is not collected while it runs
    context.on_start(start)
    context.on_stop(stop)


async def count_researches(store: StateStore[StoredResearch], every: float = RESEARCH_COUNT_SECONDS) -> None:
    """Keep the researches-by-state gauge (airlab.metrics) current: the store is read every `every`
    seconds, not at each scrape (a scrape cannot wait for the bus)."""
    states = research_pb2.ResearchState
    while True:
        counts = {enum_words(states, value): 0 for value in states.values() if value}
        try:
            for key in await store.keys():
                record = await store.find(key)
                if record is not None:
                    state = enum_words(states, record.value.research.state)
                    counts[state] = counts.get(state, 0) + 1
            for state, count in counts.items():
                metrics.RESEARCHES.labels(state).set(count)
        except Exception:  # a bus outage: the gauge keeps its last values until the next round
            log.warning("could not count the researches", exc_info=True)
        await asyncio.sleep(every)


def main() -> None:
    run_service("manager", setup)


if __name__ == "__main__":
    main()
