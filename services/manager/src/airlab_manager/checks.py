"""Checks of the Lab API's requests: that the caller may act on a research, the goal, budget and hints
(dataset, metric, baseline: known names that fit the dataset's task), text sizes, enum values, and the
research a request id names. Each failure names the offending field."""

from __future__ import annotations

import math
from typing import Any

from airlab import auth
from airlab.domain import hidden_characters
from airlab.errors import InvalidArgument, PermissionDenied, shown
from airlab.ids import derived_id
from airlab.v1 import research_pb2
from airlab_manager.catalog import BASELINES, METRICS, DatasetCatalog

TEXT_MAX_CHARS = 1000
GOAL_MAX_CHARS = 4000


def research_id_for_request(owner: str, request_id: str) -> str:
    """The research a request id starts: the same for the same caller's retries, and another for another
    caller's same id (a request id never reaches, or names, someone else's research)."""
    return derived_id("r", f"request:{owner}:{request_id}")


def check_owner(research: research_pb2.Research) -> None:
    """PermissionDenied unless the caller started the research or may see every research."""
    caller = auth.current.get()
    if not caller.may_see(research.owner):
        raise PermissionDenied(
            f"research {research.id} belongs to another user; {caller.name} may not see it"
        )


def check_text(field: str, value: str, *, required: bool = False) -> None:
    if required and not value.strip():
        raise InvalidArgument(field, "is required")
    if len(value) > TEXT_MAX_CHARS:
        raise InvalidArgument(field, f"is {len(value)} characters; at most {TEXT_MAX_CHARS} are allowed")


def check_enum(field: str, enum: Any, value: int) -> None:
    if value not in enum.values():
        raise InvalidArgument(field, f"unknown value {value}")


def check_goal(goal: str) -> str:
    cleaned = goal.strip()
    if not cleaned:
        raise InvalidArgument("goal", "is required and must not be only whitespace")
    if len(goal) > GOAL_MAX_CHARS:
        raise InvalidArgument("goal", f"is {len(goal)} characters; at most {GOAL_MAX_CHARS} are allowed")
    if hidden := hidden_characters(goal):
        raise InvalidArgument(
            "goal", f"contains control or text-direction characters ({', '.join(hidden[:5])})"
        )
    return cleaned


def check_budget(budget: research_pb2.Budget, prefix: str = "budget") -> None:
    def bounded(name: str, value: float, low: float, high: float) -> None:
        if value != 0 and not (low <= value <= high):
            raise InvalidArgument(
                f"{prefix}.{name}", f"must be 0 (default) or {low:g}..{high:g}, got {value:g}"
            )

    bounded("max_experiments", budget.max_experiments, 1, 1000)
    bounded("max_wall_seconds", budget.max_wall_seconds, 60, 2_592_000)
    bounded("max_tokens", budget.max_tokens, 1000, 1_000_000_000)
    if not math.isfinite(budget.max_cost_usd) or budget.max_cost_usd < 0 or budget.max_cost_usd > 100_000:
        raise InvalidArgument(
            f"{prefix}.max_cost_usd", f"must be 0 (default) or in (0, 100000], got {budget.max_cost_usd}"
        )


def check_hints(catalog: DatasetCatalog, dataset: str, metric: str, baseline: str, prefix: str = "") -> None:
    """Unknown names, or a metric/baseline that does not fit the dataset's task, are rejected."""
    spec = None
    if dataset:
        if dataset not in catalog.datasets:
            raise InvalidArgument(
                f"{prefix}dataset", f"unknown dataset {shown(dataset)}; known: {', '.join(catalog.names())}"
            )
        spec = catalog.datasets[dataset]
    if metric:
        if metric not in METRICS:
            raise InvalidArgument(
                f"{prefix}metric", f"unknown metric {shown(metric)}; known: {', '.join(sorted(METRICS))}"
            )
        if spec and spec.task not in METRICS[metric].tasks:
            raise InvalidArgument(
                f"{prefix}metric", f"{metric!r} does not fit {dataset!r}, a {spec.task} dataset"
            )
    if baseline:
        if baseline not in BASELINES:
            raise InvalidArgument(
                f"{prefix}baseline",
                f"unknown baseline {shown(baseline)}; known: {', '.join(sorted(BASELINES))}",
            )
        if spec and spec.task not in BASELINES[baseline].tasks:
            raise InvalidArgument(
                f"{prefix}baseline", f"{baseline!r} does not fit {dataset!r}, a {spec.task} dataset"
            )
