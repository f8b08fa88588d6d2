"""Entrypoint of the coder service: `airlab-coder` (or `python -m airlab_coder`).

It answers `code.requested` events with `code.ready` or `code.failed`, and CoderService.ImplementIdea
calls; both run the same agent. Smoke runs go to the runner as `experiment.requested` events."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from google.protobuf import json_format

from airlab import experiments
from airlab.blobs import ArtifactStore, artifact_store_from, experiment_key
from airlab.errors import FailedPrecondition, InvalidArgument
from airlab.events import follow_up_id, make_event, payload_dict, type_filter
from airlab.ids import check_id
from airlab.llm.accounting import Budget
from airlab.llm.factory import llm_for
from airlab.service import ServiceContext, run_service
from airlab.state import RESEARCH_BUCKET, StateStore
from airlab.v1 import coder_pb2, coder_pb2_grpc, events_pb2, runner_pb2
from airlab_coder.agent import CoderAgent, CodeTask, SmokeResult

log = logging.getLogger(__name__)
CONSUMER = "coder"
REQUESTED = "code.requested"
SMOKE_RESOURCES = runner_pb2.Resources(cpu_millis=1000, memory_mib=1024, wall_seconds=60)
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
        mounts: list[dict[str, str]],
    ) -> SmokeResult:
        request = experiments.request(
            research_id,
            experiment_id,
            code_ref=code_ref,
            config=config,
            resources=SMOKE_RESOURCES,
            datasets=[runner_pb2.DatasetMount(source=m["source"], target=m["target"]) for m in mounts],
            labels={"kind": "smoke"},
            source=self.source,
        )
        sequence = await self.bus.publish(request)
        outcome = await experiments.wait_for(
            self.bus, research_id, experiment_id, from_sequence=sequence, timeout=SMOKE_TIMEOUT
        )
        if outcome.type == "experiment.finished":
            return SmokeResult(True)
        reason = str(payload_dict(outcome).get("reason", outcome.type))
        return SmokeResult(False, f"{reason}\n{await self._log_tail(research_id, experiment_id)}".strip())

    async def _log_tail(self, research_id: str, experiment_id: str) -> str:
        key = experiment_key(research_id, experiment_id, "logs", "attempt-1.log")
        try:
            text = (await asyncio.to_thread(self.artifacts.get, key)).decode(errors="replace")
        except Exception:
            return ""
        return "\n".join(text.splitlines()[-LOG_TAIL_LINES:])


def task_of(event: events_pb2.Event) -> CodeTask:
    body = payload_dict(event)
    budget = body.get("budget") or {}
    return CodeTask(
        research_id=event.research_id,
        name=body["name"],
        job_config=body["job_config"],
        idea=body.get("idea"),
        max_attempts=int(body.get("max_attempts", 0)),
        mounts=list(body.get("mounts") or []),
        budget=Budget(
            max_tokens=int(budget.get("max_tokens", 0)), max_cost_usd=float(budget.get("max_cost_usd", 0.0))
        ),
    )


class CoderServicer(coder_pb2_grpc.CoderServiceServicer):
    def __init__(self, agent: CoderAgent, researches: StateStore) -> None:
        self.agent = agent
        self.researches = researches

    async def ImplementIdea(
        self, request: coder_pb2.ImplementIdeaRequest, context: object
    ) -> coder_pb2.CodeBundle:
        check_id("research_id", request.research_id, "r")
        check_id("idea.id", request.idea.id, "i")
        if request.template not in ("", "sklearn_train"):
            raise InvalidArgument("template", f"unknown template {request.template!r}; known: sklearn_train")
        if request.max_attempts > 10:
            raise InvalidArgument("max_attempts", f"must be 0..10, got {request.max_attempts}")
        record = await self.researches.get(request.research_id)
        job_config = (record.data.get("loop") or {}).get("job_config")
        if not job_config:
            raise FailedPrecondition(f"research {request.research_id} has no plan being run yet")
        idea = json_format.MessageToDict(request.idea, preserving_proto_field_name=True)
        mounts = (record.data.get("loop") or {}).get("mounts") or []
        outcome = await self.agent.implement(
            CodeTask(
                request.research_id, request.idea.id, job_config, idea, request.max_attempts, mounts=mounts
            )
        )
        files = {experiments.CODE_FILE: outcome.code_ref + experiments.CODE_FILE} if outcome.ok else {}
        return coder_pb2.CodeBundle(
            research_id=request.research_id,
            experiment_id=request.idea.id,
            files=files,
            entrypoint=outcome.entrypoint,
            attempts=outcome.attempts,
            smoke_passed=outcome.ok,
        )


def setup(context: ServiceContext) -> None:
    artifacts = artifact_store_from(context.settings)
    agent = CoderAgent(llm_for(context), artifacts, BusSmokeRunner(context.bus, artifacts, context.name))
    researches = StateStore(context.bus, RESEARCH_BUCKET, kind="research")
    context.host.add(
        coder_pb2_grpc.add_CoderServiceServicer_to_server,
        CoderServicer(agent, researches),
        "airlab.v1.CoderService",
    )

    async def handle(event: events_pb2.Event) -> None:
        task = task_of(event)
        try:
            outcome = await agent.implement(task)
        except (
            Exception
        ) as exc:  # an LLM that never answers, a spent budget: the idea fails, the loop goes on
            log.exception("coding failed", extra={"research_id": task.research_id, "idea": task.name})
            await context.bus.publish(
                make_event(
                    "code.failed",
                    event.research_id,
                    {"name": task.name, "attempts": 0, "problems": [f"{type(exc).__name__}: {exc}"]},
                    event_id=follow_up_id(event, "coded"),
                    correlation_id=event.id,
                )
            )
            return
        payload = {"name": task.name, "attempts": outcome.attempts, "problems": outcome.problems}
        if outcome.ok:
            payload |= {"code_ref": outcome.code_ref, "entrypoint": outcome.entrypoint}
        await context.bus.publish(
            make_event(
                "code.ready" if outcome.ok else "code.failed",
                event.research_id,
                payload,
                event_id=follow_up_id(event, "coded"),
                correlation_id=event.id,
            )
        )

    async def start() -> None:
        await researches.open()
        # One request at a time: each may take minutes (LLM calls, smoke runs).
        await context.bus.consume(CONSUMER, [type_filter(REQUESTED)], handle, batch=1)

    context.on_start(start)


def main() -> None:
    run_service("coder", setup)


if __name__ == "__main__":
    main()
