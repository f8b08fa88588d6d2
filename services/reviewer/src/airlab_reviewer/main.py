"""Entrypoint of the reviewer service: `airlab-reviewer` (or `python -m airlab_reviewer`)."""

from __future__ import annotations

from airlab.grpc_server import not_yet_servicer
from airlab.service import ServiceContext, run_service
from airlab.v1 import reviewer_pb2_grpc

WHAT_IS_MISSING = "evaluation needs experiment results from the runner"
SERVICE = "airlab.v1.ReviewerService"


def setup(context: ServiceContext) -> None:
    # The contract's methods answer UNIMPLEMENTED with a reason until the agent logic behind them exists;
    # the service already joins the bus and reports its health like the others.
    servicer = not_yet_servicer(
        reviewer_pb2_grpc.ReviewerServiceServicer,
        SERVICE,
        "evaluation needs experiment results from the runner",
    )
    context.host.add(reviewer_pb2_grpc.add_ReviewerServiceServicer_to_server, servicer, SERVICE)


def main() -> None:
    run_service("reviewer", setup)


if __name__ == "__main__":
    main()
