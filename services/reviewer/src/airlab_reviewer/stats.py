"""Comparing a candidate with the baseline over the plan's seeds, honestly.

A gain is called significant only when all of these hold:
  - it is positive on average over the seeds (in the metric's better direction);
  - a one-sided paired t-test over the seeds rejects "no gain" at the 5% level (so it needs 2+ seeds);
  - it is larger than the seed-to-seed standard deviation of either model (it clears the noise);
  - where the runs kept their test predictions, the 95% paired bootstrap interval over test examples
    lies above zero (the test set is finite too).
Every check's outcome is written as a finding, so a reader sees why a gain was or was not called."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# One-sided 95% critical values of Student's t by degrees of freedom (1..30); beyond 30, 1.645.
T_CRITICAL_95 = (6.314, 2.920, 2.353, 2.132, 2.015, 1.943, 1.895, 1.860, 1.833, 1.812, 1.796, 1.782, 1.771,
                 1.761, 1.753, 1.746, 1.740, 1.734, 1.729, 1.725, 1.721, 1.717, 1.714, 1.711, 1.708, 1.706,
                 1.703, 1.701, 1.699, 1.697)  # fmt: skip
BOOTSTRAP_SAMPLES = 1000
MINIMIZED = {"rmse", "mae"}


@dataclass
class RunResult:
    """What one experiment run reported (result.json)."""

    seed: int
    metrics: dict[str, float]
    targets: list[Any] | None = None
    predictions: list[Any] | None = None

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> RunResult:
        return cls(
            int(doc.get("seed", 0)),
            {k: float(v) for k, v in doc.get("metrics", {}).items()},
            doc.get("test_targets"),
            doc.get("test_predictions"),
        )


@dataclass
class Comparison:
    metric: str
    seeds: list[int]
    mean: float
    std: float
    baseline_mean: float
    baseline_std: float
    gain: float  # in the better direction: > 0 is better than the baseline
    t_statistic: float
    t_critical: float
    bootstrap_interval: tuple[float, float] | None
    significant: bool
    findings: list[str] = field(default_factory=list)
    per_seed: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["bootstrap_interval"] = list(self.bootstrap_interval) if self.bootstrap_interval else None
        for key in ("t_statistic", "t_critical"):
            if not math.isfinite(data[key]):
                data[key] = None  # infinite: JSON has no number for it
        return data


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return math.nan, math.nan
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else 0.0


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties averaged."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]


def _binary_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    positives = labels.sum()
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return math.nan
    ranks = _ranks(scores)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def metric_value(metric: str, targets: np.ndarray, predicted: np.ndarray) -> float:
    """The metric from test targets and predictions, as the job template computes it."""
    if metric == "accuracy":
        return float(np.mean(predicted == targets))
    if metric == "f1_macro":
        scores = []
        for label in np.unique(targets):
            tp = np.sum((predicted == label) & (targets == label))
            fp = np.sum((predicted == label) & (targets != label))
            fn = np.sum((predicted != label) & (targets == label))
            scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
        return float(np.mean(scores))
    if metric == "roc_auc":
        if predicted.ndim == 1:
            return _binary_auc(targets == targets.max(), predicted)
        aucs = [_binary_auc(targets == k, predicted[:, k]) for k in range(predicted.shape[1])]
        return float(np.mean(aucs))
    if metric == "rmse":
        return float(np.sqrt(np.mean((predicted - targets) ** 2)))
    if metric == "mae":
        return float(np.mean(np.abs(predicted - targets)))
    if metric == "r2":
        residual = np.sum((targets - predicted) ** 2)
        total = np.sum((targets - targets.mean()) ** 2)
        return float(1 - residual / total) if total else math.nan
    raise ValueError(f"unknown metric {metric!r}")


def _bootstrap(
    metric: str, sign: float, baseline: list[RunResult], candidate: list[RunResult], rng_seed: int
) -> tuple[float, float] | None:
    """95% interval of the mean-over-seeds gain when test examples are resampled (paired)."""
    runs = baseline + candidate
    if any(r.targets is None or r.predictions is None for r in runs):
        return None
    targets = np.asarray(baseline[0].targets)
    if any(len(r.targets or []) != len(targets) or len(r.predictions or []) != len(targets) for r in runs):
        return None
    base = [np.asarray(r.predictions) for r in baseline]
    cand = [np.asarray(r.predictions) for r in candidate]
    rng = np.random.default_rng(rng_seed)
    gains = []
    for _ in range(BOOTSTRAP_SAMPLES):
        idx = rng.integers(0, len(targets), len(targets))
        t = targets[idx]
        diffs = [
            metric_value(metric, t, c[idx]) - metric_value(metric, t, b[idx])
            for b, c in zip(base, cand, strict=True)
        ]
        value = sign * float(np.mean(diffs))
        if math.isfinite(value):
            gains.append(value)
    if len(gains) < BOOTSTRAP_SAMPLES // 2:
        return None
    low, high = np.percentile(gains, [2.5, 97.5])
    return float(low), float(high)


def compare(
    metric: str,
    baseline: Mapping[int, RunResult],
    candidate: Mapping[int, RunResult],
    *,
    maximize: bool | None = None,
    rng_seed: int = 0,
) -> Comparison:
    """The candidate against the baseline on the seeds both ran."""
    if maximize is None:
        maximize = metric not in MINIMIZED
    sign = 1.0 if maximize else -1.0
    seeds = sorted(set(baseline) & set(candidate))
    base = [baseline[s] for s in seeds]
    cand = [candidate[s] for s in seeds]
    b_values = [r.metrics[metric] for r in base]
    c_values = [r.metrics[metric] for r in cand]
    mean, std = mean_std(c_values)
    b_mean, b_std = mean_std(b_values)
    gains = [sign * (c - b) for b, c in zip(b_values, c_values, strict=True)]
    gain, gain_sd = mean_std(gains)
    n = len(seeds)
    findings: list[str] = []
    if n < 2:
        t, critical = 0.0, math.inf
        findings.append(f"only {n} seed(s) ran on both sides: a gain cannot be told from noise")
    else:
        critical = T_CRITICAL_95[n - 2] if n - 1 <= len(T_CRITICAL_95) else 1.645
        # No spread in the gains at all: any positive gain is consistent, and the other checks decide.
        t = gain / (gain_sd / math.sqrt(n)) if gain_sd > 0 else (math.inf if gain > 0 else 0.0)
        verdict = "passes" if t > critical else "fails"
        findings.append(
            f"paired t-test over {n} seeds: t = {t:.2f} against {critical:.2f} needed ({verdict})"
        )
    noise = max(std, b_std)
    findings.append(
        f"mean gain {gain:+.4f} against seed-to-seed noise {noise:.4f} "
        f"({'clears it' if gain > noise else 'does not clear it'})"
    )
    interval = _bootstrap(metric, sign, base, cand, rng_seed) if n else None
    if interval is not None:
        verdict = "above zero" if interval[0] > 0 else "includes zero or less"
        findings.append(
            "95% bootstrap interval of the gain over test examples: "
            f"[{interval[0]:+.4f}, {interval[1]:+.4f}] ({verdict})"
        )
    significant = (
        n >= 2 and gain > 0 and t > critical and gain > noise and (interval is None or interval[0] > 0)
    )
    per_seed = [
        {"seed": s, "baseline": b, "candidate": c} for s, b, c in zip(seeds, b_values, c_values, strict=True)
    ]
    return Comparison(
        metric, seeds, mean, std, b_mean, b_std, gain, t, critical, interval, significant, findings, per_seed
    )
