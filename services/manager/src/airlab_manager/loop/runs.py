"""Experiments of the loop: asking the runner for a run, an idea's search trials (kept up to the runner's
free slots), and what a run's end does to its baseline or idea."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from airlab import experiments
from airlab.v1 import events_pb2, loop_pb2
from airlab_manager.loop import budget, early_stopping, evaluation, first_trial, lineage, looks, tpe
from airlab_manager.loop.step import (
    FAILED,
    FINISHED,
    PROPOSED,
    REQUESTED,
    Step,
    all_done,
    experiments_of,
    find_experiment,
    find_idea,
)
from airlab_manager.loop.work_requests import request_run

# An idea with this many failed trials and none finished requests no more: the rest would most likely
# fail the same way (a network too large for the memory limit, an error the smoke run's subset missed).
FAILED_TRIALS_TO_GIVE_UP = 2

# A raced idea's first trials: once they ended, it searches on only if one of them is ahead of the best
# idea's point on validation (successive halving with one rung).
RACE_RUNG = 2
RACED = (*PROPOSED, loop_pb2.IDEA_ORIGIN_IMPROVE)


def fill_trials(step: Step, idea: loop_pb2.LoopIdea) -> None:
    """Request the idea's next search trials while the runner has a free slot (`free_slots`), within
    what it may request now (`wants_trials`)."""
    while wants_trials(step, idea) and free_slots(step) > 0:
        request_trial(step, idea)


def wants_trials(step: Step, idea: loop_pb2.LoopIdea) -> bool:
    """Whether the idea's search would request another trial were a slot free: it has fewer than it may
    request now (`trials_allowed`), its trials do not keep failing, and the wall-clock budget is not
    spent once its search began."""
    trials = experiments_of(step.loop, idea.trials)
    failed = sum(1 for x in trials if x.state == FAILED)
    if failed >= FAILED_TRIALS_TO_GIVE_UP and not any(x.state == FINISHED for x in trials):
        return False
    if trials and budget.out_of_time(step.plan, step.loop, step.context.now):
        return False
    return len(idea.trials) < trials_allowed(step, idea, trials)


def free_slots(step: Step) -> int:
    """The runner's slots (`parallel_trials`) this research's runs do not fill: every run in flight
    counts, whichever idea it is for (two ideas may be in flight, see loop.policy.overlap)."""
    in_flight = sum(1 for x in step.loop.experiments if x.state == REQUESTED)
    return step.strategy.parallel_trials - in_flight


def searching(loop: loop_pb2.ResearchLoop) -> list[loop_pb2.LoopIdea]:
    """The ideas whose search is on, the one that started first first (it has first claim on a slot)."""
    ideas = [i for i in loop.ideas if i.status == loop_pb2.IDEA_STATUS_SEARCHING]
    return sorted(ideas, key=_began(loop))


def advance(step: Step) -> None:
    """After a run ended or a search started: each searching idea, in the order they started, requests
    trials into the free slots; a search none of whose trials runs, and that wants no more, ends (its
    best point runs over the seeds). A search that wants more waits for a slot another idea frees; a raced
    idea at its rung waits for the idea started before it to end (the loop calls this again then)."""
    for idea in searching(step.loop):
        fill_trials(step, idea)
        waits = raced(step, idea) and rival_under_way(step.loop, idea)
        if all_done(step.loop, idea.trials) and not wants_trials(step, idea) and not waits:
            finish_search(step, idea)


def trials_allowed(step: Step, idea: loop_pb2.LoopIdea, trials: list[loop_pb2.LoopExperiment]) -> int:
    """The trials an idea may have requested by now. An idea of the LLM (a new one or a change of the best
    code) is raced against the best idea so far: its first RACE_RUNG trials run, and the rest of its
    budget only when one of those is ahead of the best idea's point on validation; otherwise the rest goes
    to other ideas and more search on the best. The portfolio's short searches and exploit steps (the best
    idea's own study) are not raced."""
    if raced(step, idea) and rival_under_way(step.loop, idea):  # its race is judged once that one ended
        return min(RACE_RUNG, idea.trial_budget)
    if not raced(step, idea) or lineage.target(step.loop) is None:  # nothing to race against yet
        return idea.trial_budget
    rung = trials[:RACE_RUNG]
    if len(rung) < RACE_RUNG or any(x.state == REQUESTED for x in rung):
        return RACE_RUNG
    best = best_complete(step, rung)
    if best is None or not_worth_evaluating(step, idea, best):
        return RACE_RUNG
    return idea.trial_budget


# An idea in one of these has started its search and not ended: one a raced idea started after it may
# race against.
STARTED = (
    loop_pb2.IDEA_STATUS_SEARCHING,
    loop_pb2.IDEA_STATUS_EVALUATING,
    loop_pb2.IDEA_STATUS_REVIEWING,
)


def _began(loop: loop_pb2.ResearchLoop) -> Callable[[loop_pb2.LoopIdea], int]:
    """When an idea's search began, as its first trial's place among the research's runs (not yet: last)."""
    order = {x.id: n for n, x in enumerate(loop.experiments)}
    return lambda idea: order.get(idea.trials[0], len(order)) if idea.trials else len(order)


def rival_under_way(loop: loop_pb2.ResearchLoop, idea: loop_pb2.LoopIdea) -> bool:
    """Whether an idea that started before this one has not ended (two ideas in flight): it may become the
    best this one races against, so the race is judged once it ended."""
    began = _began(loop)
    return any(
        other.idea.id != idea.idea.id and other.status in STARTED and began(other) < began(idea)
        for other in loop.ideas
    )


def raced(step: Step, idea: loop_pb2.LoopIdea) -> bool:
    """Whether the idea's search is raced: an LLM idea or improve step with more trials than the rung."""
    return step.strategy.race_ideas and idea.origin in RACED and idea.trial_budget > RACE_RUNG


def best_complete(step: Step, trials: list[loop_pb2.LoopExperiment]) -> loop_pb2.LoopExperiment | None:
    """The best by validation of the trials that trained to the end (a trial stopped early scored a partly
    trained network: it is told to TPE, never evaluated); None when there is none."""
    complete = [
        x for x in trials if x.state == FINISHED and x.HasField("validation") and not x.stopped_at_epoch
    ]
    pick = max if step.maximize else min
    return pick(complete, key=lambda x: x.validation) if complete else None


def request_trial(step: Step, idea: loop_pb2.LoopIdea) -> None:
    space = idea.idea.search_space
    # An exploit step's TPE is told every trial of the ideas it continues, too.
    trials = experiments_of(step.loop, lineage.history(step.loop, idea))
    done = [
        (experiments.plain_params(x.params), x.validation if x.HasField("validation") else None)
        for x in trials
        if x.state != REQUESTED
    ]
    pending = [experiments.plain_params(x.params) for x in trials if x.state == REQUESTED]
    seed = step.plan.seeds[0]
    if not trials:
        params = first_trial.point(step, idea)
    else:
        inputs = json.dumps(
            [sorted((k, r.SerializeToString(deterministic=True).hex()) for k, r in space.items()),
             done, pending, step.maximize, seed],
            sort_keys=True,
        )  # fmt: skip
        proposals = step.context.proposals
        if inputs not in proposals:
            proposals[inputs] = tpe.next_params(
                space, done, pending=pending, maximize=step.maximize, seed=seed
            )
        params = dict(proposals[inputs])
    experiment = request_run(
        step,
        idea.idea.id,
        loop_pb2.EXPERIMENT_KIND_TRIAL,
        f"trial{len(idea.trials)}",
        seed,
        params,
        idea.code_ref,
        stop_below=stop_rule(step, params),
    )
    idea.trials.append(experiment)


def stop_rule(step: Step, params: Mapping[str, experiments.Param]) -> dict[int, float]:
    """A trial's early stop, for a template that trains in epochs (the trial's `epochs` is searched): the
    median of the research's finished runs at a third and two thirds of its epochs."""
    epochs = planned_epochs(params)
    if not step.strategy.early_stopping or epochs is None:
        return {}
    curves = [
        early_stopping.Curve(
            x.validation_curve,
            planned_epochs(experiments.plain_params(x.params)) or len(x.validation_curve),
        )
        for x in step.loop.experiments
        if x.state == FINISHED and x.validation_curve
    ]
    return early_stopping.stop_below(curves, epochs)


def planned_epochs(params: Mapping[str, experiments.Param]) -> int | None:
    """The epochs a run's parameters ask for; None when they leave them to the template's default."""
    epochs = params.get("epochs")
    if not isinstance(epochs, int | float) or isinstance(epochs, bool):
        return None
    return int(epochs)


def finish_search(step: Step, idea: loop_pb2.LoopIdea) -> None:
    """Every trial ended: the best one's parameters run on the other seeds."""
    trials = experiments_of(step.loop, idea.trials)
    scored = [x for x in trials if x.state == FINISHED and x.HasField("validation")]
    if not scored:
        reasons = "; ".join(sorted({x.reason[:200] for x in trials}))
        evaluation.idea_failed(step, idea, f"every search trial failed: {reasons}")
        return
    best = best_complete(step, scored)
    if best is None:
        not_better(
            step,
            idea,
            f"every search trial ({len(scored)}) was stopped early, behind the median of the research's "
            "runs at the same epoch",
        )
        return
    behind = not_worth_evaluating(step, idea, best)
    if behind:
        not_better(step, idea, behind)
        return
    idea.best_trial = best.id
    idea.best_params.clear()
    for name, value in best.params.items():
        idea.best_params[name].CopyFrom(value)
    idea.status = loop_pb2.IDEA_STATUS_EVALUATING
    step.loop.phase = loop_pb2.LOOP_PHASE_EVALUATING
    idea.evaluations[best.seed] = best.id
    params = experiments.plain_params(best.params)
    # A learning curve costs about 1.5 fits more: the idea's is drawn on its first evaluation seed only
    # (the baseline's on every seed, the reference the report's plot compares with).
    curve = True
    for seed in step.plan.seeds:
        if seed in idea.evaluations:
            continue
        idea.evaluations[seed] = request_run(
            step,
            idea.idea.id,
            loop_pb2.EXPERIMENT_KIND_EVALUATION,
            f"seed{seed}",
            seed,
            params,
            idea.code_ref,
            curve=curve,
        )
        curve = False
    if looks.ready(step, idea):
        evaluation.request_evaluation(step, idea)


def not_better(step: Step, idea: loop_pb2.LoopIdea, why: str) -> None:
    """The idea ends without evaluation runs: nothing it found could be the best. Memory keeps why."""
    idea.status = loop_pb2.IDEA_STATUS_NOT_BETTER
    idea.failure = why
    step.memories.append(evaluation.lesson(step, idea))
    step.then_decide()


def not_worth_evaluating(step: Step, idea: loop_pb2.LoopIdea, best: loop_pb2.LoopExperiment) -> str:
    """Why the search's best point is not run over the other seeds ('' when it is): the seeds are for a
    candidate to be the best idea, so a point not ahead of the best idea's on validation (every trial
    runs on the same split and seed) does not spend them. An exploit step is compared with the point it
    continued."""
    continues = idea.origin == loop_pb2.IDEA_ORIGIN_EXPLOIT
    if not continues and step.strategy.evaluate_every_idea:
        return ""
    reference = find_idea(step.loop, idea.parent_id) if continues else lineage.target(step.loop)
    bar = validation_bar(step, reference) if reference is not None else None
    if reference is None or bar is None:
        return ""
    if ahead_of(step, best.validation, bar.value):
        return ""
    if continues:
        return (
            f"its best trial ({best.validation:.4f} on validation) did not beat the point it continued "
            f"({bar.value:.4f}{bar.source})"
        )
    stopped_at_rung = ""
    if raced(step, idea) and len(idea.trials) == RACE_RUNG:
        stopped_at_rung = (
            f" after {len(idea.trials)} of its {idea.trial_budget} trials (raced: the rest went to other "
            "ideas)"
        )
    return (
        f"its best trial ({best.validation:.4f} on validation) is not ahead of the best idea so far, "
        f"{reference.idea.title!r} ({bar.value:.4f}{bar.source}){stopped_at_rung}: not run over the other "
        "seeds"
    )


def ahead_of(step: Step, score: float, bar: float) -> bool:
    """Whether a validation score is strictly better than `bar` in the metric's direction."""
    return score > bar if step.maximize else score < bar


@dataclass(frozen=True)
class Bar:
    value: float
    # How the value was found, as the report says it ('' for the best search trial).
    source: str = ""


def validation_bar(step: Step, reference: loop_pb2.LoopIdea) -> Bar | None:
    """The validation score a new point must pass to be ahead of `reference` (None: no bar known): its best
    search trial, or with `bar_over_seeds` the mean of its runs over the seeds when that is lower (higher
    for a metric to minimise): the best trial was the maximum of several draws on one seed."""
    trial = find_experiment(step.loop, reference.best_trial)
    if trial is None or not trial.HasField("validation"):
        return None
    bar = Bar(trial.validation)
    if not step.strategy.bar_over_seeds:
        return bar
    runs = experiments_of(step.loop, list(reference.evaluations.values()))
    scores = [x.validation for x in runs if x.state == FINISHED and x.HasField("validation")]
    if len(scores) < 2 or len(scores) < len(reference.evaluations):
        return bar
    mean = statistics.fmean(scores)
    if ahead_of(step, bar.value, mean):  # the best trial was above its seeds' mean
        return Bar(mean, f", the mean of its {len(scores)} seeds")
    return bar


def record_outcome(
    step: Step, outcome: events_pb2.ExperimentOutcome, *, finished: bool
) -> loop_pb2.LoopExperiment | None:
    """experiment.finished / failed / cancelled: the run's result or reason, on the loop's record of it.
    None when the run is not the loop's or has ended already (a repeated or stale outcome)."""
    run = find_experiment(step.loop, outcome.experiment_id)
    if run is None or run.state != REQUESTED:
        return None
    run.state = FINISHED if finished else FAILED
    if finished:
        metric = step.plan.metric
        if metric in outcome.metrics:
            run.test = outcome.metrics[metric]
        if f"val_{metric}" in outcome.metrics:
            run.validation = outcome.metrics[f"val_{metric}"]
        run.validation_curve[:] = outcome.validation_curve[: early_stopping.MAX_STORED_EPOCHS]
        run.stopped_at_epoch = outcome.stopped_at_epoch
    else:
        run.reason = (outcome.reason or step.cause.type)[:1000]
    run.run_seconds, run.queued_seconds = outcome.run_seconds, outcome.queued_seconds
    return run


def experiment_done(step: Step, run: loop_pb2.LoopExperiment) -> bool:
    """An idea's run ended (its outcome recorded): the searches go on in the slot it freed, or end; an
    evaluation whose runs all ended is reviewed. The baseline's runs are baseline.progress's."""
    advance(step)
    idea = find_idea(step.loop, run.name)
    if idea is None:
        return True
    if idea.status == loop_pb2.IDEA_STATUS_EVALUATING and looks.ready(step, idea):
        evaluation.request_evaluation(step, idea)
    return True
