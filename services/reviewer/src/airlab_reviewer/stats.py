"""Comparing a candidate with the baseline over the plan's seeds, honestly.

The evidence for a gain, each written as a finding so a reader sees why a gain was or was not called:
  - its mean over the seeds (in the metric's better direction) and whether it is larger than the
    seed-to-seed standard deviation of either model (it clears the noise);
  - a one-sided paired t-test over the seeds (so it needs 2+ seeds);
  - where the runs kept their test predictions, a paired bootstrap over test examples (the test set is
    finite too): its p, and its interval at the level the research's family gives;
  - the same against a chance model (the best constant or stratified guess of the test labels), so that
    a gain over a baseline that is itself at chance is no claim.
Whether it is significant is decided over the research's family of comparisons by `airlab.verdicts`."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from airlab import domain, verdicts
from airlab.results import RunResult
from airlab.v1 import loop_pb2

# Resamples of the test examples: the family's levels go down to a few in ten thousand, so the bootstrap
# (every metric scored with numpy, `resample_scorer`) takes many, in batches to bound memory. A metric
# numpy cannot score would take a scikit-learn call per resample: a thousand, its p never below 2/1001.
BOOTSTRAP_SAMPLES = 10_000
BOOTSTRAP_SAMPLES_SLOW = 1000
BOOTSTRAP_BATCH = 250


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
    """ROC AUC from ranks (Mann-Whitney, ties averaged): binary on the larger label, or one against the
    rest averaged over the columns of class probabilities."""
    from scipy import stats

    if predictions[0].ndim == 1:
        columns = [(truth == truth.max(), list(predictions))]
    else:
        columns = [(truth == k, [p[:, k] for p in predictions]) for k in range(predictions[0].shape[1])]

    def auc(index: np.ndarray) -> np.ndarray:
        per_class = []
        for positive, scores in columns:
            chosen = positive[index]
            n_pos = chosen.sum(axis=-1)
            n_neg = chosen.shape[-1] - n_pos
            values = []
            for score in scores:
                ranks = stats.rankdata(score[index], axis=-1)
                with np.errstate(divide="ignore", invalid="ignore"):
                    values.append(((ranks * chosen).sum(axis=-1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
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


def _bootstrap(
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


# The chance model of each metric, taken from the test labels themselves (a constant one is then the best
# constant there is, at least as strong as one fitted on the training part): the most frequent class
# (accuracy), a guess drawn with the classes' frequencies (macro F1, where it beats any constant: about
# 1/K), constant scores (ROC AUC 0.5), the mean (RMSE, R²) or the median (MAE). Segmentation's per-image
# scores have none.
CHANCE_MODELS = {
    "accuracy": "the most frequent class",
    "f1_macro": "a guess drawn with the classes' frequencies",
    "roc_auc": "constant scores",
    "rmse": "the mean",
    "r2": "the mean",
    "mae": "the median",
}


def chance_runs(metric: str, runs: Mapping[int, RunResult]) -> dict[int, RunResult] | None:
    """A chance model's run for each of `runs`' seeds, on the same test examples (None when a run kept no
    test predictions or the metric has no chance model)."""
    if metric not in CHANCE_MODELS or not runs:
        return None
    chance: dict[int, RunResult] = {}
    for seed, run in runs.items():
        if run.test_targets is None or run.test_predictions is None or not run.test_targets:
            return None
        targets = np.asarray(run.test_targets)
        shape = np.asarray(run.test_predictions).shape
        if metric in ("accuracy", "f1_macro"):
            classes, counts = np.unique(targets, return_counts=True)
            if metric == "accuracy":
                guess = np.full(len(targets), classes[np.argmax(counts)])
            else:
                rng = np.random.default_rng(seed)
                guess = rng.choice(classes, size=len(targets), p=counts / counts.sum())
        elif metric == "roc_auc":
            guess = np.full(shape, 1.0 / shape[1]) if len(shape) == 2 else np.full(len(targets), 0.5)
        else:
            numbers = targets.astype(float)
            guess = np.full(len(targets), np.median(numbers) if metric == "mae" else numbers.mean())
        value = metric_value(metric, targets, guess)
        if not math.isfinite(value):
            return None
        chance[seed] = RunResult(
            seed=seed,
            metrics={metric: value},
            duration_seconds=0.0,
            test_targets=run.test_targets,
            test_predictions=guess.tolist(),
        )
    return chance


def _compare(
    metric: str,
    base: list[RunResult],
    cand: list[RunResult],
    seeds: list[int],
    sign: float,
    rng_seed: int,
    confidence: float,
) -> loop_pb2.Comparison:
    """The evidence of `cand` against `base`, seed by seed (the seeds both ran)."""
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
    if n < 2:
        findings.append(f"only {n} seed(s) ran on both sides: a gain cannot be told from noise")
    elif gain_sd == 0:
        # No spread in the gains at all: the t-test has nothing to say, and the other checks decide.
        findings.append(f"paired t-test over {n} seeds: every seed gained the same {gain:+.4f}")
    else:
        from scipy import stats

        test = stats.ttest_rel(
            np.multiply(sign, c_values), np.multiply(sign, b_values), alternative="greater"
        )
        result.t_statistic, result.p_value = float(test.statistic), float(test.pvalue)
        findings.append(
            f"paired t-test over {n} seeds: t = {result.t_statistic:.2f}, one-sided p = {result.p_value:.4f}"
        )
    noise = max(std, b_std)
    result.clears_noise = bool(n and gain > noise)
    findings.append(
        f"mean gain {gain:+.4f} against seed-to-seed noise {noise:.4f} "
        f"({'clears it' if result.clears_noise else 'does not clear it'})"
    )
    interval = _bootstrap(metric, sign, base, cand, rng_seed, confidence) if n else None
    if interval is not None:
        result.bootstrap_low, result.bootstrap_high = interval.low, interval.high
        result.bootstrap_p, result.bootstrap_confidence = interval.p_value, interval.confidence
        verdict = "above zero" if interval.low > 0 else "includes zero or less"
        findings.append(
            f"{interval.confidence * 100:.4g}% bootstrap interval of the gain over test examples: "
            f"[{interval.low:+.4f}, {interval.high:+.4f}] ({verdict}; p = {interval.p_value:.4f})"
        )
    result.findings.extend(findings)
    for seed, b, c in zip(seeds, b_values, c_values, strict=True):
        result.per_seed.add(seed=seed, baseline=b, candidate=c)
    return result


def compare(
    metric: str,
    baseline: Mapping[int, RunResult],
    candidate: Mapping[int, RunResult],
    *,
    maximize: bool | None = None,
    rng_seed: int = 0,
    family_size: int = 1,
    look: int = 1,
) -> loop_pb2.Comparison:
    """The candidate against the baseline (and against chance) on the seeds both ran, judged as one
    comparison of a planned family of `family_size` at this look (the manager judges the whole family
    again with the comparisons made so far)."""
    if maximize is None:
        maximize = domain.maximize(metric)
    sign = 1.0 if maximize else -1.0
    seeds = sorted(set(baseline) & set(candidate))
    cand = [candidate[s] for s in seeds]
    confidence = verdicts.bootstrap_confidence(family_size, look)
    result = _compare(metric, [baseline[s] for s in seeds], cand, seeds, sign, rng_seed, confidence)
    result.look = look
    chance = chance_runs(metric, {s: candidate[s] for s in seeds})
    if chance is None:
        result.findings.append(f"no chance model for {metric} on these runs: not compared with chance")
    else:
        against = _compare(metric, [chance[s] for s in seeds], cand, seeds, sign, rng_seed, confidence)
        result.chance.CopyFrom(against)
        result.findings.append(
            f"against chance ({CHANCE_MODELS[metric]}: {against.baseline_mean:.4f}): gain "
            f"{against.gain:+.4f}; " + "; ".join(against.findings)
        )
    verdicts.judge([result], family_size)
    result.findings.append(verdicts.explain(result))
    return result


def bootstrap_interval(comparison: loop_pb2.Comparison) -> tuple[float, float] | None:
    if comparison.HasField("bootstrap_low") and comparison.HasField("bootstrap_high"):
        return comparison.bootstrap_low, comparison.bootstrap_high
    return None
