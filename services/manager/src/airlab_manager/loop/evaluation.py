"""An idea's end: the reviewer's comparison with the baseline (and the best so far), or its failure. Both
leave a lesson for memory and go on to the next decision."""

from __future__ import annotations

from airlab.v1 import events_pb2, loop_pb2
from airlab_manager.loop import decisions
from airlab_manager.loop.step import FINISHED, Memory, Step, experiments_of, find_idea


def request_evaluation(step: Step, idea: loop_pb2.LoopIdea) -> None:
    finished = {x.id for x in experiments_of(step.loop, idea.evaluations.values()) if x.state == FINISHED}
    candidate = {seed: x for seed, x in idea.evaluations.items() if x in finished}
    if not candidate:
        idea_failed(step, idea, "every evaluation run failed")
        return
    idea.status = loop_pb2.IDEA_STATUS_REVIEWING
    step.emit(
        "evaluation.requested",
        events_pb2.EvaluationRequested(
            name=idea.idea.id,
            title=idea.idea.title,
            metric=step.plan.metric,
            maximize=step.maximize,
            candidate=candidate,
            baseline=step.loop.baseline.experiments,
        ),
    )


def evaluated(step: Step, body: events_pb2.EvaluationCompleted) -> bool:
    loop = step.loop
    idea = find_idea(loop, body.name)
    if idea is None or idea.status != loop_pb2.IDEA_STATUS_REVIEWING:
        return False
    result = body.evaluation
    idea.evaluation.CopyFrom(result)
    idea.status = loop_pb2.IDEA_STATUS_EVALUATED
    loop.consecutive_failures = 0
    best = loop.best
    if not loop.HasField("best") or (result.significant, result.gain) > (best.significant, best.gain):
        if idea.origin == loop_pb2.IDEA_ORIGIN_EXPLOIT and result.significant:
            loop.rounds_without_progress = 0  # a new best to build on: the idea agent gets another round
        loop.best.CopyFrom(
            loop_pb2.BestIdea(
                idea_id=idea.idea.id,
                title=idea.idea.title,
                mean=result.mean,
                std=result.std,
                gain=result.gain,
                significant=result.significant,
            )
        )
    step.memories.append(lesson(step, idea))
    decisions.next_step(step)
    return True


def lesson(step: Step, idea: loop_pb2.LoopIdea) -> Memory:
    plan = step.plan
    return Memory(
        "lesson",
        f"On {plan.dataset} ({plan.metric}), {decisions.summary_of(idea)}",
        {
            "dataset": plan.dataset,
            "metric": plan.metric,
            "research_id": step.research.id,
            "idea_id": idea.idea.id,
            "significant": idea.evaluation.significant,
        },
        f"{step.research.id}:{idea.idea.id}",
    )


def idea_failed(step: Step, idea: loop_pb2.LoopIdea, why: str, *, count: bool = True) -> None:
    """The idea ends without a result. `count`: whether it adds to the failures in a row that make the
    manager ask a person (an idea the budget could not afford does not)."""
    idea.status = loop_pb2.IDEA_STATUS_FAILED
    idea.failure = why
    if count:
        step.loop.consecutive_failures += 1
    step.loop.failures.append(
        loop_pb2.LoopFailure(idea_id=idea.idea.id, title=idea.idea.title, round=idea.round, error=why)
    )
    step.memories.append(lesson(step, idea))
    decisions.next_step(step)
