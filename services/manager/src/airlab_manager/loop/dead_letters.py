"""Requests that failed every delivery come back as dead letters ("deadletter.<consumer>"). Each is
answered as a failure of what it asked for, so the loop never waits for a reply that will not come."""

from __future__ import annotations

import logging

from airlab import experiments
from airlab.events import body_of
from airlab.v1 import events_pb2, loop_pb2
from airlab_manager.loop import evaluation, ideas, report, routing
from airlab_manager.loop.step import Step, find_idea

log = logging.getLogger(__name__)


def answer(step: Step, letter: events_pb2.DeadLetter) -> bool:
    original = letter.event
    error = f"{original.type} failed {letter.deliveries} times: {letter.error}"[:1500]
    if original.type == "code.requested":
        request: events_pb2.CodeRequested = body_of(original)
        failed = events_pb2.CodeOutcome(name=request.name, problems=[error])
        return routing.code_answered(step, failed, ok=False)
    if original.type == "idea.requested":
        round_ = body_of(original).round
        return ideas.proposed(step, events_pb2.IdeaProposed(round=round_, error=error))
    if original.type == experiments.REQUESTED:
        outcome = events_pb2.ExperimentOutcome(experiment_id=body_of(original).experiment_id, reason=error)
        return routing.experiment_ended(step, outcome, finished=False)
    if original.type == "evaluation.requested":
        idea = find_idea(step.loop, body_of(original).name)
        if idea is None or idea.status != loop_pb2.IDEA_STATUS_REVIEWING:
            return False
        evaluation.idea_failed(step, idea, f"its evaluation failed: {error}")
        return True
    if original.type == "report.requested" and step.loop.phase == loop_pb2.LOOP_PHASE_REPORTING:
        step.loop.failed = True
        step.loop.stop_reason = f"{step.loop.stop_reason}; the report could not be written: {error}"
        return report.reported(step, events_pb2.ReportWritten())
    log.error("a dead letter the loop cannot answer", extra={"event_type": original.type, "error": error})
    return False
