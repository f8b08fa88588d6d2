"""The manager's decision after each idea: continue, stop (goal met, budget spent, no progress), or ask a
person (the coder keeps failing). Plain rules over the loop's state; the reason is always written."""

from __future__ import annotations

from dataclasses import dataclass

from airlab.settings import ResearchDefaults
from airlab.v1 import loop_pb2, manager_pb2, research_pb2

CONTINUE = manager_pb2.DECISION_KIND_CONTINUE
STOP = manager_pb2.DECISION_KIND_STOP
ASK_HUMAN = manager_pb2.DECISION_KIND_ASK_HUMAN


@dataclass
class Spend:
    experiments: int
    seconds: float
    tokens: int
    cost_usd: float


def experiments_per_idea(plan: research_pb2.Plan) -> int:
    """The least an idea costs: one search trial plus its evaluation on the other seeds."""
    return max(len(plan.seeds), 1)


def decide(
    loop: loop_pb2.ResearchLoop,
    plan: research_pb2.Plan,
    spend: Spend,
    rules: ResearchDefaults,
    *,
    ask_people: bool = True,
    can_exploit: bool = False,
) -> tuple[manager_pb2.DecisionKind, str]:
    """`ask_people`: whether a person may be asked at all (with human gates off, nothing waits for one;
    failing ideas then end the research through the no-progress rule instead). `can_exploit`: whether
    the best idea so far can be searched further; then "no progress" does not stop a research whose goal
    is to use its budget ("the best ... you can": more search on the best until the budget is spent),
    nor one to beat the baseline that has used less than `rules.strategy.min_budget_share` of it."""
    budget = plan.budget
    best = loop.best
    beat = plan.until != research_pb2.STOP_RULE_USE_BUDGET
    if loop.HasField("best") and best.significant and rules.stop_when_goal_met and beat:
        return STOP, (
            f"goal met: {best.title or best.idea_id!r} beats the baseline significantly "
            f"({best.mean:.4f} against {loop.baseline.mean:.4f})"
        )
    left = budget.max_experiments - spend.experiments
    if left < experiments_per_idea(plan):
        return STOP, f"experiment budget spent: {spend.experiments} of {budget.max_experiments} used"
    if budget.max_wall_seconds and spend.seconds >= budget.max_wall_seconds:
        return STOP, f"wall-clock budget spent: {spend.seconds:.0f} s of {budget.max_wall_seconds} s"
    if budget.max_tokens and spend.tokens >= budget.max_tokens:
        return STOP, f"token budget spent: {spend.tokens} of {budget.max_tokens}"
    if budget.max_cost_usd and spend.cost_usd >= budget.max_cost_usd:
        return STOP, f"cost budget spent: ${spend.cost_usd:.2f} of ${budget.max_cost_usd:.2f}"
    stale = loop.rounds_without_progress
    if stale >= rules.strategy.patience_rounds:
        used = spend.experiments / budget.max_experiments if budget.max_experiments else 1.0
        if not can_exploit or (beat and used >= rules.strategy.min_budget_share):
            why = "nothing to search further" if not can_exploit else f"{used:.0%} of the experiments used"
            return STOP, f"no progress in {stale} rounds of ideas ({why})"
        return CONTINUE, (
            f"no progress in {stale} rounds of ideas: more search on the best idea ({left} experiments left)"
        )
    failures = loop.consecutive_failures
    if failures >= rules.escalate_after_failures and not loop.escalated and ask_people:
        return ASK_HUMAN, f"{failures} ideas in a row failed to become working experiments: continue?"
    return CONTINUE, f"{left} experiments left in the budget"
