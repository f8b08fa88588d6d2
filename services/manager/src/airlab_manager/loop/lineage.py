"""The best idea and the chain of steps behind it: what exploit and improve steps continue, and the trials
TPE is told about. Queries only: the phases that start steps, and the policy, read them."""

from __future__ import annotations

from airlab.v1 import loop_pb2
from airlab_manager.loop.step import find_idea


def target(loop: loop_pb2.ResearchLoop) -> loop_pb2.LoopIdea | None:
    """The idea an exploit step would continue: the best evaluated one, if its code is known."""
    if not loop.HasField("best"):
        return None
    idea = find_idea(loop, loop.best.idea_id)
    return idea if idea is not None and idea.code_ref and idea.best_trial else None


def lineage(loop: loop_pb2.ResearchLoop, idea: loop_pb2.LoopIdea) -> list[loop_pb2.LoopIdea]:
    """The idea and the ideas it continues, nearest first."""
    chain = [idea]
    while chain[-1].parent_id:
        parent = find_idea(loop, chain[-1].parent_id)
        if parent is None or parent in chain:
            break
        chain.append(parent)
    return chain


def history(loop: loop_pb2.ResearchLoop, idea: loop_pb2.LoopIdea) -> list[str]:
    """Every search trial of the idea's lineage, oldest first: what TPE is told."""
    return [x for ancestor in reversed(lineage(loop, idea)) for x in ancestor.trials]
