"""An idea's end: the reviewer's comparison with the baseline (and the best so far), or its failure. Both
leave a lesson for memory and go on to the next decision."""

from __future__ import annotations

from airlab import verdicts
from airlab.v1 import events_pb2, loop_pb2
from airlab_manager.loop import looks
from airlab_manager.loop.step import FINISHED, Memory, Step, experiments_of, find_idea, summary_of


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
            family_size=looks.family_size(step.plan),
            look=looks.look_of(idea),
        ),
    )


def evaluated(step: Step, body: events_pb2.EvaluationCompleted) -> bool:
    """The reviewer's comparison, judged with the research's other comparisons as one family. A borderline
    first look gets more seeds before anything is claimed (or ends suggestive when the budget has none)."""
    loop = step.loop
    idea = find_idea(loop, body.name)
    if idea is None or idea.status != loop_pb2.IDEA_STATUS_REVIEWING:
        return False
    idea.evaluation.CopyFrom(body.evaluation)
    if not idea.evaluation.look:  # a reviewer of an older version: its comparison is this idea's look
        idea.evaluation.look = looks.look_of(idea)
    looks.judge(step, idea)
    result = idea.evaluation
    if verdicts.borderline(result) and looks.could_win(loop, result):
        added = looks.add_seeds(step, idea)
        if added:
            step.research.state_reason = (
                f"{idea.idea.title!r} is borderline (adjusted p {result.adjusted_p:.4f}): {added} more "
                "seed(s) for it and the baseline before any claim"
            )
            return True
        result.suggestive = True
    if body.evaluation.HasField("chance") and not loop.baseline.HasField("chance"):
        loop.baseline.chance = body.evaluation.chance.baseline_mean
    idea.status = loop_pb2.IDEA_STATUS_EVALUATED
    loop.consecutive_failures = 0
    _choose_best(step, idea)
    step.memories.append(lesson(step, idea))
    step.then_decide()
    return True


def _choose_best(step: Step, reviewed: loop_pb2.LoopIdea) -> None:
    """The best evaluated idea (significance first, then gain; the earlier on a tie). Judging the family
    again can make an earlier idea significant, so every evaluated idea is a candidate."""
    loop = step.loop
    evaluated = [i for i in loop.ideas if i.status == loop_pb2.IDEA_STATUS_EVALUATED]
    best = max(evaluated, key=lambda i: (i.evaluation.significant, i.evaluation.gain))
    e = best.evaluation
    changed = not loop.HasField("best") or (loop.best.idea_id, loop.best.significant) != (
        best.idea.id,
        e.significant,
    )
    if changed and best is reviewed and best.origin == loop_pb2.IDEA_ORIGIN_EXPLOIT and e.significant:
        loop.rounds_without_progress = 0  # a new best to build on: the idea agent gets another round
    loop.best.CopyFrom(
        loop_pb2.BestIdea(
            idea_id=best.idea.id, title=best.idea.title, mean=e.mean, std=e.std, gain=e.gain,
            significant=e.significant, p_value=e.combined_p, adjusted_p=e.adjusted_p,
            suggestive=e.suggestive,
        )
    )  # fmt: skip


def lesson(step: Step, idea: loop_pb2.LoopIdea) -> Memory:
    plan = step.plan
    return Memory(
        "lesson",
        f"On {plan.dataset} ({plan.metric}), {summary_of(idea)}",
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
    step.then_decide()
