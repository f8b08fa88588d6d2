"""Entrypoint of the idea service: `airlab-idea` (or `python -m airlab_idea`)."""

from __future__ import annotations

from airlab.grpc_server import not_yet_servicer
from airlab.service import ServiceContext, run_service
from airlab.v1 import idea_pb2_grpc

WHAT_IS_MISSING = "idea generation needs the LLM layer"
SERVICE = "airlab.v1.IdeaService"


def setup(context: ServiceContext) -> None:
    # The contract's methods answer UNIMPLEMENTED with a reason until the agent logic behind them exists;
    # the service already joins the bus and reports its health like the others.
    servicer = not_yet_servicer(idea_pb2_grpc.IdeaServiceServicer, SERVICE, WHAT_IS_MISSING)
    context.host.add(idea_pb2_grpc.add_IdeaServiceServicer_to_server, servicer, SERVICE)


def main() -> None:
    run_service("idea", setup)


if __name__ == "__main__":
    main()
