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

from google.protobuf import json_format

from airlab.events import make_event, payload_dict
from airlab.ids import derived_id
from airlab.v1 import events_pb2, runner_pb2

REQUESTED = "experiment.requested"
OUTCOMES = ("experiment.finished", "experiment.failed", "experiment.cancelled")
CODE_FILE = "train.py"


class Bus(Protocol):
    async def publish(self, event: events_pb2.Event) -> int: ...

    def read(self, subject_filter: str, *, from_sequence: int = 0, follow: bool = False) -> Any: ...


def experiment_id(research_id: str, *parts: str) -> str:
    """The experiment a research step runs: the same step always names the same experiment (and job)."""
    return derived_id("x", ":".join([research_id, *parts]))


def request(
    research_id: str,
    experiment: str,
    *,
    code_ref: str,
    config: Mapping[str, Any],
    resources: runner_pb2.Resources,
    entrypoint: str = CODE_FILE,
    labels: Mapping[str, Any] | None = None,
    datasets: list[runner_pb2.DatasetMount] | None = None,
    source: str = "",
    cause: str = "",
) -> events_pb2.Event:
    """The `experiment.requested` event for one run of the code under `code_ref` with `config` (handed to
    the job as JOB_CONFIG). `labels` travel with it for the requester's bookkeeping."""
    spec = runner_pb2.ExperimentSpec(
        research_id=research_id,
        experiment_id=experiment,
        code_ref=code_ref,
        entrypoint=entrypoint,
        resources=resources,
        datasets=datasets or [],
        env={"JOB_CONFIG": json.dumps(dict(config), sort_keys=True)},
    )
    payload = {
        "experiment_id": experiment,
        "spec": json_format.MessageToDict(spec, preserving_proto_field_name=True),
        "labels": dict(labels or {}),
    }
    return make_event(
        REQUESTED,
        research_id,
        payload,
        event_id=f"{experiment}.requested",
        correlation_id=cause,
        source=source,
    )


def spec_of(event: events_pb2.Event) -> runner_pb2.ExperimentSpec:
    return json_format.ParseDict(payload_dict(event)["spec"], runner_pb2.ExperimentSpec())


async def wait_for(
    bus: Bus, research_id: str, experiment: str, *, from_sequence: int = 0, timeout: float = 3600
) -> events_pb2.Event:
    """The runner's final event for `experiment`, read from the stream (so one that came before the call is
    found too). TimeoutError after `timeout` seconds."""

    async def first() -> events_pb2.Event:
        async for event in bus.read(
            f"airlab.experiment.*.{research_id}", from_sequence=from_sequence, follow=True
        ):
            if event.type in OUTCOMES and payload_dict(event).get("experiment_id") == experiment:
                return event
        raise RuntimeError("the event stream ended")  # pragma: no cover - follow never ends by itself

    return await asyncio.wait_for(first(), timeout)


def default_params(search_space: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The middle of every range (geometric for log scales): what the smoke run uses."""
    params: dict[str, Any] = {}
    for name, r in search_space.items():
        low, high = float(r.get("low", 0.0)), float(r.get("high", 0.0))
        middle = math.sqrt(low * high) if r.get("log_scale") and low > 0 else (low + high) / 2
        params[name] = round(middle) if r.get("integer") else middle
    return params
