"""A research's verdict under many comparisons: one family-wise rule, applied by the manager as the loop
goes and by the reviewer's report, so that a goal no model can win is (almost) never claimed won.

A research compares several candidates with the baseline (the portfolio's families, the LLM's ideas,
exploit and improve steps) and its verdict claims the best of them. Each judged alone at 5%, one research
in twenty on shuffled labels claimed a win. The rule:

- **One p per comparison** (`combined_p`): the largest of its tests' p-values: the paired t-test over the
  seeds and the paired bootstrap over test examples, against the baseline and against a chance model.
  A claim needs every test to pass, so their largest p is a valid p for the claim (an intersection-union
  test: requiring all of them costs no adjustment). Three gates have no p: a positive mean gain, a gain
  larger than the seed-to-seed noise, and at least 2 seeds; a failed gate makes the p 1.
- **A planned family** (`family_size`): the most comparisons the research's budget allows, fixed by the
  plan before any result. Holm's step-down adjusts the p-values over it, counting comparisons not made
  (yet) at p = 1. Its first step, the claim a verdict makes, is Bonferroni over the planned family, which
  holds however the research stops; Holm over the comparisons made so far would not (stopping at the first
  win raises its error to alpha * (1 + 1/2 + ... + 1/k) after k comparisons).
- **Two looks, spending alpha = 0.05 as 0.01 + 0.04** (`level`): a claim on the plan's seeds needs an
  adjusted p below 0.01. A borderline candidate (adjusted p from 0.01 to 0.05) gets up to `EXTRA_SEEDS`
  more seeds, with the baseline, and its second look needs an adjusted p below 0.04. A false claim needs
  a first look below 0.01 or a second below 0.04: at most 0.01 + 0.04 = 0.05 per research, whatever the
  look finds (the union bound; the second look is only taken after a borderline first). Borderline with
  no budget left for the seeds: "suggestive, not significant" (`suggestive`), never a claim.
"""

from __future__ import annotations

from collections.abc import Sequence

from airlab.v1 import loop_pb2

ALPHA = 0.05
FIRST_LOOK_LEVEL = 0.01
SECOND_LOOK_LEVEL = ALPHA - FIRST_LOOK_LEVEL
# Seeds a borderline first look adds, to the candidate and the baseline.
EXTRA_SEEDS = 2


def family_size(max_experiments: int, seeds: int) -> int:
    """The most comparisons a budget allows: after the baseline's run on every seed, each comparison needs
    the candidate's runs on every seed (its best search trial is one of them)."""
    seeds = max(seeds, 1)
    return max(1, (max_experiments - seeds) // seeds)


def level(look: int) -> float:
    """The adjusted p a claim must be under at this look (0 or 1: the first)."""
    return FIRST_LOOK_LEVEL if look <= 1 else SECOND_LOOK_LEVEL


def bootstrap_confidence(family: int, look: int) -> float:
    """The bootstrap interval's level for a comparison of this family and look: the interval lies above
    zero exactly when the bootstrap's p is below the Bonferroni level (its first Holm step)."""
    return 1.0 - level(look) / max(family, 1)


def gates(comparison: loop_pb2.Comparison) -> list[str]:
    """What keeps a comparison from any claim, whatever its p-values (empty when nothing does)."""
    failed = []
    if len(comparison.seeds) < 2:
        failed.append(f"only {len(comparison.seeds)} seed(s)")
    if not comparison.gain > 0:
        failed.append("no gain")
    elif not comparison.clears_noise:
        failed.append("a gain inside the seeds' noise")
    return failed


def _own_p(comparison: loop_pb2.Comparison) -> float:
    """The largest p of the comparison's own tests (1 when a gate fails)."""
    if gates(comparison):
        return 1.0
    # No t statistic with 2+ seeds means the gains did not vary at all: every seed gained the same.
    p_values = [comparison.p_value if comparison.HasField("p_value") else 0.0]
    if comparison.HasField("bootstrap_p"):
        p_values.append(comparison.bootstrap_p)
    return max(p_values)


def combined_p(comparison: loop_pb2.Comparison) -> float:
    """The comparison's p: its own tests' and, when it was compared with chance, that comparison's."""
    p = _own_p(comparison)
    if comparison.HasField("chance"):
        p = max(p, _own_p(comparison.chance))
    return min(1.0, p)


def holm(p_values: Sequence[float], family: int) -> list[float]:
    """Holm's adjusted p-values, in the input's order, over a family of `family` hypotheses of which these
    are the ones tested so far (the rest count as p = 1, which changes none of these)."""
    m = max(family, len(p_values))
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def judge(comparisons: Sequence[loop_pb2.Comparison], family: int) -> None:
    """Set every comparison's combined and adjusted p, level and significance, over the family."""
    for comparison in comparisons:
        comparison.combined_p = combined_p(comparison)
        comparison.family_size = max(family, len(comparisons))
        comparison.look = max(comparison.look, 1)
        comparison.level = level(comparison.look)
    adjusted = holm([c.combined_p for c in comparisons], family)
    for comparison, p in zip(comparisons, adjusted, strict=True):
        comparison.adjusted_p = p
        comparison.significant = p < comparison.level
        if comparison.significant:
            comparison.suggestive = False


def borderline(comparison: loop_pb2.Comparison) -> bool:
    """A first look that is not a claim but would have been one at 5%: more seeds may decide it."""
    return (
        comparison.look <= 1
        and not comparison.significant
        and comparison.HasField("adjusted_p")
        and comparison.adjusted_p < ALPHA
    )


def explain(comparison: loop_pb2.Comparison) -> str:
    """The family-wise verdict in one sentence, for the report and the findings."""
    if not comparison.HasField("adjusted_p"):
        return "not judged as part of a family"
    look = "first look (the plan's seeds)" if comparison.look <= 1 else "second look (with more seeds)"
    blocked = gates(comparison)
    if comparison.HasField("chance") and not blocked:
        blocked = [f"against chance: {g}" for g in gates(comparison.chance)]
    why = f" ({'; '.join(blocked)})" if blocked else ""
    outcome = (
        "significant"
        if comparison.significant
        else "suggestive, not significant (no budget left for more seeds)"
        if comparison.suggestive
        else "not significant"
    )
    return (
        f"p = {comparison.combined_p:.4f} raw{why}, {comparison.adjusted_p:.4f} adjusted (Holm over a "
        f"planned family of {comparison.family_size} comparisons); {look} level {comparison.level:g}: "
        f"{outcome}"
    )
