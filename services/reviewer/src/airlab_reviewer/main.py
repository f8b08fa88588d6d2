"""Entrypoint of the reviewer service: `airlab-reviewer` (or `python -m airlab_reviewer`).

It answers `evaluation.requested` with `evaluation.completed` and `report.requested` with
`report.written`, and serves ReviewerService; both run the same agent."""

from __future__ import annotations

import asyncio

from airlab.blobs import artifact_store_from
from airlab.errors import FailedPrecondition, InvalidArgument
from airlab.events import follow_up_id, make_event, payload_dict, type_filter
from airlab.ids import check_id
from airlab.llm.accounting import USAGE_BUCKET, KvUsageLedger
from airlab.service import ServiceContext, run_service
from airlab.state import RESEARCH_BUCKET, StateStore
from airlab.v1 import events_pb2, reviewer_pb2, reviewer_pb2_grpc
from airlab_reviewer.agent import Reviewer

CONSUMER = "reviewer"
REQUESTS = ("evaluation.requested", "report.requested")


class ReviewerServicer(reviewer_pb2_grpc.ReviewerServiceServicer):
    def __init__(self, reviewer: Reviewer, researches: StateStore, ledger: KvUsageLedger) -> None:
        self.reviewer = reviewer
        self.researches = researches
        self.ledger = ledger

    async def EvaluateExperiment(
        self, request: reviewer_pb2.EvaluateExperimentRequest, context: object
    ) -> reviewer_pb2.Evaluation:
        """experiment_id names an idea of the research: its evaluation runs against the baseline's."""
        check_id("research_id", request.research_id, "r")
        check_id("experiment_id", request.experiment_id, "i")
        loop = (await self.researches.get(request.research_id)).data.get("loop") or {}
        idea = loop.get("ideas", {}).get(request.experiment_id)
        if idea is None:
            raise InvalidArgument(
                "experiment_id", f"research {request.research_id} has no idea {request.experiment_id}"
            )
        baseline = (loop.get("baseline") or {}).get("experiments")
        if not idea.get("evaluations") or not baseline:
            raise FailedPrecondition(f"idea {request.experiment_id} has no evaluation runs yet")
        finished = {
            s: x for s, x in idea["evaluations"].items() if loop["experiments"][x]["state"] == "finished"
        }
        comparison = await self.reviewer.evaluate_async(
            request.research_id, request.experiment_id, loop["job_config"]["metric"], finished, baseline
        )
        return reviewer_pb2.Evaluation(
            research_id=request.research_id,
            experiment_id=request.experiment_id,
            mean=comparison.mean,
            std=comparison.std,
            baseline_mean=comparison.baseline_mean,
            baseline_std=comparison.baseline_std,
            significant=comparison.significant,
            findings=comparison.findings,
        )

    async def WriteReport(
        self, request: reviewer_pb2.WriteReportRequest, context: object
    ) -> reviewer_pb2.Report:
        check_id("research_id", request.research_id, "r")
        record = await self.researches.get(request.research_id)
        usage = await self.ledger.usage(request.research_id)
        md_key, html_key, _ = await asyncio.to_thread(self.reviewer.write_report, record.data, usage)
        return reviewer_pb2.Report(research_id=request.research_id, markdown_key=md_key, html_key=html_key)


def setup(context: ServiceContext) -> None:
    reviewer = Reviewer(artifact_store_from(context.settings))
    researches = StateStore(context.bus, RESEARCH_BUCKET, kind="research")
    usage = StateStore(context.bus, USAGE_BUCKET, kind="usage")
    ledger = KvUsageLedger(usage)
    context.host.add(
        reviewer_pb2_grpc.add_ReviewerServiceServicer_to_server,
        ReviewerServicer(reviewer, researches, ledger),
        "airlab.v1.ReviewerService",
    )

    async def handle(event: events_pb2.Event) -> None:
        body = payload_dict(event)
        if event.type == "evaluation.requested":
            comparison = await reviewer.evaluate_async(
                event.research_id,
                body["name"],
                body["metric"],
                body["candidate"],
                body["baseline"],
                maximize=body.get("maximize"),
            )
            reply = make_event(
                "evaluation.completed",
                event.research_id,
                {"name": body["name"], "evaluation": comparison.to_dict()},
                event_id=follow_up_id(event, "evaluated"),
                correlation_id=event.id,
            )
        else:
            record = await researches.get(event.research_id)
            spent = await ledger.usage(event.research_id)
            md_key, html_key, summary = await asyncio.to_thread(reviewer.write_report, record.data, spent)
            reply = make_event(
                "report.written",
                event.research_id,
                {"markdown_key": md_key, "html_key": html_key, "verdict": summary["verdict"]},
                event_id=follow_up_id(event, "written"),
                correlation_id=event.id,
            )
        await context.bus.publish(reply)

    async def start() -> None:
        await researches.open()
        await usage.open()
        await context.bus.consume(CONSUMER, [type_filter(t) for t in REQUESTS], handle, batch=1)

    context.on_start(start)


def main() -> None:
    run_service("reviewer", setup)


if __name__ == "__main__":
    main()
