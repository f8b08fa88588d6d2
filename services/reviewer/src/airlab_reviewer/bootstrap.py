"""The paired bootstrap over test examples, vectorized: each metric scored with numpy over many resamples at
once (R², F1, ROC AUC, and per-example scores such as Dice), in batches that bound memory; a metric numpy
cannot score falls back to one scikit-learn call per resample."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from airlab.results import RunResult

# Resamples of the test examples: the family's levels go down to a few in ten thousand, so the bootstrap
# (every metric scored with numpy, `resample_scorer`) takes many, in batches to bound memory. A metric
# numpy cannot score would take a scikit-learn call per resample: a thousand, its p never below 2/1001.
BOOTSTRAP_SAMPLES = 10_000


BOOTSTRAP_SAMPLES_SLOW = 1000


BOOTSTRAP_BATCH = 250


# Metrics a run reports per test example (segmentation: per image), averaged into the metric: the
# bootstrap resamples those scores.
PER_EXAMPLE_METRICS = ("dice", "iou")


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


Scorer = Callable[[np.ndarray], np.ndarray]


def resample_scorer(metric: str, targets: np.ndarray, predictions: list[np.ndarray]) -> Scorer | None:
    """A function of resamples' index arrays (resamples x examples) that gives every run's metric on each
    resample (runs x resamples), in numpy, as scikit-learn would score it (NaN where it is undefined: a
    resample with one class for ROC AUC, constant targets for R²); None for a metric it does not know."""
    values = [per_example(metric, targets, p) for p in predictions]
    if all(v is not None for v in values):  # a mean of per-example values
        scores = np.stack(values)  # type: ignore[arg-type]
        return lambda index: from_mean(metric, scores[:, index].mean(axis=-1))
    if metric == "r2":
        return _r2_scorer(targets.astype(float), predictions)
    if metric == "f1_macro":
        return _f1_scorer(targets, predictions)
    if metric == "roc_auc":
        return _auc_scorer(targets, predictions)
    return None


def _r2_scorer(truth: np.ndarray, predictions: list[np.ndarray]) -> Scorer:
    errors = np.stack([(p.astype(float) - truth) ** 2 for p in predictions])

    def r2(index: np.ndarray) -> np.ndarray:
        sample = truth[index]
        spread = ((sample - sample.mean(axis=-1, keepdims=True)) ** 2).mean(axis=-1)
        constant = sample.max(axis=-1) == sample.min(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(constant, np.nan, 1 - errors[:, index].mean(axis=-1) / spread)

    return r2


def _f1_scorer(truth: np.ndarray, predictions: list[np.ndarray]) -> Scorer:
    """Macro F1 over the classes present in a resample's labels or predictions: 2 TP / (predicted +
    actual) per class, as scikit-learn computes it."""
    classes = np.unique(np.concatenate([truth.ravel(), *(p.ravel() for p in predictions)]))
    actual = truth[None, :] == classes[:, None]  # classes x examples
    predicted = [p[None, :] == classes[:, None] for p in predictions]
    hits = [guess & actual for guess in predicted]

    def f1(index: np.ndarray) -> np.ndarray:
        real = actual[:, index].sum(axis=-1)  # classes x resamples
        scores = []
        for guess, hit in zip(predicted, hits, strict=True):
            both = guess[:, index].sum(axis=-1) + real
            present = both > 0
            per_class = np.where(present, 2 * hit[:, index].sum(axis=-1) / np.maximum(both, 1), 0.0)
            scores.append(per_class.sum(axis=0) / present.sum(axis=0))
        return np.stack(scores)

    return f1


def _auc_scorer(truth: np.ndarray, predictions: list[np.ndarray]) -> Scorer:
    """ROC AUC (Mann-Whitney, ties counted half): binary on the larger label, or one against the rest
    averaged over the columns of class probabilities. A resample is the test examples with weights (how
    often each was drawn), so each run's scores are sorted once, not once per resample: the AUC counts,
    for each drawn positive, the drawn negatives below its score, and half those tied with it."""
    if predictions[0].ndim == 1:
        columns = [(truth == truth.max(), list(predictions))]
    else:
        columns = [(truth == k, [p[:, k] for p in predictions]) for k in range(predictions[0].shape[1])]
    examples = len(truth)
    sorted_columns = []
    for positive, scores in columns:
        runs = []
        for score in scores:
            order = np.argsort(score, kind="stable")
            ranked = score[order]
            # Each sorted position's group of tied scores: its first and last position (None: no ties).
            starts = np.r_[True, ranked[1:] != ranked[:-1]]
            first = np.maximum.accumulate(np.where(starts, np.arange(examples), 0))
            ends = np.r_[ranked[1:] != ranked[:-1], True]
            last = np.minimum.accumulate(np.where(ends, np.arange(examples), examples)[::-1])[::-1]
            ties = None if starts.all() else (first, last)
            runs.append((order, positive[order], ties))
        sorted_columns.append((positive, runs))

    def auc(index: np.ndarray) -> np.ndarray:
        resamples = index.shape[0]
        offsets = (np.arange(resamples)[:, None] * examples + index).ravel()
        weights = np.bincount(offsets, minlength=resamples * examples).reshape(resamples, examples)
        per_class = []
        for positive, runs in sorted_columns:
            n_pos = weights[:, positive].sum(axis=-1)
            n_neg = examples - n_pos
            values = []
            for order, is_positive, ties in runs:
                drawn = np.take(weights, order, axis=1)
                pos = drawn * is_positive
                negatives_up_to = np.cumsum(drawn - pos, axis=-1)
                if ties is None:
                    below = negatives_up_to - (drawn - pos)
                    tied = drawn - pos
                else:
                    first, last = ties
                    below = np.take(negatives_up_to - (drawn - pos), first, axis=1)
                    tied = np.take(negatives_up_to, last, axis=1) - below
                pairs = (pos * (below + 0.5 * tied)).sum(axis=-1)
                with np.errstate(divide="ignore", invalid="ignore"):
                    values.append(pairs / (n_pos * n_neg))
            per_class.append(np.stack(values))
        return np.mean(per_class, axis=0)

    return auc


@dataclass(frozen=True)
class Bootstrap:
    """The paired bootstrap of the mean-over-seeds gain over test examples."""

    low: float
    high: float
    confidence: float
    # Twice the share of resamples whose gain is not above zero (with the usual +1 on both counts, so it
    # is never 0): below a level exactly when the interval at that level lies above zero.
    p_value: float


def paired_bootstrap(
    metric: str,
    sign: float,
    baseline: list[RunResult],
    candidate: list[RunResult],
    rng_seed: int,
    confidence: float = 0.95,
    resamples: int | None = None,
) -> Bootstrap | None:
    """Resample test examples; every seed's runs are scored on the same resample (paired). `resamples`:
    how many (by default as many as the way of scoring affords)."""
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
    scorer = resample_scorer(metric, targets, base + cand)
    if scorer is not None:
        # Every resample scored at once, with numpy (about a hundred times faster than a scikit-learn call
        # per resample and run, the same numbers).
        seeds = len(base)

        def gain_of_resamples(index: np.ndarray, axis: int = -1) -> np.ndarray:
            per_run = scorer(index)
            return sign * (per_run[seeds:] - per_run[:seeds]).mean(axis=0)

        return _interval(
            gain_of_resamples, len(targets), rng_seed, confidence, vectorized=True, resamples=resamples
        )

    def gain(index: np.ndarray) -> float:
        t = targets[index]
        diffs = [
            metric_value(metric, t, c[index]) - metric_value(metric, t, b[index])
            for b, c in zip(base, cand, strict=True)
        ]
        return sign * float(np.mean(diffs))

    return _interval(gain, len(targets), rng_seed, confidence, vectorized=False, resamples=resamples)


def _interval(
    gain: Any,
    examples: int,
    rng_seed: int,
    confidence: float = 0.95,
    *,
    vectorized: bool,
    resamples: int | None = None,
) -> Bootstrap | None:
    """The percentile interval of `gain` over resamples of the test examples' indices, and its p."""
    from scipy import stats

    result = stats.bootstrap(
        (np.arange(examples),),
        gain,
        vectorized=vectorized,
        n_resamples=resamples or (BOOTSTRAP_SAMPLES if vectorized else BOOTSTRAP_SAMPLES_SLOW),
        batch=BOOTSTRAP_BATCH if vectorized else None,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(rng_seed),
    )
    low, high = result.confidence_interval
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    gains = np.asarray(result.bootstrap_distribution)
    gains = gains[np.isfinite(gains)]
    p_value = min(1.0, 2 * (float(np.sum(gains <= 0)) + 1) / (len(gains) + 1))
    return Bootstrap(float(low), float(high), confidence, p_value)
