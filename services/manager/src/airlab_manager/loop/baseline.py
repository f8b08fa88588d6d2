"""The loop's start and its baseline: code the plan's baseline, run it on every seed, measure it."""

from __future__ import annotations

import statistics

from airlab import domain
from airlab.research_record import LOOP_SCHEMA
from airlab.v1 import events_pb2, loop_pb2, research_pb2
from airlab_manager.jobconfig import dataset_mounts, job_config
from airlab_manager.loop import evaluation, looks, report
from airlab_manager.loop.step import BASELINE, FINISHED, REQUESTED, Step
from airlab_manager.loop.work_requests import code_request, request_run


def start(step: Step) -> bool:
    """A planned (or approved) research starts its loop: the baseline's code is asked for."""
    research, loop = step.research, step.loop
    if research.state != research_pb2.RESEARCH_STATE_PLANNED or loop.phase:
        return False
    loop.schema = LOOP_SCHEMA
    loop.phase = loop_pb2.LOOP_PHASE_BASELINE
    loop.started_at = step.context.now
    loop.job_config.CopyFrom(job_config(step.plan, step.config.catalog))
    loop.mounts.extend(dataset_mounts(step.plan, step.config.catalog, research.owner))
    research.state = research_pb2.RESEARCH_STATE_RUNNING
    research.state_reason = "running the baseline"
    step.emit("code.requested", code_request(step, BASELINE, None))
    return True


def code_done(step: Step, outcome: events_pb2.CodeOutcome, *, ok: bool) -> bool:
    loop = step.loop
    if loop.phase != loop_pb2.LOOP_PHASE_BASELINE or loop.baseline_code:
        return False
    if not ok:
        problems = "; ".join(outcome.problems)
        report.stop(step, f"the baseline's code failed its checks: {problems}", failed=True)
        return True
    loop.baseline_code = outcome.code_ref
    # The first seed's run also profiles a table for the idea agent (the sklearn template can).
    profile = domain.template_of(loop.job_config.template) == "sklearn"
    for number, seed in enumerate(step.plan.seeds):
        request_run(
            step, BASELINE, loop_pb2.EXPERIMENT_KIND_BASELINE, f"seed{seed}", seed, {}, loop.baseline_code,
            curve=True, profile=profile and number == 0,
        )  # fmt: skip
    return True


def progress(step: Step, run: loop_pb2.LoopExperiment) -> bool:
    """A baseline run ended: once all did, the baseline is measured and the first round of ideas begins.
    After that, a baseline run is one on a seed a borderline idea's second look added."""
    loop = step.loop
    if loop.phase != loop_pb2.LOOP_PHASE_BASELINE:
        if run.state == FINISHED and run.HasField("test"):
            loop.baseline.experiments[run.seed] = run.id
        for idea in looks.waiting_for_baseline(loop, run.seed):
            if looks.ready(step, idea):
                evaluation.request_evaluation(step, idea)
        return True
    baseline_runs = [x for x in loop.experiments if x.kind == loop_pb2.EXPERIMENT_KIND_BASELINE]
    if any(x.state == REQUESTED for x in baseline_runs):
        return True
    done = [x for x in baseline_runs if x.state == FINISHED and x.HasField("test")]
    if not done:
        reasons = "; ".join(sorted({x.reason for x in baseline_runs}))
        report.stop(step, f"the baseline failed on every seed: {reasons[:800]}", failed=True)
        return True
    tests = [x.test for x in done]
    validations = [x.validation for x in done if x.HasField("validation")]
    result = loop_pb2.BaselineResult(
        mean=statistics.fmean(tests),
        std=statistics.stdev(tests) if len(tests) > 1 else 0.0,
        experiments={x.seed: x.id for x in done},
    )
    if validations:
        result.validation = statistics.fmean(validations)
    loop.baseline.CopyFrom(result)
    step.research.state_reason = f"baseline measured: {step.plan.metric} {result.mean:.4f} ± {result.std:.4f}"
    loop.phase = loop_pb2.LOOP_PHASE_IDEAS
    step.then_decide()
    return True
