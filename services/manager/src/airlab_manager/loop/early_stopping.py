"""Early stopping of search trials, the loop's multi-fidelity: a trial that trains in epochs is told, at
a third and at two thirds of its epochs, the median validation score the research's finished runs had at
that epoch; behind it, the trial ends there and reports the score it reached (the median stopping rule).
Only runs planned for at least as many epochs set the bar: the learning rate anneals over a run's planned
epochs, so a shorter run's last epochs would be compared with a longer one's middle ones.
A trial that is going nowhere costs a fraction of its epochs; TPE is told the score it stopped at, and
only trials that trained for all their epochs are evaluated over the seeds."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

CHECKPOINTS = (1 / 3, 2 / 3)
# Fewer finished runs at an epoch than this, and the median says too little to stop anything there.
MIN_CURVES = 3
# The most of a run's curve the loop keeps: its state holds every run's, and a job may report any length.
MAX_STORED_EPOCHS = 200


@dataclass(frozen=True)
class Curve:
    """A finished run's validation score after each epoch it trained, and the epochs it was planned for
    (more than it trained when it was stopped early)."""

    scores: Sequence[float]
    planned_epochs: int


def stop_below(curves: Sequence[Curve], epochs: int, *, min_curves: int = MIN_CURVES) -> dict[int, float]:
    """{epoch: median validation score there} for a trial of `epochs` epochs, from the curves of the
    research's finished runs planned for at least as many; empty when no checkpoint has enough runs."""
    rule: dict[int, float] = {}
    comparable = [curve.scores for curve in curves if curve.planned_epochs >= epochs]
    for fraction in CHECKPOINTS:
        epoch = max(2, round(fraction * epochs))
        if epoch >= epochs or epoch in rule:
            continue
        reached = [scores[epoch - 1] for scores in comparable if len(scores) >= epoch]
        if len(reached) >= min_curves:
            rule[epoch] = statistics.median(reached)
    return rule
