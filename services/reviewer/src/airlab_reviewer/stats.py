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
from typing import Any

import numpy as np

from airlab import domain
from airlab.results import RunResult
from airlab.v1 import loop_pb2

BOOTSTRAP_SAMPLES = 1000
ALPHA = 0.05


# Metrics a run reports per test example (segmentation: per image), averaged into the metric: the
# bootstrap resamples those scores.
PER_EXAMPLE_METRICS = ("dice", "iou")


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return math.nan, math.nan
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else 0.0


def load_libraries() -> None:
    """Import scikit-learn's metrics and SciPy's statistics, which the verdicts use (about 2 s on a small
    CPU). Run in the background once the service is up: neither the service's start nor a research's first
    verdict waits for them (an import under way is waited for, not done twice)."""
    from scipy import stats  # noqa: F401
    from sklearn import metrics  # noqa: F401


def metric_value(metric: str, targets: np.ndarray, predicted: np.ndarray) -> float:
    """The metric from test targets and predictions, computed by scikit-learn as the job template does.
    NaN where it is undefined (a resample with one class for ROC AUC, a constant target for R²)."""
    from sklearn import metrics as sk  # imported when first needed: it costs the service's start a second

    if metric in PER_EXAMPLE_METRICS:  # the run reported each example's score (an image's Dice or IoU)
        return float(np.mean(predicted)) if len(predicted) else math.nan
    try:
        if metric == "accuracy":
            return float(sk.accuracy_score(targets, predicted))
        if metric == "f1_macro":
            return float(sk.f1_score(targets, predicted, average="macro"))
        if metric == "roc_auc":
            if predicted.ndim == 1:
                return float(sk.roc_auc_score(targets == targets.max(), predicted))
            return float(
                sk.roc_auc_score(targets, predicted, multi_class="ovr", labels=range(predicted.shape[1]))
            )
        if metric == "rmse":
            return float(np.sqrt(sk.mean_squared_error(targets, predicted)))
        if metric == "mae":
            return float(sk.mean_absolute_error(targets, predicted))
        if metric == "r2":
            if np.all(targets == targets[0]):
                return math.nan
            return float(sk.r2_score(targets, predicted))
    except ValueError:
        return math.nan
    raise KeyError(f"unknown metric {metric!r}")


def per_example(metric: str, targets: np.ndarray, predicted: np.ndarray) -> np.ndarray | None:
    """One value per test example whose mean gives the metric (through `from_mean`), for the metrics that
    have one; None for the others (F1, ROC AUC, R²)."""
    if metric in PER_EXAMPLE_METRICS:
        return predicted.astype(float)
    if metric == "accuracy":
        return (predicted == targets).astype(float)
    if metric == "mae":
        return np.abs(predicted.astype(float) - targets)
    if metric == "rmse":
        return (predicted.astype(float) - targets) ** 2
    return None


def from_mean(metric: str, means: np.ndarray) -> np.ndarray:
    return np.sqrt(means) if metric == "rmse" else means


def _bootstrap(
    metric: str, sign: float, baseline: list[RunResult], candidate: list[RunResult], rng_seed: int
) -> tuple[float, float] | None:
    """95% interval of the mean-over-seeds gain when test examples are resampled (paired: every seed's
    runs are scored on the same resample)."""
    runs = baseline + candidate
    if any(r.test_targets is None or r.test_predictions is None for r in runs):
        return None
    targets = np.asarray(baseline[0].test_targets)
    if any(
        len(r.test_targets or []) != len(targets) or len(r.test_predictions or []) != len(targets)
        for r in runs
    ):
        return None

    base = [np.asarray(r.test_predictions) for r in baseline]
    cand = [np.asarray(r.test_predictions) for r in candidate]
    values = [v for v in (per_example(metric, targets, p) for p in base + cand) if v is not None]
    if len(values) == len(runs):
        # The metric is a mean of per-example values: every resample scored at once, with numpy (about a
        # hundred times faster than a scikit-learn call per resample and run, the same numbers).
        scores, seeds = np.stack(values), len(base)

        def gain_of_resamples(index: np.ndarray, axis: int = -1) -> np.ndarray:
            per_run = from_mean(metric, scores[:, index].mean(axis=-1))
            return sign * (per_run[seeds:] - per_run[:seeds]).mean(axis=0)

        return _interval(gain_of_resamples, len(targets), rng_seed, vectorized=True)

    def gain(index: np.ndarray) -> float:
        t = targets[index]
        diffs = [
            metric_value(metric, t, c[index]) - metric_value(metric, t, b[index])
            for b, c in zip(base, cand, strict=True)
        ]
        return sign * float(np.mean(diffs))

    return _interval(gain, len(targets), rng_seed, vectorized=False)


def _interval(gain: Any, examples: int, rng_seed: int, *, vectorized: bool) -> tuple[float, float] | None:
    """The 95% percentile interval of `gain` over resamples of the test examples' indices."""
    from scipy import stats

    result = stats.bootstrap(
        (np.arange(examples),),
        gain,
        vectorized=vectorized,
        n_resamples=BOOTSTRAP_SAMPLES,
        confidence_level=0.95,
        method="percentile",
        rng=np.random.default_rng(rng_seed),
    )
    low, high = result.confidence_interval
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    return float(low), float(high)


def compare(
    metric: str,
    baseline: Mapping[int, RunResult],
    candidate: Mapping[int, RunResult],
    *,
    maximize: bool | None = None,
    rng_seed: int = 0,
) -> loop_pb2.Comparison:
    """The candidate against the baseline on the seeds both ran."""
    if maximize is None:
        maximize = domain.maximize(metric)
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
    result = loop_pb2.Comparison(metric=metric, seeds=seeds, mean=mean, std=std, baseline_mean=b_mean,
                                 baseline_std=b_std, gain=gain)  # fmt: skip
    findings: list[str] = []
    passes_t = False
    if n < 2:
        findings.append(f"only {n} seed(s) ran on both sides: a gain cannot be told from noise")
    elif gain_sd == 0:
        # No spread in the gains at all: any positive gain is consistent, and the other checks decide.
        passes_t = gain > 0
        findings.append(f"paired t-test over {n} seeds: every seed gained the same {gain:+.4f}")
    else:
        from scipy import stats

        test = stats.ttest_rel(
            np.multiply(sign, c_values), np.multiply(sign, b_values), alternative="greater"
        )
        result.t_statistic, result.p_value = float(test.statistic), float(test.pvalue)
        passes_t = result.p_value < ALPHA
        findings.append(
            f"paired t-test over {n} seeds: t = {result.t_statistic:.2f}, one-sided p = {result.p_value:.3f} "
            f"({'passes' if passes_t else 'fails'} at {ALPHA:g})"
        )
    noise = max(std, b_std)
    findings.append(
        f"mean gain {gain:+.4f} against seed-to-seed noise {noise:.4f} "
        f"({'clears it' if gain > noise else 'does not clear it'})"
    )
    interval = _bootstrap(metric, sign, base, cand, rng_seed) if n else None
    if interval is not None:
        result.bootstrap_low, result.bootstrap_high = interval
        verdict = "above zero" if interval[0] > 0 else "includes zero or less"
        findings.append(
            "95% bootstrap interval of the gain over test examples: "
            f"[{interval[0]:+.4f}, {interval[1]:+.4f}] ({verdict})"
        )
    result.significant = (
        n >= 2 and gain > 0 and passes_t and gain > noise and (interval is None or interval[0] > 0)
    )
    result.findings.extend(findings)
    for seed, b, c in zip(seeds, b_values, c_values, strict=True):
        result.per_seed.add(seed=seed, baseline=b, candidate=c)
    return result


def bootstrap_interval(comparison: loop_pb2.Comparison) -> tuple[float, float] | None:
    if comparison.HasField("bootstrap_low") and comparison.HasField("bootstrap_high"):
        return comparison.bootstrap_low, comparison.bootstrap_high
    return None
