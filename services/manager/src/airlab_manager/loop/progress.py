"""The research's live progress (ResearchProgress), computed from its loop after every step."""

from __future__ import annotations

from airlab.enums import enum_words
from airlab.v1 import loop_pb2, research_pb2
from airlab_manager.loop.step import FAILED, FINISHED, StepContext


def progress_of(
    loop: loop_pb2.ResearchLoop, context: StepContext, *, maximize: bool = True, family_size: int = 0
) -> research_pb2.ResearchProgress:
    runs = loop.experiments
    progress = research_pb2.ResearchProgress(
        round=loop.round,
        experiments_requested=len(runs),
        experiments_finished=sum(1 for x in runs if x.state == FINISHED),
        experiments_failed=sum(1 for x in runs if x.state == FAILED),
        ideas_proposed=len(loop.ideas),
        ideas_approved=sum(1 for i in loop.ideas if i.review.approved),
        tokens=context.tokens,
        cost_usd=context.cost_usd,
        phase=enum_words(loop_pb2.LoopPhase, loop.phase),
        llm_seconds=context.llm_seconds,
        experiment_seconds=sum(x.run_seconds for x in runs),
        waiting_seconds=sum(x.queued_seconds for x in runs),
        family_size=family_size,
    )
    if loop.HasField("baseline"):
        progress.has_baseline = True
        progress.baseline_mean, progress.baseline_std = loop.baseline.mean, loop.baseline.std
    if loop.HasField("best"):
        best = loop.best
        progress.has_best = True
        progress.best_mean, progress.best_std = best.mean, best.std
        progress.best_idea_id, progress.best_title = best.idea_id, best.title
        progress.best_significant = best.significant
        if best.HasField("adjusted_p"):
            progress.best_p_value, progress.best_adjusted_p = best.p_value, best.adjusted_p
        progress.best_suggestive = best.suggestive
    if loop.baseline.HasField("chance"):
        progress.chance = loop.baseline.chance
        above = loop.baseline.mean - loop.baseline.chance
        progress.baseline_beats_chance = above > 0 if maximize else above < 0
    return progress
