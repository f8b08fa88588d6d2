"""The floor that does not depend on the LLM: before asking for ideas, the first round tries strong model
families for the task from the domain catalog, each searched with TPE, with code built from the job
template's registry. The LLM's ideas then come on top, told how these did."""

from __future__ import annotations

from airlab import domain
from airlab.ids import derived_id
from airlab.v1 import idea_pb2, loop_pb2
from airlab_manager.loop import budget, ideas
from airlab_manager.loop.idea_review import Novelty
from airlab_manager.loop.step import Step, idea_memory

DATA_WORDS = {"sklearn": "tabular data", "pytorch": "this kind of data"}


def families(step: Step) -> list[domain.ModelFamily]:
    """The portfolio's families for this research: those of its job template with a model for the task
    (the baseline's own only when it has hyperparameters to search), as many as `portfolio_share` of the
    budget after the baseline affords (at least one)."""
    share = step.strategy.portfolio_share
    if share <= 0:
        return []
    task, cost = step.plan.task, step.strategy.portfolio_trials + len(step.plan.seeds) - 1
    template = domain.template_of(step.plan.template)
    fitting = [
        family
        for family in (domain.MODEL_FAMILIES[name] for name in domain.PORTFOLIO[template])
        if task in family.tasks and (family.name != step.plan.baseline or family.space)
    ]
    affordable = int(share * budget.experiments_left(step.plan, step.loop) // cost)
    return fitting[: max(1, affordable)]


def idea_for(step: Step, family: domain.ModelFamily) -> idea_pb2.Idea:
    name = family.aliases[0] if family.aliases else family.name
    title = name.upper() if len(name) <= 4 else name[0].upper() + name[1:]
    baseline = step.plan.baseline.replace("_", " ")
    change = f"replace the {baseline} with a {name}, searched with TPE"
    if family.name == step.plan.baseline:
        change = f"the baseline's {name} with its architecture and training searched with TPE"
    return idea_pb2.Idea(
        id=derived_id("i", f"{step.research.id}:portfolio:{family.name}"),
        research_id=step.research.id,
        title=f"{title} (portfolio)",
        change=change,
        expected_effect=f"a better {step.plan.metric} when the data is not linear",
        rationale=f"a strong default family for {DATA_WORDS[domain.template_of(step.plan.template)]}, "
        "tried whatever the idea agent proposes",
        search_space=family.search_space(),
    )


def start(step: Step) -> bool:
    """Queue the portfolio as round 1 (reviewed by the same rules as any idea, but not against memory: the
    floor must not be vetoed by a similar idea of an earlier research). False when it is off."""
    chosen = families(step)
    if not chosen:
        return False
    loop = step.loop
    loop.round += 1
    loop.phase = loop_pb2.LOOP_PHASE_IDEAS
    for family in chosen:
        idea = idea_for(step, family)
        verdict = ideas.review(step.plan, loop, idea, Novelty())
        status = loop_pb2.IDEA_STATUS_APPROVED if verdict.approved else loop_pb2.IDEA_STATUS_REJECTED
        loop.ideas.append(
            loop_pb2.LoopIdea(
                idea=idea,
                round=loop.round,
                review=verdict,
                status=status,
                origin=loop_pb2.IDEA_ORIGIN_PORTFOLIO,
                family=family.name,
            )
        )
        if verdict.approved:
            loop.queue.append(idea.id)
            # Remembered like any idea, so the idea agent's near-copies of it are told apart as such.
            step.memories.append(idea_memory(step.plan, step.research.id, idea))
    step.research.state_reason = f"round {loop.round}: the portfolio ({', '.join(f.name for f in chosen)})"
    return True
