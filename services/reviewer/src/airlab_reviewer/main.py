"""Entrypoint of the reviewer service: `airlab-reviewer` (or `python -m airlab_reviewer`).

It answers `evaluation.requested` with `evaluation.completed` and `report.requested` with
`report.written`, and serves ReviewerService; both run the same agent."""

from __future__ import annotations

import asyncio

from airlab import bus_access, records, verdicts
from airlab.blobs import artifact_store_from
from airlab.errors import FailedPrecondition, InvalidArgument
from airlab.events import body_of, type_filter
from airlab.ids import check_id
from airlab.llm.accounting import KvUsageLedger, usage_store
from airlab.service import ServiceContext, run_service
from airlab.v1 import events_pb2, loop_pb2, research_pb2, reviewer_pb2, reviewer_pb2_grpc
from airlab_reviewer import stats
from airlab_reviewer.agent import Reviewer
from airlab_reviewer.tracking import MlflowTracker

CONSUMER, TRACKING_CONSUMER = bus_access.DURABLES["reviewer"]


class ReviewerServicer(reviewer_pb2_grpc.ReviewerServiceServicer):
    def __init__(self, reviewer: Reviewer, bus: records.Asker, ledger: KvUsageLedger) -> None:
        self.reviewer = reviewer
        self.bus = bus
        self.ledger = ledger

    async def _research(self, research_id: str) -> tuple[research_pb2.Research, loop_pb2.ResearchLoop]:
        research, loop = await records.fetch(self.bus, research_id)
        if loop is None:
            raise FailedPrecondition(f"research {research_id} has not started its experiments")
        return research, loop

    async def EvaluateExperiment(
        self, request: reviewer_pb2.EvaluateExperimentRequest, context: object
    ) -> reviewer_pb2.Evaluation:
        """experiment_id names an idea of the research: its evaluation runs against the baseline's."""
        check_id("research_id", request.research_id, "r")
        check_id("experiment_id", request.experiment_id, "i")
        research, loop = await self._research(request.research_id)
        idea = next((i for i in loop.ideas if i.idea.id == request.experiment_id), None)
        if idea is None:
            raise InvalidArgument(
                "experiment_id", f"research {request.research_id} has no idea {request.experiment_id}"
            )
        finished = {x.id for x in loop.experiments if x.state == loop_pb2.EXPERIMENT_STATE_FINISHED}
        candidate = {seed: x for seed, x in idea.evaluations.items() if x in finished}
        if not candidate or not loop.baseline.experiments:
            raise FailedPrecondition(f"idea {request.experiment_id} has no finished evaluation runs yet")
        comparison = await self.reviewer.evaluate_async(
            request.research_id,
            request.experiment_id,
            research.plan.metric,
            candidate,
            loop.baseline.experiments,
            family_size=verdicts.family_size(research.plan.budget.max_experiments, len(research.plan.seeds)),
            look=2 if idea.extra_seeds else 1,
        )
        if idea.evaluation.HasField("adjusted_p"):  # the manager's verdict over the whole family
            comparison.significant = idea.evaluation.significant
            comparison.adjusted_p = idea.evaluation.adjusted_p
            comparison.suggestive = idea.evaluation.suggestive
        return reviewer_pb2.Evaluation(
            research_id=request.research_id,
            experiment_id=request.experiment_id,
            mean=comparison.mean,
            std=comparison.std,
            baseline_mean=comparison.baseline_mean,
            baseline_std=comparison.baseline_std,
            significant=comparison.significant,
            findings=comparison.findings,
            comparison=comparison,
        )

    async def WriteReport(
        self, request: reviewer_pb2.WriteReportRequest, context: object
    ) -> reviewer_pb2.Report:
        check_id("research_id", request.research_id, "r")
        research, loop = await self._research(request.research_id)
        usage = await self.ledger.usage(request.research_id)
        md_key, html_key, _ = await asyncio.to_thread(self.reviewer.write_report, research, loop, usage)
        return reviewer_pb2.Report(research_id=request.research_id, markdown_key=md_key, html_key=html_key)


def setup(context: ServiceContext) -> None:
    reviewer = Reviewer(artifact_store_from(context.settings))
    usage = usage_store(context.bus)
    ledger = KvUsageLedger(usage)
    context.host.add(
        reviewer_pb2_grpc.add_ReviewerServiceServicer_to_server,
        ReviewerServicer(reviewer, context.bus, ledger),
        "airlab.v1.ReviewerService",
    )

    async def evaluate(event: events_pb2.Event) -> tuple[str, events_pb2.EvaluationCompleted]:
        request: events_pb2.EvaluationRequested = body_of(event)
        comparison = await reviewer.evaluate_async(
            event.research_id,
            request.name,
            request.metric,
            request.candidate,
            request.baseline,
            maximize=request.maximize,
            family_size=request.family_size or 1,
            look=request.look or 1,
        )
        return "evaluation.completed", events_pb2.EvaluationCompleted(
            name=request.name, evaluation=comparison
        )

    async def write(event: events_pb2.Event) -> tuple[str, events_pb2.ReportWritten]:
        request: events_pb2.ReportRequested = body_of(event)
        spent = await ledger.usage(event.research_id)
        md_key, html_key, summary = await asyncio.to_thread(
            reviewer.write_report, request.research, request.loop, spent
        )
        return "report.written", events_pb2.ReportWritten(
            markdown_key=md_key, html_key=html_key, verdict=summary["verdict"]
        )

    tracking = context.settings.tracking
    tracker = (
        MlflowTracker(tracking.mlflow_uri, reviewer.artifacts, experiment=tracking.mlflow_experiment)
        if tracking.mlflow_uri
        else None
    )

    async def track(event: events_pb2.Event) -> None:
        """A written report's research, into MLflow. Its own consumer: a failure is delivered again later
        (then dead-lettered and logged) and never holds up or fails the research."""
        assert tracker is not None
        research, loop = await records.fetch(context.bus, event.research_id)
        if loop is not None:
            await asyncio.to_thread(tracker.track, research, loop)

    loading: list[asyncio.Future[None]] = []  # held, so the loading is not collected before it ends

    async def start() -> None:
        await usage.open()
        # Not awaited: the libraries load while the service already answers.
        loading.append(asyncio.ensure_future(asyncio.to_thread(stats.load_libraries)))
        if tracker is not None:
            await context.bus.consume(TRACKING_CONSUMER, [type_filter("report.written")], track)

    context.on_start(start)
    context.answer(
        CONSUMER, {"evaluation.requested": (evaluate, "evaluated"), "report.requested": (write, "written")}
    )


def main() -> None:
    run_service("reviewer", setup)


if __name__ == "__main__":
    main()
