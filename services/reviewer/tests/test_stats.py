"""The reviewer's significance rule on made-up runs: a clear gain is called, noise is not, one seed is
never enough, and the direction of the metric is respected."""

import numpy as np
import pytest

from airlab.results import RunResult
from airlab_reviewer.bootstrap import metric_value
from airlab_reviewer.stats import compare


def runs(metric: str, values: list[float], predictions=None, targets=None) -> dict[int, RunResult]:
    return {
        seed: RunResult(
            seed=seed,
            metrics={metric: value},
            duration_seconds=1.0,
            test_targets=targets,
            test_predictions=None if predictions is None else predictions[seed],
        )
        for seed, value in enumerate(values)
    }


def test_a_clear_gain_is_significant():
    result = compare("accuracy", runs("accuracy", [0.90, 0.91, 0.905]), runs("accuracy", [0.96, 0.97, 0.965]))
    assert result.significant and result.gain > 0.05
    assert any("t-test" in f for f in result.findings)


def test_a_gain_inside_the_noise_is_not_significant():
    result = compare("accuracy", runs("accuracy", [0.90, 0.95, 0.92]), runs("accuracy", [0.93, 0.92, 0.94]))
    assert not result.significant
    assert any("does not clear" in f for f in result.findings)


def test_one_seed_is_never_enough():
    result = compare("accuracy", runs("accuracy", [0.5]), runs("accuracy", [0.99]))
    assert not result.significant and "only 1 seed" in result.findings[0]


def test_lower_is_better_for_rmse():
    worse = compare("rmse", runs("rmse", [50.0, 51.0, 50.5]), runs("rmse", [60.0, 61.0, 60.5]))
    better = compare("rmse", runs("rmse", [60.0, 61.0, 60.5]), runs("rmse", [50.0, 51.0, 50.5]))
    assert worse.gain < 0 and not worse.significant
    assert better.gain > 0 and better.significant


def test_the_bootstrap_over_test_examples_can_veto_a_consistent_tiny_gain():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 2, 40)
    base = {s: targets.copy() for s in range(3)}
    for s in base:
        base[s][:8] = 1 - base[s][:8]  # 8 of 40 wrong
    cand = {s: base[s].copy() for s in range(3)}
    for s in cand:
        cand[s][0] = targets[0]  # one more right: 0.825 against 0.8 on every seed
    b_acc = [metric_value("accuracy", targets, base[s]) for s in range(3)]
    c_acc = [metric_value("accuracy", targets, cand[s]) for s in range(3)]
    result = compare(
        "accuracy",
        runs("accuracy", b_acc, {s: base[s].tolist() for s in base}, targets.tolist()),
        runs("accuracy", c_acc, {s: cand[s].tolist() for s in cand}, targets.tolist()),
    )
    # Same gain on every seed (no seed noise at all), but one test example is not evidence.
    assert result.gain > 0 and result.HasField("bootstrap_low")
    assert result.bootstrap_low <= 0 and not result.significant


def test_metrics_match_scikit_learn():
    from sklearn.metrics import f1_score, roc_auc_score

    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 200)
    scores = rng.random((200, 3))
    scores /= scores.sum(axis=1, keepdims=True)
    assert abs(metric_value("roc_auc", y, scores) - roc_auc_score(y, scores, multi_class="ovr")) < 1e-9
    binary = rng.integers(0, 2, 200)
    assert abs(metric_value("roc_auc", binary, scores[:, 0]) - roc_auc_score(binary, scores[:, 0])) < 1e-9
    predicted = rng.integers(0, 3, 200)
    assert abs(metric_value("f1_macro", y, predicted) - f1_score(y, predicted, average="macro")) < 1e-9


def test_segmentation_bootstraps_over_each_images_dice():
    """A segmentation run reports each test image's Dice under its index: the metric is their mean, and
    the bootstrap resamples images."""
    rng = np.random.default_rng(0)
    images = list(range(60))
    base_scores = [np.clip(rng.normal(0.6, 0.1, 60), 0, 1) for _ in range(3)]
    better_scores = [np.clip(s + 0.08 + rng.normal(0, 0.01, 60), 0, 1) for s in base_scores]
    same_scores = [np.clip(s + rng.normal(0, 0.01, 60), 0, 1) for s in base_scores]

    def per_image(scores):
        values = [float(s.mean()) for s in scores]
        return runs("dice", values, predictions=[s.tolist() for s in scores], targets=images)

    assert metric_value("dice", np.array(images), base_scores[0]) == float(base_scores[0].mean())
    better = compare("dice", per_image(base_scores), per_image(better_scores))
    assert better.significant and better.bootstrap_low > 0.05
    assert "99% bootstrap interval of the gain over test examples" in " ".join(better.findings)
    same = compare("dice", per_image(base_scores), per_image(same_scores))
    assert not same.significant and same.bootstrap_low < 0 < same.bootstrap_high


def test_the_vectorized_bootstrap_gives_the_intervals_of_one_scikit_learn_call_per_resample():
    """Every metric is bootstrapped over whole arrays of resamples with numpy (a mean of per-example
    values, or R², macro F1 and ROC AUC from their counts and ranks); the intervals and p must equal those
    of scoring every resample with scikit-learn."""
    from airlab_reviewer.bootstrap import _interval, paired_bootstrap

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 300)
    values = rng.normal(size=300)
    cases = {
        "accuracy": (labels, lambda p: np.where(rng.random(300) < p, labels, (labels + 1) % 3)),
        "rmse": (values, lambda p: values + rng.normal(scale=1.2 - p, size=300)),
        "mae": (values, lambda p: values + rng.normal(scale=1.2 - p, size=300)),
        "dice": (np.zeros(300), lambda p: np.clip(rng.normal(p, 0.1, 300), 0, 1)),
        "r2": (values, lambda p: values + rng.normal(scale=1.2 - p, size=300)),
        "f1_macro": (labels, lambda p: np.where(rng.random(300) < p, labels, rng.integers(0, 4, 300))),
        "roc_auc": (labels % 2, lambda p: np.clip((labels % 2) * p + rng.random(300) * (1 - p), 0, 1)),
        # Scores with many ties (a tree's leaf probabilities): ties count half, as scikit-learn counts them.
        "roc_auc (tied scores)": (
            labels % 2,
            lambda p: np.round(np.clip((labels % 2) * p + rng.random(300) * (1 - p), 0, 1), 1),
        ),
        "roc_auc (3 classes)": (
            labels,
            lambda p: (lambda s: s / s.sum(axis=1, keepdims=True))(
                np.eye(3)[labels] * p + rng.random((300, 3))
            ),
        ),
    }
    for case, (truth, predict) in cases.items():
        metric = case.split(" ")[0]
        base, cand = [predict(0.7) for _ in range(3)], [predict(0.8) for _ in range(3)]

        def scored(predictions, truth=truth, metric=metric):
            return [
                RunResult(
                    seed=s, metrics={metric: 0.5}, duration_seconds=1.0, test_targets=truth.tolist(),
                    test_predictions=p.tolist(),
                )
                for s, p in enumerate(predictions)
            ]  # fmt: skip

        def gain(index, base=base, cand=cand, truth=truth, metric=metric):
            return float(np.mean([
                metric_value(metric, truth[index], c[index]) - metric_value(metric, truth[index], b[index])
                for b, c in zip(base, cand, strict=True)
            ]))  # fmt: skip

        fast = paired_bootstrap(metric, 1.0, scored(base), scored(cand), 11, resamples=200)
        slow = _interval(gain, 300, 11, vectorized=False, resamples=200)
        assert fast is not None and slow is not None
        assert np.allclose([fast.low, fast.high, fast.p_value], [slow.low, slow.high, slow.p_value]), case


def shuffled_label_runs(
    correct: list[int], rng: np.random.Generator, targets: np.ndarray
) -> dict[int, RunResult]:
    """Runs on 10 balanced classes whose predictions hit exactly `correct[seed]` test examples."""
    found = {}
    for seed, hits in enumerate(correct):
        predicted = (targets + rng.integers(1, 10, len(targets))) % 10  # every one wrong
        right = rng.choice(len(targets), hits, replace=False)
        predicted[right] = targets[right]
        found[seed] = RunResult(
            seed=seed, metrics={"accuracy": hits / len(targets)}, duration_seconds=1.0,
            test_targets=targets.tolist(), test_predictions=predicted.tolist(),
        )  # fmt: skip
    return found


def test_a_gain_over_a_baseline_below_chance_is_not_a_win_over_chance():
    """The null research the old rule claimed: on shuffled labels the baseline scored 0.091 and a
    candidate 0.1185 (t = 3.9, p = 0.03). Chance (the most frequent class) is 0.10 here: the candidate is
    not significantly above it, so there is no claim even as a family of one."""
    rng = np.random.default_rng(5)
    targets = np.repeat(np.arange(10), 45)
    baseline = shuffled_label_runs([40, 41, 42], rng, targets)
    candidate = shuffled_label_runs([52, 55, 53], rng, targets)
    result = compare("accuracy", baseline, candidate)
    assert result.gain > 0.02 and result.clears_noise and result.p_value < 0.05
    assert result.chance.baseline_mean == pytest.approx(0.1)
    assert result.chance.bootstrap_p > 0.05 and result.combined_p > 0.05
    assert not result.significant
    assert any("against chance (the most frequent class: 0.1000)" in f for f in result.findings)


def test_chance_models_per_metric():
    from airlab_reviewer.stats import chance_runs

    labels = [0, 0, 0, 1] * 25
    runs_ = {0: RunResult(seed=0, metrics={"accuracy": 0.9}, duration_seconds=1.0, test_targets=labels,
                          test_predictions=labels)}  # fmt: skip
    assert chance_runs("accuracy", runs_)[0].metrics["accuracy"] == pytest.approx(0.75)
    f1 = chance_runs("f1_macro", runs_)[0].metrics["f1_macro"]
    assert 0.3 < f1 < 0.7  # about 1/K for a stratified guess
    values = [1.0, 2.0, 3.0, 10.0]
    reg = {0: RunResult(seed=0, metrics={"mae": 1.0}, duration_seconds=1.0, test_targets=values,
                        test_predictions=values)}  # fmt: skip
    assert chance_runs("mae", reg)[0].test_predictions == [2.5] * 4  # the median
    assert chance_runs("rmse", reg)[0].test_predictions == [4.0] * 4  # the mean
    assert chance_runs("dice", reg) is None
    assert (
        chance_runs("accuracy", {0: RunResult(seed=0, metrics={"accuracy": 1.0}, duration_seconds=1.0)})
        is None
    )
