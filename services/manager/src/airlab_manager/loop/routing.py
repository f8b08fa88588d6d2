"""Answers that belong to the baseline or to an idea, each sent to its phase: the coder's answer by the
name it was asked under, a run's outcome by the kind of run."""

from __future__ import annotations

from airlab.v1 import events_pb2, loop_pb2
from airlab_manager.loop import baseline, coding, runs
from airlab_manager.loop.step import BASELINE, Step


def code_answered(step: Step, outcome: events_pb2.CodeOutcome, *, ok: bool) -> bool:
    """code.ready / code.failed (or a code request's dead letter)."""
    if outcome.name == BASELINE:
        return baseline.code_done(step, outcome, ok=ok)
    return coding.code_done(step, outcome, ok=ok)


def experiment_ended(step: Step, outcome: events_pb2.ExperimentOutcome, *, finished: bool) -> bool:
    """experiment.finished / failed / cancelled (or a run request's dead letter)."""
    run = runs.record_outcome(step, outcome, finished=finished)
    if run is None:
        return False
    if run.kind == loop_pb2.EXPERIMENT_KIND_BASELINE:
        measuring = step.loop.phase == loop_pb2.LOOP_PHASE_BASELINE
        changed = baseline.progress(step, run)
        if not measuring:  # a run of a borderline idea's second look: its slot is free for a search
            runs.advance(step)
        return changed
    return runs.experiment_done(step, run)
