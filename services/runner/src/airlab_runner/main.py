"""Entrypoint of the runner service: `airlab-runner` (or `python -m airlab_runner`)."""

from __future__ import annotations

from airlab.grpc_server import not_yet_servicer
from airlab.service import ServiceContext, run_service
from airlab.v1 import runner_pb2_grpc

WHAT_IS_MISSING = "sandboxed execution is being built"
SERVICE = "airlab.v1.RunnerService"


def setup(context: ServiceContext) -> None:
    # The contract's methods answer UNIMPLEMENTED with a reason until the agent logic behind them exists;
    # the service already joins the bus and reports its health like the others.
    servicer = not_yet_servicer(runner_pb2_grpc.RunnerServiceServicer, SERVICE, WHAT_IS_MISSING)
    context.host.add(runner_pb2_grpc.add_RunnerServiceServicer_to_server, servicer, SERVICE)


def main() -> None:
    run_service("runner", setup)


if __name__ == "__main__":
    main()
