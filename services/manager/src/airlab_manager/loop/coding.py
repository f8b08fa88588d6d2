"""Code for an idea: the request to the coder, and what its answer does to the idea."""

from __future__ import annotations

from airlab.v1 import events_pb2, loop_pb2, research_pb2
from airlab_manager.loop import budget, evaluation, features, runs
from airlab_manager.loop.step import Step, find_idea
from airlab_manager.loop.work_requests import code_request


def ran_before(loop: loop_pb2.ResearchLoop, idea: loop_pb2.LoopIdea) -> loop_pb2.LoopIdea | None:
    """An earlier idea whose code had the same SHA-256 and whose search had the same hyperparameters."""
    if not idea.code_sha256:
        return None
    for other in loop.ideas:
        if other is idea or other.idea.id == idea.idea.id or not other.code_ref or not other.trials:
            continue  # not itself, and only what ran (an idea coded ahead has not yet)
        same_space = sorted(other.idea.search_space) == sorted(idea.idea.search_space)
        if other.code_sha256 == idea.code_sha256 and same_space:
            return other
    return None


def code_idea(step: Step, idea: loop_pb2.LoopIdea) -> None:
    """The idea's turn: its code is asked for, or, when it was asked for ahead, used (or waited for)."""
    idea.status = loop_pb2.IDEA_STATUS_CODING
    step.loop.phase = loop_pb2.LOOP_PHASE_CODING
    step.research.state = research_pb2.RESEARCH_STATE_RUNNING
    step.research.state_reason = f"coding idea {idea.idea.title!r}"
    if idea.code_answered:
        start_search(step, idea)
    elif not idea.code_asked:
        _ask_for_code(step, idea)


# Queued ideas whose code is asked for ahead at most: the next two, so an idea queued behind one whose code
# is already asked for (the portfolio's second model, say) has its code ready at its turn too.
CODE_AHEAD = 2


def code_ahead(step: Step) -> None:
    """While an idea searches, ask for the next queued ideas' code (`CODE_AHEAD`): their search can then
    start the moment the loop gets to them, instead of the runner's slots waiting for the coder (and the
    LLM). Not under the every-experiment gate, where a person approves each idea before it is coded."""
    loop = step.loop
    if not step.strategy.code_ahead:
        return
    if step.research.gates == research_pb2.HUMAN_GATES_EVERY_EXPERIMENT:
        return
    for queued in loop.queue[:CODE_AHEAD]:
        idea = find_idea(loop, queued)
        if idea is None or idea.status != loop_pb2.IDEA_STATUS_APPROVED or idea.code_asked:
            continue
        idea.code_asked = True
        _ask_for_code(step, idea)


def _ask_for_code(step: Step, idea: loop_pb2.LoopIdea) -> None:
    step.emit("code.requested", code_request(step, features.code_name(idea), idea.idea, idea.family))


def code_done(step: Step, outcome: events_pb2.CodeOutcome, *, ok: bool) -> bool:
    """code.ready / code.failed: the baseline's code starts its runs; an idea's code starts its search (or
    waits for the idea's turn when it was asked for ahead). The baseline's code is baseline.code_done's."""
    idea = features.idea_of_code(step.loop, outcome.name)
    if idea is None or idea.code_answered:
        return False
    ahead = idea.status == loop_pb2.IDEA_STATUS_APPROVED and idea.code_asked
    if idea.status != loop_pb2.IDEA_STATUS_CODING and not ahead:
        return False
    idea.code_answered = True
    idea.code_attempts = outcome.attempts
    idea.code_problems[:] = outcome.problems
    idea.code_origin = outcome.origin
    idea.code_sha256 = outcome.sha256
    idea.code_repairs[:] = outcome.repairs
    for name in outcome.unsearched:  # its code does not read them: searching them would change nothing
        if name in idea.idea.search_space:
            del idea.idea.search_space[name]
            idea.idea.notes.append(
                f"hyperparameter {name!r} left out of the search: its code does not read it"
            )
    if ok:
        idea.code_ref = outcome.code_ref
    if not ahead:
        start_search(step, idea)
    return True


def trials_of(step: Step, idea: loop_pb2.LoopIdea) -> int:
    """The search trials a new idea is given when the budget allows: few for a portfolio family."""
    if idea.origin == loop_pb2.IDEA_ORIGIN_PORTFOLIO:
        return step.strategy.portfolio_trials
    return step.strategy.trials_per_idea


def start_search(step: Step, idea: loop_pb2.LoopIdea) -> None:
    """An idea whose coder answered: its search starts, or it ends (no working code, not novel, no budget)."""
    if not idea.code_ref:
        problems = " | ".join(idea.code_problems)[-600:]
        evaluation.idea_failed(
            step, idea, f"no working code after {idea.code_attempts} attempt(s): {problems}"
        )
        return
    if step.strategy.build_on_best and (best := features.builds_on(step.loop, idea)) is not None:
        # Its code (asked for ahead, before that idea was the best) is compiled again with the best's steps.
        features.build_on(idea, best)
        idea.code_answered, idea.code_ref, idea.code_sha256 = False, "", ""
        _ask_for_code(step, idea)
        return
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
        step.then_decide()
        return
    left = budget.search_left(step.plan, step.loop, queued=False)
    idea.trial_budget = max(0, min(trials_of(step, idea), left))
    if not idea.idea.search_space:  # nothing to search: one trial is the idea
        idea.trial_budget = min(idea.trial_budget, 1)
    if idea.trial_budget < 1:
        evaluation.idea_failed(step, idea, "the experiment budget ran out before it could run", count=False)
        return
    idea.status = loop_pb2.IDEA_STATUS_SEARCHING
    step.loop.phase = loop_pb2.LOOP_PHASE_SEARCHING
    runs.advance(step)
    code_ahead(step)
