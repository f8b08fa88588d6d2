"""Entrypoint of the coder service: `airlab-coder` (or `python -m airlab_coder`)."""

from __future__ import annotations

from airlab.grpc_server import not_yet_servicer
from airlab.service import ServiceContext, run_service
from airlab.v1 import coder_pb2_grpc

WHAT_IS_MISSING = "code generation needs the LLM layer and the runner"
SERVICE = "airlab.v1.CoderService"


def setup(context: ServiceContext) -> None:
    # The contract's methods answer UNIMPLEMENTED with a reason until the agent logic behind them exists;
    # the service already joins the bus and reports its health like the others.
    servicer = not_yet_servicer(coder_pb2_grpc.CoderServiceServicer, SERVICE, WHAT_IS_MISSING)
    context.host.add(coder_pb2_grpc.add_CoderServiceServicer_to_server, servicer, SERVICE)


def main() -> None:
    run_service("coder", setup)


if __name__ == "__main__":
    main()
