"""The dispatch table: which transition each event type drives, and `apply`, the loop's one entry. After
a phase returns, `apply` lets the policy choose the next step whenever the phase said a choice is due."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airlab.events import DEAD_LETTER_AGGREGATE, body_of
from airlab.v1 import events_pb2, loop_pb2, research_pb2
from airlab_manager.loop import baseline, dead_letters, evaluation, ideas, looks, policy, report, routing
from airlab_manager.loop.progress import progress_of
from airlab_manager.loop.step import LoopConfig, Memory, Step, StepContext

# A transition takes the step and its event's body (the message of the event's type).
Transition = Callable[[Step, Any], bool]

TRANSITIONS: dict[str, Transition] = {
    "research.planned": lambda step, _: baseline.start(step),
    "research.approved": ideas.approved,
    "research.rejected": ideas.rejected,
    "idea.proposed": ideas.proposed,
    "code.ready": lambda step, body: routing.code_answered(step, body, ok=True),
    "code.failed": lambda step, body: routing.code_answered(step, body, ok=False),
    "experiment.finished": lambda step, body: routing.experiment_ended(step, body, finished=True),
    "experiment.failed": lambda step, body: routing.experiment_ended(step, body, finished=False),
    "experiment.cancelled": lambda step, body: routing.experiment_ended(step, body, finished=False),
    "evaluation.completed": evaluation.evaluated,
    "report.written": report.reported,
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
    # A choice the phase made due is the policy's; what it starts may make another due (an idea that
    # ends at once, e.g. with no budget left), so it chooses until none is. Then the next queued idea may
    # start in slots the idea under way leaves free (an idea that ends at once there leaves its choice to
    # the other's end).
    while step.take_decision():
        policy.next_step(step)
    policy.overlap(step)
    while step.take_decision():
        policy.next_step(step)
    step.research.progress.CopyFrom(
        progress_of(step.loop, context, maximize=step.maximize, family_size=looks.family_size(step.plan))
    )
    return Outcome(step.research, step.loop, step.events, step.memories)
