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
from collections.abc import Mapping, Sequence

import numpy as np

from airlab import domain, verdicts
from airlab.results import RunResult
from airlab.v1 import loop_pb2

from .bootstrap import metric_value, paired_bootstrap


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
    interval = paired_bootstrap(metric, sign, base, cand, rng_seed, confidence) if n else None
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
