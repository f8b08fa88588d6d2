"""Entrypoint of the manager service: `airlab-manager` (or `python -m airlab_manager`)."""

from __future__ import annotations

from airlab.events import type_filter
from airlab.service import ServiceContext, run_service
from airlab.state import RESEARCH_BUCKET, StateStore
from airlab.v1 import lab_pb2_grpc, manager_pb2_grpc
from airlab_manager.catalog import DatasetCatalog
from airlab_manager.lab import PLAN_TRIGGERS, Lab
from airlab_manager.planner import Planner
from airlab_manager.servicers import LabServicer, ManagerServicer

PLANNER_CONSUMER = "manager-planner"


def setup(context: ServiceContext) -> None:
    planner = Planner(DatasetCatalog.load(), context.settings.research)
    store = StateStore(context.bus, RESEARCH_BUCKET, kind="research")
    lab = Lab(store=store, reader=context.bus, planner=planner, source=context.name)
    context.host.add(lab_pb2_grpc.add_LabServiceServicer_to_server, LabServicer(lab), "airlab.v1.LabService")
    context.host.add(
        manager_pb2_grpc.add_ManagerServiceServicer_to_server,
        ManagerServicer(lab),
        "airlab.v1.ManagerService",
    )

    async def start() -> None:
        await store.open()
        await lab.recover()
        await context.bus.consume(PLANNER_CONSUMER, [type_filter(t) for t in PLAN_TRIGGERS], lab.on_event)

    context.on_start(start)


def main() -> None:
    run_service("manager", setup)


if __name__ == "__main__":
    main()
