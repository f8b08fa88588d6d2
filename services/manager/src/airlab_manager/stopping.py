"""Early stopping of search trials, the loop's multi-fidelity: a trial that trains in epochs is told, at
a third and at two thirds of its epochs, the median validation score the research's finished runs had at
that epoch; behind it, the trial ends there and reports the score it reached (the median stopping rule).
A trial that is going nowhere costs a fraction of its epochs; TPE is told the score it stopped at, and
only trials that trained for all their epochs are evaluated over the seeds."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

CHECKPOINTS = (1 / 3, 2 / 3)
# Fewer finished runs at an epoch than this, and the median says too little to stop anything there.
MIN_CURVES = 3


def stop_below(
    curves: Sequence[Sequence[float]], epochs: int, *, min_curves: int = MIN_CURVES
) -> dict[int, float]:
    """{epoch: median validation score there} for a trial of `epochs` epochs, from the validation curves
    (score after each epoch) of the research's finished runs; empty when no checkpoint has enough runs."""
    rule: dict[int, float] = {}
    for fraction in CHECKPOINTS:
        epoch = max(2, round(fraction * epochs))
        if epoch >= epochs or epoch in rule:
            continue
        reached = [curve[epoch - 1] for curve in curves if len(curve) >= epoch]
        if len(reached) >= min_curves:
            rule[epoch] = statistics.median(reached)
    return rule
