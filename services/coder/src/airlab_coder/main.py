"""Entrypoint of the coder service: `airlab-coder` (or `python -m airlab_coder`).

It answers `code.requested` events with `code.ready` or `code.failed`, and CoderService.ImplementIdea
calls; both run the same agent. Smoke runs go to the runner as `experiment.requested` events."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from airlab import bus_access, domain, experiments, records
from airlab.blobs import ArtifactStore, artifact_store_from, experiment_key
from airlab.errors import FailedPrecondition, InvalidArgument
from airlab.events import body_of
from airlab.ids import check_id
from airlab.llm.factory import llm_for
from airlab.redact import error_text
from airlab.service import ServiceContext, run_service
from airlab.v1 import coder_pb2, coder_pb2_grpc, events_pb2, loop_pb2, runner_pb2
from airlab_coder.agent import CoderAgent
from airlab_coder.tasks import CodeTask, SmokeResult, succeeded
from airlab_coder.templates import network_examples_for

log = logging.getLogger(__name__)
(CONSUMER,) = bus_access.DURABLES["coder"]
REQUESTED = "code.requested"
SMOKE_RESOURCES = runner_pb2.Resources(cpu_millis=1000, memory_mib=2048, wall_seconds=90)
SMOKE_TIMEOUT = 600
LOG_TAIL_LINES = 25


class BusSmokeRunner:
    """Smoke runs through the runner: ask over the bus, wait for its outcome, read the log on failure."""

    def __init__(self, bus: Any, artifacts: ArtifactStore, source: str) -> None:
        self.bus = bus
        self.artifacts = artifacts
        self.source = source

    async def run(
        self,
        research_id: str,
        experiment_id: str,
        code_ref: str,
        config: dict[str, Any],
        mounts: list[runner_pb2.DatasetMount],
    ) -> SmokeResult:
        request = experiments.request(
            research_id,
            experiment_id,
            code_ref=code_ref,
            config=config,
            resources=SMOKE_RESOURCES,
            datasets=list(mounts),
            kind=loop_pb2.EXPERIMENT_KIND_SMOKE,
            source=self.source,
        )
        sequence = await self.bus.publish(request)
        outcome = await experiments.wait_for(
            self.bus, research_id, experiment_id, from_sequence=sequence, timeout=SMOKE_TIMEOUT
        )
        if outcome.type == "experiment.finished":
            return SmokeResult(True)
        reason = body_of(outcome).reason or outcome.type
        # The log's end goes into the repair prompt and the code.failed event: no data values in it.
        tail = await self._log_tail(research_id, experiment_id)
        return SmokeResult(False, error_text(f"{reason}\n{tail}".strip(), limit=4000))

    async def _log_tail(self, research_id: str, experiment_id: str) -> str:
        key = experiment_key(research_id, experiment_id, "logs", "attempt-1.log")
        try:
            text = (await asyncio.to_thread(self.artifacts.get, key)).decode(errors="replace")
        except Exception:
            return ""
        return "\n".join(text.splitlines()[-LOG_TAIL_LINES:])


def bundle_of(research_id: str, outcome: events_pb2.CodeOutcome) -> coder_pb2.CodeBundle:
    """The gRPC answer for an outcome: the same facts, with the code's file named."""
    files = {experiments.CODE_FILE: outcome.code_ref + experiments.CODE_FILE} if succeeded(outcome) else {}
    return coder_pb2.CodeBundle(
        research_id=research_id,
        experiment_id=outcome.name,
        files=files,
        entrypoint=outcome.entrypoint,
        attempts=outcome.attempts,
        smoke_passed=succeeded(outcome),
        origin=outcome.origin,
        repairs=outcome.repairs,
        problems=outcome.problems,
        sha256=outcome.sha256,
    )


class CoderServicer(coder_pb2_grpc.CoderServiceServicer):
    def __init__(self, agent: CoderAgent, bus: records.Asker) -> None:
        self.agent = agent
        self.bus = bus

    async def ImplementIdea(
        self, request: coder_pb2.ImplementIdeaRequest, context: object
    ) -> coder_pb2.CodeBundle:
        check_id("research_id", request.research_id, "r")
        check_id("idea.id", request.idea.id, "i")
        try:
            asked = domain.template_of(request.template) if request.template else None
        except ValueError as exc:
            raise InvalidArgument("template", str(exc)) from None
        if request.max_attempts > 10:
            raise InvalidArgument("max_attempts", f"must be 0..10, got {request.max_attempts}")
        _, loop = await records.fetch(self.bus, request.research_id)
        if loop is None:
            raise FailedPrecondition(f"research {request.research_id} has no plan being run yet")
        running = domain.template_of(loop.job_config.template)
        if asked is not None and asked != running:
            raise InvalidArgument(
                "template", f"research {request.research_id} runs the {running} job template"
            )
        asked_for = events_pb2.CodeRequested(
            name=request.idea.id,
            idea=request.idea,
            job_config=loop.job_config,
            mounts=loop.mounts,
            max_attempts=request.max_attempts,
        )
        outcome = await self.agent.implement(CodeTask(request.research_id, asked_for))
        return bundle_of(request.research_id, outcome)


def setup(context: ServiceContext) -> None:
    artifacts = artifact_store_from(context.settings)
    llm = llm_for(context)
    examples = network_examples_for(llm.config.served_model("coder"))
    agent = CoderAgent(llm, artifacts, BusSmokeRunner(context.bus, artifacts, context.name), examples)
    context.host.add(
        coder_pb2_grpc.add_CoderServiceServicer_to_server,
        CoderServicer(agent, context.bus),
        "airlab.v1.CoderService",
    )

    async def code(event: events_pb2.Event) -> tuple[str, events_pb2.CodeOutcome]:
        task = CodeTask(event.research_id, body_of(event))
        try:
            outcome = await agent.implement(task)
        except (
            Exception
        ) as exc:  # an LLM that never answers, a spent budget: the idea fails, the loop goes on
            name = task.request.name
            log.exception("coding failed", extra={"research_id": task.research_id, "idea": name})
            problem = f"{type(exc).__name__}: {exc}"
            return "code.failed", events_pb2.CodeOutcome(name=name, attempts=0, problems=[problem])
        return ("code.ready" if succeeded(outcome) else "code.failed"), outcome

    context.answer(CONSUMER, {REQUESTED: (code, "coded")})


def main() -> None:
    run_service("coder", setup)


if __name__ == "__main__":
    main()
