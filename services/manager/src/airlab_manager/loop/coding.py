"""Code for an idea: the request to the coder, and what its answer does to the idea."""

from __future__ import annotations

from airlab.v1 import events_pb2, idea_pb2, loop_pb2, research_pb2
from airlab_manager.loop import baseline, budget, decisions, evaluation, runs
from airlab_manager.loop.step import BASELINE, Step, find_idea


def code_request(
    step: Step, name: str, idea: idea_pb2.Idea | None, family: str = ""
) -> events_pb2.CodeRequested:
    budget = step.plan.budget
    request = events_pb2.CodeRequested(
        name=name,
        job_config=step.loop.job_config,
        mounts=step.loop.mounts,
        max_attempts=step.rules.code_attempts,
        budget=research_pb2.Budget(max_tokens=budget.max_tokens, max_cost_usd=budget.max_cost_usd),
        family=family,
    )
    if idea is not None:
        request.idea.CopyFrom(idea)
    return request


def ran_before(loop: loop_pb2.ResearchLoop, idea: loop_pb2.LoopIdea) -> loop_pb2.LoopIdea | None:
    """An earlier idea whose code had the same SHA-256 and whose search had the same hyperparameters."""
    if not idea.code_sha256:
        return None
    for other in loop.ideas:
        if other is idea or other.idea.id == idea.idea.id or not other.code_ref:
            continue
        same_space = sorted(other.idea.search_space) == sorted(idea.idea.search_space)
        if other.code_sha256 == idea.code_sha256 and same_space:
            return other
    return None


def code_idea(step: Step, idea: loop_pb2.LoopIdea) -> None:
    idea.status = loop_pb2.IDEA_STATUS_CODING
    step.loop.phase = loop_pb2.LOOP_PHASE_CODING
    step.research.state = research_pb2.RESEARCH_STATE_RUNNING
    step.research.state_reason = f"coding idea {idea.idea.title!r}"
    step.emit("code.requested", code_request(step, idea.idea.id, idea.idea, idea.family))


def code_done(step: Step, outcome: events_pb2.CodeOutcome, *, ok: bool) -> bool:
    """code.ready / code.failed: the baseline's code starts its runs; an idea's code starts its search."""
    if outcome.name == BASELINE:
        return baseline.code_done(step, outcome, ok=ok)
    idea = find_idea(step.loop, outcome.name)
    if idea is None or idea.status != loop_pb2.IDEA_STATUS_CODING:
        return False
    idea.code_attempts = outcome.attempts
    idea.code_problems[:] = outcome.problems
    idea.code_origin = outcome.origin
    idea.code_sha256 = outcome.sha256
    idea.code_repairs[:] = outcome.repairs
    if not ok:
        problems = " | ".join(outcome.problems)[-600:]
        evaluation.idea_failed(step, idea, f"no working code after {outcome.attempts} attempt(s): {problems}")
        return True
    idea.code_ref = outcome.code_ref
    twin = ran_before(step.loop, idea)
    if twin is not None:
        # Novelty judged by what would run, not by the title: the same code searched over the same
        # hyperparameters is an experiment already made. The budget goes to something else.
        idea.status = loop_pb2.IDEA_STATUS_REJECTED
        idea.review.approved = False
        idea.review.novelty = 0.0
        idea.review.reasons.append(
            f"not novel: its code (sha256 {idea.code_sha256[:12]}) and hyperparameters are those of "
            f"{twin.idea.title!r}, which already ran"
        )
        decisions.next_step(step)
        return True
    # The evaluation needs one run per further seed: the search gets what is left after them.
    left = budget.experiments_left(step.plan, step.loop, queued=False) - (len(step.plan.seeds) - 1)
    trials = (
        step.rules.portfolio_trials
        if idea.origin == loop_pb2.IDEA_ORIGIN_PORTFOLIO
        else step.rules.trials_per_idea
    )
    idea.trial_budget = max(0, min(trials, left))
    if idea.trial_budget < 1:
        evaluation.idea_failed(step, idea, "the experiment budget ran out before it could run", count=False)
        return True
    idea.status = loop_pb2.IDEA_STATUS_SEARCHING
    step.loop.phase = loop_pb2.LOOP_PHASE_SEARCHING
    runs.fill_trials(step, idea)
    return True
