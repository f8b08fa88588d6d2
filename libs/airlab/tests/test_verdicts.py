"""The family-wise verdict rule on made-up comparisons: Holm's adjustment, the gates, the chance check,
the two looks, and the rule's false-claim rate on null p-values."""

import numpy as np
import pytest

from airlab import verdicts
from airlab.v1 import loop_pb2


def comparison(
    p: float, *, gain: float = 0.05, seeds: int = 3, look: int = 1, **fields
) -> loop_pb2.Comparison:
    return loop_pb2.Comparison(
        **({"gain": gain, "seeds": range(seeds), "clears_noise": True, "p_value": p, "look": look} | fields)
    )


def test_holm_adjusts_over_the_planned_family_counting_comparisons_not_made():
    # Made so far: 0.01, 0.04, 0.03 of a family of 5; Holm multiplies the smallest by 5, the next by 4...
    assert verdicts.holm([0.01, 0.04, 0.03], 5) == pytest.approx([0.05, 0.12, 0.12])
    # A family smaller than what was compared grows to it.
    assert verdicts.holm([0.01, 0.02], 1) == pytest.approx([0.02, 0.02])
    assert verdicts.holm([0.5, 0.6], 4) == pytest.approx([1.0, 1.0])


def test_the_planned_family_is_the_most_comparisons_a_budget_allows():
    assert verdicts.family_size(16, 3) == 4  # 3 baseline runs, then 3 runs a comparison
    assert verdicts.family_size(30, 3) == 9
    assert verdicts.family_size(3, 3) == 1 and verdicts.family_size(0, 0) == 1


def test_gates_make_the_p_one():
    assert verdicts.combined_p(comparison(0.001, gain=-0.01)) == 1.0
    assert verdicts.combined_p(comparison(0.001, seeds=1)) == 1.0
    assert verdicts.combined_p(comparison(0.001, clears_noise=False)) == 1.0
    # No t-test with 2+ seeds: every seed gained the same; the bootstrap decides.
    same_gain = loop_pb2.Comparison(gain=0.02, seeds=[0, 1, 2], clears_noise=True, bootstrap_p=0.03)
    assert verdicts.combined_p(same_gain) == pytest.approx(0.03)


def test_the_claim_needs_every_test_to_pass_the_bootstrap_and_chance_included():
    strong = comparison(0.0001, bootstrap_p=0.0002)
    assert verdicts.combined_p(strong) == pytest.approx(0.0002)
    strong.chance.CopyFrom(comparison(0.2, bootstrap_p=0.3))  # barely above chance
    assert verdicts.combined_p(strong) == pytest.approx(0.3)
    strong.chance.CopyFrom(comparison(0.001, gain=-0.01))  # below chance: no claim at all
    assert verdicts.combined_p(strong) == 1.0
    verdicts.judge([strong], 1)
    assert not strong.significant and "against chance: no gain" in verdicts.explain(strong)


def test_two_looks_spend_one_and_four_hundredths():
    first = comparison(0.003)
    verdicts.judge([first], 3)  # adjusted 0.009 < 0.01
    assert first.significant and first.level == pytest.approx(0.01)
    borderline = comparison(0.006)
    verdicts.judge([borderline], 3)  # 0.018: between 0.01 and 0.05
    assert not borderline.significant and verdicts.borderline(borderline)
    second = comparison(0.012, look=2)
    verdicts.judge([second], 3)  # 0.036 < 0.04 at the second look
    assert second.significant and not verdicts.borderline(second)
    assert "second look" in verdicts.explain(second)
    late = comparison(0.014, look=2)
    verdicts.judge([late], 3)  # 0.042: no third look
    assert not late.significant and not verdicts.borderline(late)


def test_judging_the_family_again_never_takes_a_claim_back():
    family = [comparison(0.002), comparison(0.3)]
    verdicts.judge(family, 4)
    assert family[0].significant and family[0].adjusted_p == pytest.approx(0.008)
    family.append(comparison(0.001))
    verdicts.judge(family, 4)
    assert family[0].significant and family[2].significant
    assert family[0].adjusted_p == pytest.approx(0.006)  # now the second smallest of 4: times 3


def test_the_rule_claims_a_false_win_in_at_most_five_percent_of_null_researches():
    """Null researches with the planned family's comparisons (independent uniform p-values), a borderline
    first look given a second (its p drawn again): the rule's false claims stay under 5%, while judging
    each comparison alone at 5% claims far more."""
    rng = np.random.default_rng(7)
    researches, family = 20_000, 4
    ruled = alone = 0
    for _ in range(researches):
        comparisons = [comparison(float(p)) for p in rng.uniform(size=family)]
        alone += any(c.p_value < 0.05 for c in comparisons)
        verdicts.judge(comparisons, family)
        for c in comparisons:
            if verdicts.borderline(c):
                c.look, c.p_value = 2, float(rng.uniform())
        verdicts.judge(comparisons, family)
        ruled += any(c.significant for c in comparisons)
    assert ruled / researches < 0.05
    assert alone / researches > 0.15
