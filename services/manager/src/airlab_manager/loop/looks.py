"""The verdict's two looks (airlab.verdicts): the research's comparisons judged as one family, and a
borderline first look given more seeds, for the idea and the baseline, before anything is claimed."""

from __future__ import annotations

from airlab import experiments, verdicts
from airlab.v1 import loop_pb2, research_pb2
from airlab_manager.loop import budget
from airlab_manager.loop.step import BASELINE, REQUESTED, Step, all_done
from airlab_manager.loop.work_requests import request_run


def family_size(plan: research_pb2.Plan) -> int:
    return verdicts.family_size(plan.budget.max_experiments, len(plan.seeds))


def look_of(idea: loop_pb2.LoopIdea) -> int:
    return 2 if idea.extra_seeds else 1


def judge(step: Step, reviewed: loop_pb2.LoopIdea) -> None:
    """Judge every evaluated idea's comparison, and the one just reviewed, as the research's family."""
    family = [
        i.evaluation for i in step.loop.ideas if i.status == loop_pb2.IDEA_STATUS_EVALUATED or i is reviewed
    ]
    verdicts.judge(family, family_size(step.plan))


def _baseline_runs(loop: loop_pb2.ResearchLoop) -> dict[int, loop_pb2.LoopExperiment]:
    return {x.seed: x for x in loop.experiments if x.kind == loop_pb2.EXPERIMENT_KIND_BASELINE}


def ready(step: Step, idea: loop_pb2.LoopIdea) -> bool:
    """Whether every run of the idea's evaluation ended, and the baseline's on the seeds it added."""
    if not all_done(step.loop, idea.evaluations.values()):
        return False
    baseline = _baseline_runs(step.loop)
    return all(s not in baseline or baseline[s].state != REQUESTED for s in idea.extra_seeds)


def could_win(loop: loop_pb2.ResearchLoop, comparison: loop_pb2.Comparison) -> bool:
    """Whether a claim for this comparison would be the research's (no larger significant gain exists)."""
    best = loop.best
    return not (loop.HasField("best") and best.significant and best.gain >= comparison.gain)


def add_seeds(step: Step, idea: loop_pb2.LoopIdea) -> int:
    """Ask for up to EXTRA_SEEDS more runs of the idea's best point, on seeds beyond the plan's, with the
    baseline's where it has none there yet, within what is left of the budget; the seeds it got."""
    loop = step.loop
    left = budget.experiments_left(step.plan, loop, queued=False)
    baseline = _baseline_runs(loop)
    chosen: list[int] = []
    seed = max(step.plan.seeds) + 1
    while len(chosen) < verdicts.EXTRA_SEEDS:
        if seed not in idea.evaluations:
            cost = 1 + (seed not in baseline)
            if cost > left:
                break
            left -= cost
            chosen.append(seed)
        seed += 1
    params = experiments.plain_params(idea.best_params)
    for seed in chosen:
        label = f"seed{seed}"
        if seed not in baseline:
            request_run(
                step, BASELINE, loop_pb2.EXPERIMENT_KIND_BASELINE, label, seed, {}, loop.baseline_code,
                curve=True,
            )  # fmt: skip
        # No learning curve: the idea's was drawn on its first evaluation seed (a curve costs 1.5 fits).
        idea.evaluations[seed] = request_run(
            step, idea.idea.id, loop_pb2.EXPERIMENT_KIND_EVALUATION, label, seed, params, idea.code_ref,
        )  # fmt: skip
    if chosen:
        idea.extra_seeds.extend(chosen)
        idea.status = loop_pb2.IDEA_STATUS_EVALUATING
        loop.phase = loop_pb2.LOOP_PHASE_EVALUATING
    return len(chosen)


def waiting_for_baseline(loop: loop_pb2.ResearchLoop, seed: int) -> list[loop_pb2.LoopIdea]:
    """Ideas whose second look waits for the baseline's run on `seed`."""
    return [i for i in loop.ideas if i.status == loop_pb2.IDEA_STATUS_EVALUATING and seed in i.extra_seeds]
