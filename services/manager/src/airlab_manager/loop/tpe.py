"""Hyperparameter search inside an idea: an Optuna TPE study rebuilt from the trials stored in the
research's state at each step, so a restarted manager asks for the same next point."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import optuna

from airlab.v1 import idea_pb2

optuna.logging.set_verbosity(logging.WARNING)


def distributions(space: Mapping[str, idea_pb2.Range]) -> dict[str, optuna.distributions.BaseDistribution]:
    found: dict[str, optuna.distributions.BaseDistribution] = {}
    for name, r in space.items():
        low, high, log = r.low, r.high, r.log_scale
        if r.integer:
            start = round(low)
            found[name] = optuna.distributions.IntDistribution(
                start, max(round(high), start + 1), log=log and low >= 1
            )
        else:
            found[name] = optuna.distributions.FloatDistribution(low, high, log=log)
    return found


def next_params(
    space: Mapping[str, idea_pb2.Range],
    done: Sequence[tuple[Mapping[str, Any], float | None]],
    *,
    maximize: bool,
    seed: int,
    pending: Sequence[Mapping[str, Any]] = (),
    startup_trials: int = 2,
) -> dict[str, Any]:
    """The next point to try given the finished trials (params, validation score or None if it failed)
    and the points still running (`pending`, for parallel trials). The first points come from TPE's random
    start-up; a failed trial counts as the worst. A running point is told to TPE as if it had scored the
    worst value seen so far (a constant liar), so parallel trials spread out instead of piling on one
    promising point."""
    dists = distributions(space)
    if not dists:
        return {}
    study = optuna.create_study(
        direction="maximize" if maximize else "minimize",
        # The study is rebuilt at every step: vary the sampler's seed with the step so its random
        # start-up does not draw the same point again.
        sampler=optuna.samplers.TPESampler(
            seed=seed + 7919 * (len(done) + len(pending)), n_startup_trials=startup_trials
        ),
    )
    scores = [float(value) for _, value in done if value is not None]
    lie = (min(scores) if maximize else max(scores)) if scores else None
    for params, value in [*done, *((p, lie) for p in pending)]:
        if any(name not in params for name in dists):
            continue
        kept = {name: params[name] for name in dists}
        if value is None:
            trial = optuna.trial.create_trial(
                params=kept, distributions=dists, state=optuna.trial.TrialState.FAIL
            )
        else:
            trial = optuna.trial.create_trial(params=kept, distributions=dists, value=float(value))
        study.add_trial(trial)
    return dict(study.ask(dists).params)
