"""Ideas: the manager's review of a round (one rule set for the loop and for ReviewIdea), and a person's
approval or rejection of an idea under the every-experiment gate."""

from __future__ import annotations

from airlab.v1 import events_pb2, idea_pb2, loop_pb2, manager_pb2, research_pb2
from airlab_manager.loop import baseline, budget, coding, report
from airlab_manager.loop.idea_review import Novelty, review_idea
from airlab_manager.loop.step import Step, find_idea, idea_memory, tried_titles


def review(
    plan: research_pb2.Plan,
    loop: loop_pb2.ResearchLoop,
    idea: idea_pb2.Idea,
    novelty: Novelty,
) -> manager_pb2.IdeaReview:
    """How the manager reviews `idea` in the research's current state (ideas approved and queued before it
    hold their share of the budget)."""
    return review_idea(
        idea,
        task=plan.task,
        metric=plan.metric,
        experiments_left=budget.experiments_left(plan, loop),
        experiments_per_idea=budget.experiments_per_idea(plan),
        tried_titles=tried_titles(loop),
        novelty=novelty,
        related=loop.related_work,
    )


def proposed(step: Step, body: events_pb2.IdeaProposed) -> bool:
    """The idea agent's answer: its ideas are reviewed and the approved ones queued. When the loop was
    waiting for them it goes on; when they were asked for ahead (while the portfolio runs), they wait
    their turn, the first one's code asked for at once."""
    loop = step.loop
    waiting = loop.phase == loop_pb2.LOOP_PHASE_IDEAS
    asked = loop.ideas_pending_round or (loop.round if waiting else 0)
    if body.round != asked or body.round != loop.round:
        return False
    if step.research.state not in (
        research_pb2.RESEARCH_STATE_RUNNING,
        research_pb2.RESEARCH_STATE_AWAITING_APPROVAL,
    ):
        return False
    loop.ideas_pending_round = 0
    if body.related_work_status and not loop.related_work_status:  # the first round's search is kept
        loop.related_work.extend(body.related_work)
        loop.related_work_status = body.related_work_status
    if not body.ideas:
        error = body.error or "no ideas proposed"
        loop.failures.append(loop_pb2.LoopFailure(round=loop.round, what="idea agent", error=error))
    reviews = []
    for idea in body.ideas:
        verdict = review(step.plan, loop, idea, step.context.novelty.get(idea.id, Novelty()))
        status = loop_pb2.IDEA_STATUS_APPROVED if verdict.approved else loop_pb2.IDEA_STATUS_REJECTED
        # Asked for without the LLM (research.strategy.profile_ideas): the profile's measured steps.
        origin = loop_pb2.IDEA_ORIGIN_LLM if step.strategy.llm_ideas else loop_pb2.IDEA_ORIGIN_PROFILE
        # A feature idea's code is compiled from its steps and family (the coder's catalog path).
        family = idea.family if idea.steps else ""
        loop.ideas.append(
            loop_pb2.LoopIdea(
                idea=idea, round=loop.round, review=verdict, status=status, origin=origin, family=family
            )
        )
        reviews.append(verdict)
        if verdict.approved:
            loop.queue.append(idea.id)
            step.memories.append(idea_memory(step.plan, step.research.id, idea))
    step.emit("idea.reviewed", events_pb2.IdeaReviewed(round=loop.round, reviews=reviews))
    if waiting:
        step.then_decide()
    else:
        coding.code_ahead(step)
    return True


def approved(step: Step, decision: events_pb2.PersonDecision) -> bool:
    """A person approved: the plan (the loop starts), an idea (it is coded), or going on after an
    escalation (not asked again)."""
    subject = decision.subject or "plan"
    if subject == "plan":
        return baseline.start(step)
    if step.research.state != research_pb2.RESEARCH_STATE_RUNNING:
        return False
    if subject == "experiment":
        idea = find_idea(step.loop, decision.idea_id)
        if idea is None or idea.status != loop_pb2.IDEA_STATUS_AWAITING_APPROVAL:
            return False
        coding.code_idea(step, idea)
        return True
    step.loop.escalated = True
    step.loop.consecutive_failures = 0
    step.then_decide()
    return True


def rejected(step: Step, decision: events_pb2.PersonDecision) -> bool:
    subject = decision.subject or "plan"
    if step.research.state != research_pb2.RESEARCH_STATE_RUNNING or subject not in (
        "experiment",
        "continue",
    ):
        return False
    if subject == "experiment":
        idea = find_idea(step.loop, decision.idea_id)
        if idea is None:
            return False
        idea.status = loop_pb2.IDEA_STATUS_REJECTED
        idea.review.reasons.append(f"rejected by a person: {decision.comment}")
        step.then_decide()
        return True
    report.stop(step, f"a person chose to stop: {decision.comment}")
    return True
