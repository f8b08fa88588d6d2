"""The dispatch table: which transition each event type drives, and `apply`, the loop's one entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from airlab.events import DEAD_LETTER_AGGREGATE, body_of
from airlab.v1 import events_pb2, loop_pb2, research_pb2
from airlab_manager.loop import baseline, coding, dead_letters, evaluation, ideas, looks, report, runs
from airlab_manager.loop.progress import progress_of
from airlab_manager.loop.step import LoopConfig, Memory, Step, StepContext

Transition = Callable[[Step, object], bool]

TRANSITIONS: dict[str, Transition] = {
    "research.planned": lambda step, _: baseline.start(step),
    "research.approved": ideas.approved,  # type: ignore[dict-item]
    "research.rejected": ideas.rejected,  # type: ignore[dict-item]
    "idea.proposed": ideas.proposed,  # type: ignore[dict-item]
    "code.ready": lambda step, body: coding.code_done(step, body, ok=True),  # type: ignore[arg-type]
    "code.failed": lambda step, body: coding.code_done(step, body, ok=False),  # type: ignore[arg-type]
    "experiment.finished": lambda step, body: runs.experiment_done(step, body, finished=True),  # type: ignore[arg-type]
    "experiment.failed": lambda step, body: runs.experiment_done(step, body, finished=False),  # type: ignore[arg-type]
    "experiment.cancelled": lambda step, body: runs.experiment_done(step, body, finished=False),  # type: ignore[arg-type]
    "evaluation.completed": evaluation.evaluated,  # type: ignore[dict-item]
    "report.written": report.reported,  # type: ignore[dict-item]
}
HANDLED = tuple(TRANSITIONS)
TERMINAL = {
    research_pb2.RESEARCH_STATE_COMPLETED,
    research_pb2.RESEARCH_STATE_FAILED,
    research_pb2.RESEARCH_STATE_CANCELLED,
}


def handles(event_type: str) -> bool:
    return event_type in TRANSITIONS or event_type.startswith(f"{DEAD_LETTER_AGGREGATE}.")


@dataclass
class Outcome:
    research: research_pb2.Research
    loop: loop_pb2.ResearchLoop
    events: list[events_pb2.Event]
    memories: list[Memory]


def apply(
    research: research_pb2.Research,
    loop: loop_pb2.ResearchLoop,
    event: events_pb2.Event,
    context: StepContext,
    config: LoopConfig,
) -> Outcome | None:
    """The loop after `event`; None when the event changes nothing (stale, repeated, not the loop's).
    The arguments are not modified."""
    if research.state in TERMINAL or not handles(event.type):
        return None
    step = Step(research_pb2.Research(), loop_pb2.ResearchLoop(), event, context, config)
    step.research.CopyFrom(research)
    step.loop.CopyFrom(loop)
    if event.type.startswith(f"{DEAD_LETTER_AGGREGATE}."):
        changed = dead_letters.answer(step, body_of(event))
    else:
        changed = TRANSITIONS[event.type](step, body_of(event))
    if not changed:
        return None
    step.research.progress.CopyFrom(
        progress_of(step.loop, context, maximize=step.maximize, family_size=looks.family_size(step.plan))
    )
    return Outcome(step.research, step.loop, step.events, step.memories)
