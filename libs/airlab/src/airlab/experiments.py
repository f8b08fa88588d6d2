"""Asking the runner for an experiment over the bus, and waiting for its outcome.

Agents never call the runner directly: they publish `experiment.requested` (its id derived from the
experiment, so asking again after a crash is stored once) and the runner's consumer submits it. The
outcome comes back as the runner's `experiment.finished` / `failed` / `cancelled` events."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping
from typing import Any, Protocol

from airlab.events import body_of, make_event
from airlab.ids import derived_id
from airlab.v1 import events_pb2, idea_pb2, loop_pb2, runner_pb2

REQUESTED = "experiment.requested"
OUTCOMES = ("experiment.finished", "experiment.failed", "experiment.cancelled")
CODE_FILE = "train.py"
Param = int | float | str | bool


class Bus(Protocol):
    async def publish(self, event: events_pb2.Event) -> int: ...

    def read(self, subject_filter: str, *, from_sequence: int = 0, follow: bool = False) -> Any: ...


def experiment_id(research_id: str, *parts: str) -> str:
    """The experiment a research step runs: the same step always names the same experiment (and job)."""
    return derived_id("x", ":".join([research_id, *parts]))


def param_value(value: Param) -> loop_pb2.ParamValue:
    if isinstance(value, bool):
        return loop_pb2.ParamValue(flag=value)
    if isinstance(value, int):
        return loop_pb2.ParamValue(integer=value)
    if isinstance(value, float):
        return loop_pb2.ParamValue(number=value)
    if isinstance(value, str):
        return loop_pb2.ParamValue(text=value)
    raise TypeError(f"a hyperparameter is a number, a string or a flag, not {type(value).__name__}")


def param_values(params: Mapping[str, Param]) -> dict[str, loop_pb2.ParamValue]:
    return {name: param_value(value) for name, value in params.items()}


def plain_params(params: Mapping[str, loop_pb2.ParamValue]) -> dict[str, Param]:
    """The values as Python numbers, strings and flags (whole numbers stay int)."""
    found: dict[str, Param] = {}
    for name, value in params.items():
        kind = value.WhichOneof("value")
        if kind is not None:
            found[name] = getattr(value, kind)
    return found


def run_config(
    job: loop_pb2.JobConfig,
    *,
    seed: int,
    params: Mapping[str, loop_pb2.ParamValue],
    learning_curve: bool,
    stop_below: Mapping[int, float] | None = None,
    profile: bool = False,
) -> dict[str, Any]:
    """What one run reads from JOB_CONFIG: the research's template settings plus the run's own (with
    `stop_below`, a search trial's early-stop rule: {epoch: validation score it must not be behind}; with
    `profile`, the run also describes the data in its result.json, as the sklearn template can)."""
    config: dict[str, Any] = {
        "dataset": job.dataset,
        "task": job.task,
        "metric": job.metric,
        "model": job.model,
        "split_seed": job.split_seed,
        "test_fraction": job.test_fraction,
        "seed": seed,
        "params": plain_params(params),
        "learning_curve": learning_curve,
    }
    if profile:
        config["profile"] = True
    if stop_below:
        config["stop_below"] = {str(epoch): value for epoch, value in sorted(stop_below.items())}
    if job.csv_path:
        config |= {"csv_path": job.csv_path, "target": job.target}
    if job.data_path:
        config["data_path"] = job.data_path
    return config


def request(
    research_id: str,
    experiment: str,
    *,
    code_ref: str,
    config: Mapping[str, Any],
    resources: runner_pb2.Resources,
    kind: loop_pb2.ExperimentKind,
    name: str = "",
    seed: int = 0,
    params: Mapping[str, loop_pb2.ParamValue] | None = None,
    entrypoint: str = CODE_FILE,
    datasets: list[runner_pb2.DatasetMount] | None = None,
    source: str = "",
    cause: str = "",
) -> events_pb2.Event:
    """The `experiment.requested` event for one run of the code under `code_ref` with `config` (handed to
    the job as JOB_CONFIG). `kind` and `name` travel with it for the requester's bookkeeping, `seed` and
    `params` (the values in `config`, typed) for whoever shows the run."""
    spec = runner_pb2.ExperimentSpec(
        research_id=research_id,
        experiment_id=experiment,
        code_ref=code_ref,
        entrypoint=entrypoint,
        resources=resources,
        datasets=datasets or [],
        env={"JOB_CONFIG": json.dumps(dict(config), sort_keys=True)},
    )
    body = events_pb2.ExperimentRequested(
        experiment_id=experiment, spec=spec, kind=kind, name=name, seed=seed, params=params or {}
    )
    return make_event(
        REQUESTED,
        research_id,
        body,
        event_id=f"{experiment}.requested",
        correlation_id=cause,
        source=source,
    )


def spec_of(event: events_pb2.Event) -> runner_pb2.ExperimentSpec:
    return body_of(event).spec


async def wait_for(
    bus: Bus, research_id: str, experiment: str, *, from_sequence: int = 0, timeout: float = 3600
) -> events_pb2.Event:
    """The runner's final event for `experiment`, read from the stream (so one that came before the call is
    found too). TimeoutError after `timeout` seconds."""

    async def first() -> events_pb2.Event:
        async for event in bus.read(
            f"airlab.experiment.*.{research_id}", from_sequence=from_sequence, follow=True
        ):
            if event.type in OUTCOMES and body_of(event).experiment_id == experiment:
                return event
        raise RuntimeError("the event stream ended")  # pragma: no cover - follow never ends by itself

    return await asyncio.wait_for(first(), timeout)


def default_params(search_space: Mapping[str, idea_pb2.Range]) -> dict[str, Param]:
    """The middle of every range (geometric for log scales): what the smoke run uses."""
    params: dict[str, Param] = {}
    for name, r in search_space.items():
        middle = math.sqrt(r.low * r.high) if r.log_scale and r.low > 0 else (r.low + r.high) / 2
        params[name] = round(middle) if r.integer else middle
    return params
