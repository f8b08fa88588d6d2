"""Entrypoint of the manager service: `airlab-manager` (or `python -m airlab_manager`).

It serves the Lab API and ManagerService, plans researches, and conducts their loop. It is the one
process that opens the lab's memory (Qdrant's embedded mode allows one client) and the research bucket
(other services ask it for records: airlab.records)."""

from __future__ import annotations

import asyncio

from airlab import bus_access, records
from airlab.blobs import artifact_store_from
from airlab.dataset_access import DataPlaces
from airlab.events import type_filter
from airlab.llm.accounting import USAGE_BUCKET, KvUsageLedger
from airlab.memory import MemorySessions
from airlab.service import ServiceContext, run_service
from airlab.state import RESEARCH_BUCKET, StateStore
from airlab.v1 import lab_pb2_grpc, manager_pb2_grpc
from airlab_manager.catalog import DatasetCatalog
from airlab_manager.conductor import HANDLED, Conductor
from airlab_manager.lab import PLAN_TRIGGERS, Lab
from airlab_manager.planner import Planner
from airlab_manager.servicers import LabServicer, ManagerServicer

PLANNER_CONSUMER, CONDUCTOR_CONSUMER = bus_access.DURABLES["manager"]


def setup(context: ServiceContext) -> None:
    settings = context.settings
    catalog = DatasetCatalog.load()
    planner = Planner(catalog, settings.research, DataPlaces.of(settings))
    store = StateStore(context.bus, RESEARCH_BUCKET, kind="research")
    usage = StateStore(context.bus, USAGE_BUCKET, kind="usage")
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

    context.on_start(start)


def main() -> None:
    run_service("manager", setup)


if __name__ == "__main__":
    main()
