"""The budget arithmetic of the loop, in one place: what an idea costs at least, what is left."""

from __future__ import annotations

from airlab.v1 import loop_pb2, research_pb2
from airlab_manager.loop import continuation


def experiments_per_idea(plan: research_pb2.Plan) -> int:
    return continuation.experiments_per_idea(plan)


def committed(plan: research_pb2.Plan, loop: loop_pb2.ResearchLoop) -> int:
    """Experiments the searching ideas will still ask for: their trials not yet requested and, until their
    evaluation starts, its runs on the other seeds. An idea started while another ends its search (two
    in flight) must not take what the other one was given."""
    return sum(
        max(0, idea.trial_budget - len(idea.trials)) + (0 if idea.evaluations else len(plan.seeds) - 1)
        for idea in loop.ideas
        if idea.status == loop_pb2.IDEA_STATUS_SEARCHING
    )


def experiments_left(plan: research_pb2.Plan, loop: loop_pb2.ResearchLoop, *, queued: bool = True) -> int:
    """Experiments the budget still allows, less what the searching ideas will still ask for, and (with
    `queued`) the least the queued ideas will cost."""
    reserved = experiments_per_idea(plan) * len(loop.queue) if queued else 0
    return plan.budget.max_experiments - len(loop.experiments) - committed(plan, loop) - reserved


def search_left(plan: research_pb2.Plan, loop: loop_pb2.ResearchLoop, *, queued: bool = True) -> int:
    """Experiments a search may still use: what the budget allows less the evaluation's one run per
    further seed, which the search's best point needs afterwards."""
    return experiments_left(plan, loop, queued=queued) - (len(plan.seeds) - 1)


def spend(loop: loop_pb2.ResearchLoop, now: float, tokens: int, cost_usd: float) -> continuation.Spend:
    return continuation.Spend(len(loop.experiments), now - loop.started_at, tokens, cost_usd)


def out_of_time(plan: research_pb2.Plan, loop: loop_pb2.ResearchLoop, now: float) -> bool:
    wall = plan.budget.max_wall_seconds
    return bool(wall) and now - loop.started_at >= wall
