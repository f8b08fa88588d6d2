"""The loop's policy, the one place that chooses what comes next. A phase that ends where a choice is due
(the baseline measured, a round reviewed, an idea's end) returns with `step.then_decide()`; the driver
(loop.transitions) then calls `next_step`: decide (continue, stop, ask a person), then take the best
idea's share of the budget, the next queued idea, the portfolio, or a new round of ideas. Phases sit
below this module and never import it."""

from __future__ import annotations

from airlab.research_record import profiling_run
from airlab.v1 import events_pb2, loop_pb2, manager_pb2, research_pb2
from airlab_manager.loop import (
    budget,
    coding,
    continuation,
    exploit,
    features,
    improve,
    lineage,
    portfolio,
    report,
    runs,
)
from airlab_manager.loop.step import PROPOSED, Step, find_idea, summary_of


def decide(step: Step) -> tuple[manager_pb2.DecisionKind, str]:
    context = step.context
    spend = budget.spend(step.loop, context.now, context.tokens, context.cost_usd)
    ask_people = step.research.gates != research_pb2.HUMAN_GATES_OFF
    can_exploit = (step.strategy.exploit and lineage.target(step.loop) is not None) or improve.available(step)
    return continuation.decide(
        step.loop, step.plan, spend, step.rules, ask_people=ask_people, can_exploit=can_exploit
    )


def _close_round(loop: loop_pb2.ResearchLoop) -> None:
    """Once a round's ideas all ended, count whether it made progress (a new significant best)."""
    if loop.queue or loop.round < 1 or loop.round_closed == loop.round or loop.ideas_pending_round:
        return
    loop.round_closed = loop.round
    gain_now = loop.best.gain if loop.HasField("best") else None
    before = loop.gain_at_round_start if loop.HasField("gain_at_round_start") else None
    improved = loop.HasField("best") and loop.best.significant and gain_now != before
    loop.rounds_without_progress = 0 if improved else loop.rounds_without_progress + 1


# An idea in one of these is under way: it ends (evaluated, failed, not better) with a decision of its own.
UNDER_WAY = (loop_pb2.IDEA_STATUS_CODING, *runs.STARTED)
PHASE_OF = {
    loop_pb2.IDEA_STATUS_CODING: loop_pb2.LOOP_PHASE_CODING,
    loop_pb2.IDEA_STATUS_SEARCHING: loop_pb2.LOOP_PHASE_SEARCHING,
    loop_pb2.IDEA_STATUS_EVALUATING: loop_pb2.LOOP_PHASE_EVALUATING,
    loop_pb2.IDEA_STATUS_REVIEWING: loop_pb2.LOOP_PHASE_EVALUATING,
}


def under_way(loop: loop_pb2.ResearchLoop) -> list[loop_pb2.LoopIdea]:
    return [idea for idea in loop.ideas if idea.status in UNDER_WAY]


def next_step(step: Step) -> None:
    loop, research = step.loop, step.research
    going = under_way(loop)
    if going:
        # An idea started early (see `overlap`) is still under way: the choice is made at its end, with
        # what both found. Until then the loop is where that idea is.
        loop.phase = PHASE_OF[going[0].status]
        research.state_reason = f"{going[0].idea.title!r} under way; the next step is chosen at its end"
        runs.advance(step)  # a raced idea waiting for the one that just ended to race against goes on
        return
    _close_round(loop)
    kind, reason = decide(step)
    decision = loop_pb2.LoopDecision(round=loop.round, kind=kind, reason=reason)
    loop.decisions.append(decision)
    step.emit("research.decided", decision)
    if kind == continuation.STOP:
        report.stop(step, reason)
        return
    if kind == continuation.ASK_HUMAN:
        loop.phase = loop_pb2.LOOP_PHASE_WAITING
        research.state = research_pb2.RESEARCH_STATE_AWAITING_APPROVAL
        research.state_reason = reason
        research.awaiting = "continue"
        step.emit(
            "research.awaiting_approval",
            events_pb2.ResearchAwaitingApproval(subject="continue", reason=reason),
        )
        return
    _go_on(step)


def best_ideas_share(step: Step) -> bool:
    """Whether what is left of the budget is the best idea's: one exploit step's worth (a full search and
    its point's runs on the other seeds). New ideas, queued or not, do not take it; it goes to more
    search on the best idea and changes of its code, however many rounds of ideas brought progress. A
    queued feature idea is the exception: it searches what model search cannot (the meaning of columns),
    so it runs first; and so are the research's first ideas from the LLM, queued or still being written,
    until one of them ran (with a small budget the portfolio can end before the idea agent answers)."""
    loop = step.loop
    queued = [idea for q in loop.queue if (idea := find_idea(loop, q)) is not None]
    if any(idea.idea.steps for idea in queued):
        return False
    first_ideas_to_come = loop.ideas_pending_round or any(idea.origin in PROPOSED for idea in queued)
    if first_ideas_to_come and not any(i.origin in PROPOSED and i.trials for i in loop.ideas):
        return False
    return budget.search_left(step.plan, loop, queued=False) <= step.strategy.trials_per_idea


def _go_on(step: Step) -> None:
    """After a decision to continue: the best idea's share of the budget (see `best_ideas_share`), the
    next queued idea, the portfolio (first round), more search on the best idea (once rounds of ideas
    stopped bringing progress), or a new round of ideas."""
    loop, research = step.loop, step.research
    llm_ideas = step.strategy.llm_ideas
    # The idea agent works on the round's ideas while the portfolio's trials run (the portfolio starts
    # first, whether LLM ideas are on or not); without the LLM, the profile's measured steps may still
    # come from it in this first round (research.strategy.profile_ideas).
    if (
        not loop.queue
        and loop.round == 0
        and portfolio.start(step)
        and (llm_ideas or step.strategy.profile_ideas)
    ):
        _request_ideas(step)
    # Exploit and improve steps take turns on the best idea.
    turns = (
        (improve.start, exploit.start) if loop.improves < loop.exploits else (exploit.start, improve.start)
    )
    if best_ideas_share(step) and any(start(step) for start in turns):
        return
    if loop.queue:
        idea = find_idea(loop, loop.queue.pop(0))
        assert idea is not None, "a queued idea is always stored"
        if research.gates == research_pb2.HUMAN_GATES_EVERY_EXPERIMENT:
            idea.status = loop_pb2.IDEA_STATUS_AWAITING_APPROVAL
            loop.phase = loop_pb2.LOOP_PHASE_WAITING
            research.state = research_pb2.RESEARCH_STATE_AWAITING_APPROVAL
            research.state_reason = f"idea {idea.idea.title!r} waits for a person's approval"
            research.awaiting, research.awaiting_idea_id = "experiment", idea.idea.id
            step.emit(
                "research.awaiting_approval",
                events_pb2.ResearchAwaitingApproval(
                    subject="experiment",
                    idea_id=idea.idea.id,
                    title=idea.idea.title,
                    reason=research.state_reason,
                ),
            )
            return
        coding.code_idea(step, idea)
        return
    # Once rounds of ideas stop bringing progress, the best idea gets more search (exploit) and changes of
    # its code by the LLM (improve).
    stale = loop.rounds_without_progress >= step.strategy.patience_rounds or not llm_ideas
    if stale and any(start(step) for start in turns):
        return
    if not llm_ideas:
        if loop.ideas_pending_round:  # the profile's idea is on its way
            loop.phase = loop_pb2.LOOP_PHASE_IDEAS
            research.state_reason = "waiting for the idea agent's feature idea from the data profile"
            return
        report.stop(step, "nothing left to search without the LLM's ideas (research.strategy.llm_ideas off)")
        return
    if not loop.ideas_pending_round:
        _ask_for_ideas(step)
    # While the idea agent (and then the coder) works, the best idea searches on instead of the runner's
    # slots waiting: the ideas queue behind that step, their code asked for ahead.
    if search_while_waiting(step) and exploit.start(step):
        research.state_reason += f"; round {loop.round}'s ideas asked for"
        return
    loop.phase = loop_pb2.LOOP_PHASE_IDEAS
    research.state_reason = f"round {loop.round}: waiting for the idea agent's ideas"


def overlap(step: Step) -> None:
    """Two ideas in flight: while the one idea under way cannot fill the runner's slots (its last trials,
    its runs over the seeds, the reviewer's verdict), the next queued idea starts in the free slots,
    when its code is ready (asked for ahead) and the budget, less what the first idea was given, holds
    its whole search and its runs over the seeds. The order of the queue is kept, and nothing starts
    early that the policy's next choice would not take: the best idea's share of the budget (which a
    decision may give to more search on an idea not yet evaluated) and a person's approvals wait for the
    decision at the first idea's end."""
    loop, research = step.loop, step.research
    if not step.strategy.overlap_ideas or research.state != research_pb2.RESEARCH_STATE_RUNNING:
        return
    if research.gates == research_pb2.HUMAN_GATES_EVERY_EXPERIMENT:
        return
    while loop.queue and runs.free_slots(step) > 0:
        going = under_way(loop)
        if len(going) != 1 or going[0].status == loop_pb2.IDEA_STATUS_CODING:
            return  # none: the decision's; two: enough; one waiting for its code: its turn first
        first = going[0]
        idea = find_idea(loop, loop.queue[0])
        if idea is None or idea.status != loop_pb2.IDEA_STATUS_APPROVED or not idea.code_answered:
            return
        if best_ideas_share(step) or (step.strategy.build_on_best and features.may_build_on(idea, first)):
            return
        if budget.search_left(step.plan, loop, queued=False) < coding.trials_of(step, idea):
            return
        loop.queue.pop(0)
        coding.code_idea(step, idea)
        if idea.status == loop_pb2.IDEA_STATUS_SEARCHING:
            research.state_reason = (
                f"{idea.idea.title!r} searching in the slots {first.idea.title!r} leaves free as it ends"
            )
            idea.idea.notes.append(
                f"started in the slots {first.idea.title!r} left free as it ended (two ideas in flight)"
            )


def search_while_waiting(step: Step) -> bool:
    """Whether the best idea may search on while the loop waits for the idea agent: on, and the budget
    left after such a step still holds a whole idea (a search and its runs over the other seeds), so the
    ideas asked for can run."""
    if not step.strategy.search_while_waiting:
        return False
    whole_idea = step.strategy.trials_per_idea + len(step.plan.seeds) - 1
    left = budget.experiments_left(step.plan, step.loop)
    return left - whole_idea >= whole_idea


def _ask_for_ideas(step: Step) -> None:
    loop = step.loop
    loop.round += 1
    loop.phase = loop_pb2.LOOP_PHASE_IDEAS
    if loop.HasField("best"):
        loop.gain_at_round_start = loop.best.gain
    else:
        loop.ClearField("gain_at_round_start")
    step.research.state_reason = f"round {loop.round}: asking for ideas"
    _request_ideas(step)


def _results(step: Step) -> list[str]:
    """How the research's ideas did, for the idea agent; first, when the best is a feature idea that new
    ones build on, its features (so the agent proposes others)."""
    loop = step.loop
    done = [summary_of(i) for i in loop.ideas if i.status != loop_pb2.IDEA_STATUS_REJECTED][-12:]
    best = features.prompt_line(loop) if step.strategy.build_on_best else ""
    return [best, *done] if best else done


def _request_ideas(step: Step) -> None:
    """Ask the idea agent for the current round's ideas (answered by `ideas.proposed`)."""
    loop = step.loop
    loop.ideas_pending_round = loop.round
    step.emit(
        "idea.requested",
        events_pb2.IdeaRequested(
            round=loop.round,
            count=step.strategy.ideas_per_round,
            tried=[i.idea.title for i in loop.ideas],
            results=_results(step),
            recalled=step.context.recalled,
            profile_experiment=profiling_run(step.plan, loop),
            research=step.research,
            measured=not step.strategy.llm_ideas,
        ),
    )
