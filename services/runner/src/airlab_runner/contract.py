"""The experiment contract: what a job writes and how the runner reads it back.

In its work dir a job appends metric points to `metrics.jsonl`, one JSON object per line:
    {"step": 3, "loss": 0.41, "val_accuracy": 0.93}
(every key but "step" is a metric with a finite number), and finally writes `result.json`:
    {"metrics": {"accuracy": 0.95}, "seed": 0, "duration_seconds": 12.5}
Model files go under `models/`, plots under `plots/`, sample predictions (e.g. a segmentation's masks)
under `predictions/`. Everything is size-limited and checked; a job's
claims about itself are never trusted beyond that."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from airlab.results import MAX_METRIC_NAME, RunResult, problem

METRICS_FILE = "metrics.jsonl"
RESULT_FILE = "result.json"
OUTPUT_DIRS = ("models", "plots", "predictions")
MAX_RESULT_BYTES = 1 << 20
MAX_METRICS_BYTES = 10 << 20


class ContractError(ValueError):
    """The job's outputs break the contract; the message says how."""


@dataclass
class MetricPoint:
    name: str
    value: float
    step: int


# What a run reported: the shared model of result.json.
Result = RunResult


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_metric_line(line: str, line_number: int) -> list[MetricPoint]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ContractError(f"{METRICS_FILE} line {line_number}: not JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise ContractError(f"{METRICS_FILE} line {line_number}: expected a JSON object")
    step = row.get("step", line_number - 1)
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ContractError(f"{METRICS_FILE} line {line_number}: step must be an integer >= 0")
    points = []
    for name, value in row.items():
        if name in ("step", "time"):
            continue
        if not name or len(name) > MAX_METRIC_NAME or not _number(value):
            raise ContractError(f"{METRICS_FILE} line {line_number}: {name[:40]!r} must name a finite number")
        points.append(MetricPoint(name, float(value), step))
    return points


def read_metrics(workdir: Path) -> list[MetricPoint]:
    path = workdir / METRICS_FILE
    if not path.is_file():
        return []
    if path.stat().st_size > MAX_METRICS_BYTES:
        raise ContractError(f"{METRICS_FILE} is larger than {MAX_METRICS_BYTES >> 20} MiB")
    points: list[MetricPoint] = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if line.strip():
            points += parse_metric_line(line, number)
    return points


def read_result(workdir: Path) -> RunResult:
    path = workdir / RESULT_FILE
    if path.is_symlink() or not path.is_file():
        raise ContractError(f"the job wrote no {RESULT_FILE}")
    if path.stat().st_size > MAX_RESULT_BYTES:
        raise ContractError(f"{RESULT_FILE} is larger than {MAX_RESULT_BYTES >> 10} KiB")
    try:
        text = path.read_text()
        json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ContractError(f"{RESULT_FILE} is not valid JSON: {exc}") from None
    if not text.lstrip().startswith("{"):
        raise ContractError(f"{RESULT_FILE} must be a JSON object")
    try:
        return RunResult.model_validate_json(text)
    except ValidationError as exc:
        raise ContractError(f"{RESULT_FILE}: {problem(exc)}") from None


def output_files(workdir: Path, max_bytes: int) -> list[Path]:
    """Model and plot files to keep: regular files only (no links out of the work dir), together within
    `max_bytes` (the runner's cap on what one job keeps); over it, none are kept."""
    found = []
    for folder in OUTPUT_DIRS:
        root = workdir / folder
        if not root.is_dir() or root.is_symlink():
            continue
        for path in sorted(root.rglob("*")):
            if path.is_symlink() or not path.is_file():
                continue
            found.append(path)
    total = sum(path.stat().st_size for path in found)
    if total > max_bytes:
        raise ContractError(
            f"the job's {', '.join(OUTPUT_DIRS)} hold {mib(total)}, more than the {mib(max_bytes)} one job "
            "may keep: none of them kept"
        )
    return found


def mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"
