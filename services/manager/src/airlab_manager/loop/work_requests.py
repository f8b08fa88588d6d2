"""What the loop asks of other services: one run of the runner (the experiment recorded as requested,
and its event), code of the coder."""

from __future__ import annotations

from collections.abc import Mapping

from airlab import experiments
from airlab.v1 import events_pb2, idea_pb2, loop_pb2, research_pb2, runner_pb2
from airlab_manager.loop.step import REQUESTED, Step


def request_run(
    step: Step,
    name: str,
    kind: loop_pb2.ExperimentKind,
    label: str,
    seed: int,
    params: Mapping[str, experiments.Param],
    code_ref: str,
    *,
    curve: bool = False,
    stop_below: Mapping[int, float] | None = None,
    profile: bool = False,
) -> str:
    experiment = experiments.experiment_id(step.research.id, name, label)
    values = experiments.param_values(params)
    step.loop.experiments.append(
        loop_pb2.LoopExperiment(
            id=experiment, kind=kind, name=name, seed=seed, params=values, state=REQUESTED
        )
    )
    rules = step.rules
    config = experiments.run_config(
        step.loop.job_config,
        seed=seed,
        params=values,
        learning_curve=curve,
        stop_below=stop_below,
        profile=profile,
    )
    step.events.append(
        experiments.request(
            step.research.id,
            experiment,
            code_ref=code_ref,
            config=config,
            resources=runner_pb2.Resources(
                cpu_millis=rules.experiment_cpu_millis,
                memory_mib=rules.experiment_memory_mib,
                wall_seconds=rules.experiment_wall_seconds,
                gpus=step.plan.gpus,
            ),
            datasets=list(step.loop.mounts),
            kind=kind,
            name=name,
            seed=seed,
            params=values,
            source=step.config.source,
            cause=step.cause.id,
        )
    )
    return experiment


def code_request(
    step: Step, name: str, idea: idea_pb2.Idea | None, family: str = ""
) -> events_pb2.CodeRequested:
    budget = step.plan.budget
    request = events_pb2.CodeRequested(
        name=name,
        job_config=step.loop.job_config,
        mounts=step.loop.mounts,
        max_attempts=step.rules.code_attempts,
        budget=research_pb2.Budget(max_tokens=budget.max_tokens, max_cost_usd=budget.max_cost_usd),
        family=family,
    )
    if idea is not None:
        request.idea.CopyFrom(idea)
    return request
