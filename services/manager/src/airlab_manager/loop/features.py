"""Feature ideas build on the best one (research.build_on_best). A feature idea's steps are what model
search cannot find; once one of them is the best idea, the next feature idea's steps are added to the
best's at its turn, as CAAFE keeps the features that helped and asks for more. Each idea then measures
what its own steps add to the research's best features, instead of competing with them alone: a small
model that writes one good feature per idea still reaches a table's two or three.

Queries and one change of an idea; the coding phase asks for the code."""

from __future__ import annotations

from airlab import techniques
from airlab.v1 import idea_pb2, loop_pb2
from airlab_manager.loop.lineage import target
from airlab_manager.loop.step import PROPOSED, find_idea

# Steps of a built idea at most: the best's and the idea's own (each at most techniques.MAX_STEPS).
MAX_BUILT_STEPS = 2 * techniques.MAX_STEPS
SEPARATOR = "-on-"


def code_name(idea: loop_pb2.LoopIdea) -> str:
    """The name an idea's code is asked for under: its id, or, once built on the best idea, a name of its
    own (the coder keeps each name's code once, so the idea's first code is not answered again)."""
    return f"{idea.idea.id}{SEPARATOR}{idea.built_on}" if idea.built_on else idea.idea.id


def idea_of_code(loop: loop_pb2.ResearchLoop, name: str) -> loop_pb2.LoopIdea | None:
    """The idea whose code was asked for under `name`; None for an answer to a code request the idea no
    longer waits for (its first code, answered after it was built on the best)."""
    idea = find_idea(loop, name.split(SEPARATOR, 1)[0])
    return idea if idea is not None and code_name(idea) == name else None


def best_steps(loop: loop_pb2.ResearchLoop) -> tuple[loop_pb2.LoopIdea, list[techniques.Step]] | None:
    """The best idea so far and its feature steps, when it is a feature idea."""
    best = target(loop)
    if best is None or not best.idea.steps:
        return None
    return best, [techniques.Step.from_proto(s) for s in best.idea.steps]


def builds_on(loop: loop_pb2.ResearchLoop, idea: loop_pb2.LoopIdea) -> loop_pb2.LoopIdea | None:
    """The best idea a feature idea of the idea agent (the LLM's, or the profile's) builds on at its turn;
    None when it builds on nothing: not a feature idea, built once already, the best has no steps (a
    portfolio model), or the idea adds no step of its own to them."""
    if not idea.idea.steps or idea.built_on or idea.origin not in PROPOSED:
        return None
    found = best_steps(loop)
    if found is None or found[0].idea.id == idea.idea.id:
        return None
    best, base = found
    added = _added(idea, base)
    if not added or len(base) + len(added) > MAX_BUILT_STEPS:
        return None
    return best


def may_build_on(queued: loop_pb2.LoopIdea, going: loop_pb2.LoopIdea) -> bool:
    """Whether a queued feature idea of the idea agent may build on an idea under way: that one has
    features of its own and may become the best, so the queued idea's steps are known only once it is
    reviewed."""
    return bool(queued.idea.steps) and queued.origin in PROPOSED and bool(going.idea.steps)


def _added(idea: loop_pb2.LoopIdea, base: list[techniques.Step]) -> list[techniques.Step]:
    """The idea's own steps that `base` lacks, in its order."""
    return [s for s in (techniques.Step.from_proto(p) for p in idea.idea.steps) if s not in base]


def build_on(idea: loop_pb2.LoopIdea, best: loop_pb2.LoopIdea) -> None:
    """The idea's steps become the best's followed by its own that the best lacks; said in its notes."""
    base = [techniques.Step.from_proto(s) for s in best.idea.steps]
    added = _added(idea, base)
    steps: list[idea_pb2.FeatureStep] = [s.to_proto() for s in (*base, *added)]
    del idea.idea.steps[:]
    idea.idea.steps.extend(steps)
    idea.built_on = best.idea.id
    idea.idea.notes.append(
        f"built on the best idea at its turn, {best.idea.title!r}: its "
        f"{', '.join(s.described() for s in added)} added to that idea's "
        f"{', '.join(s.described() for s in base)}"
    )


def prompt_line(loop: loop_pb2.ResearchLoop) -> str:
    """What the idea agent is told of the best feature idea (empty when the best has no steps)."""
    found = best_steps(loop)
    if found is None:
        return ""
    best, steps = found
    return (
        f"The best idea so far, {best.idea.title!r}, uses the features "
        f"{'; '.join(s.described() for s in steps)}. A new feature idea's steps are added to these, so "
        "propose features that are not among them."
    )
