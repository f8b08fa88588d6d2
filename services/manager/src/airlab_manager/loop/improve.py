"""The improve step (AIDE's "improve the best node"): the LLM is shown the best idea's code with what is
known of how it did (its scores, trials and their errors) and asked for one change likely to do better.
The changed code is checked, searched and evaluated against the baseline like any idea, credited to the
LLM; code that comes back unchanged is not novel and costs no experiment (coding.ran_before)."""

from __future__ import annotations

from airlab import experiments
from airlab.v1 import loop_pb2
from airlab_manager.loop import budget, exploit, lineage
from airlab_manager.loop.step import FAILED, FINISHED, Step, experiments_of
from airlab_manager.loop.work_requests import code_request

# Trials shown to the LLM: the best ones and the failed ones, at most this many.
SHOWN_TRIALS = 8


def results_of(step: Step, idea: loop_pb2.LoopIdea) -> list[str]:
    """What the LLM is told of how an idea's code did, one line each."""
    metric, loop = step.plan.metric, step.loop
    lines = []
    if idea.HasField("evaluation"):
        e = idea.evaluation
        verdict = "a significant gain" if e.significant else "not significant"
        lines.append(
            f"held-out test {metric} over {len(idea.evaluations)} seeds: {e.mean:.4f} ± {e.std:.4f}, "
            f"against the baseline's {e.baseline_mean:.4f} ({verdict})"
        )
    trials = experiments_of(loop, lineage.history(loop, idea))
    scored = [x for x in trials if x.state == FINISHED and x.HasField("validation")]
    scored.sort(key=lambda x: x.validation, reverse=step.maximize)
    failed = [x for x in trials if x.state == FAILED]
    for x in [*scored[: SHOWN_TRIALS - min(len(failed), 3)], *failed[:3]]:
        params = experiments.plain_params(x.params)
        outcome = f"validation {metric} {x.validation:.4f}" if x in scored else f"failed: {x.reason[:160]}"
        lines.append(f"trial with {params}: {outcome}")
    return lines


def available(step: Step) -> bool:
    """Whether an improve step may be taken now: on, something to improve, and its turn. Improve steps take
    turns with exploit steps (at most one more than those): one whose code fails or comes back unchanged
    costs no experiment, so without the turn they could follow each other without end."""
    loop = step.loop
    return step.strategy.improve and lineage.target(loop) is not None and loop.improves <= loop.exploits


def start(step: Step) -> bool:
    """Ask the LLM to improve the best idea's code; False when it is not available (see `available`) or
    the budget cannot pay for its search."""
    loop = step.loop
    parent = lineage.target(loop)
    if parent is None or not available(step):
        return False
    # Queued ideas do not hold budget back from it: the best idea's share of the budget comes before them.
    left = budget.search_left(step.plan, loop, queued=False)
    if min(step.strategy.trials_per_idea, left) < 1:
        return False
    loop.improves += 1
    idea = exploit.step_on(
        step,
        parent,
        kind="improve",
        number=loop.improves,
        label="improved by the LLM",
        rationale=f"the best idea so far, {parent.idea.title!r}, changed where its results point",
        reason=f"improves the code of the best idea so far, {parent.idea.title!r}",
        status=loop_pb2.IDEA_STATUS_CODING,
        origin=loop_pb2.IDEA_ORIGIN_IMPROVE,
    )
    idea.idea.change = f"one change to the code of {parent.idea.title!r}, chosen by the LLM from its results"
    loop.phase = loop_pb2.LOOP_PHASE_CODING
    step.research.state_reason = f"asking the LLM to improve {parent.idea.title!r}"
    request = code_request(step, idea.idea.id, idea.idea)
    request.base_code_ref = parent.code_ref
    request.base_results.extend(results_of(step, parent))
    step.emit("code.requested", request)
    return True
