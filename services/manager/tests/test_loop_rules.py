"""The manager's review and decision rules, and the search inside an idea, on plain data."""

import pytest

from airlab.settings import ResearchDefaults
from airlab.v1 import idea_pb2, loop_pb2, manager_pb2, research_pb2
from airlab_manager.loop import continuation, early_stopping, tpe
from airlab_manager.loop.idea_review import Novelty, review_idea

IDEA = idea_pb2.Idea(
    id="i" + "4" * 26,
    title="Support vector machine with an RBF kernel",
    change="replace the logistic regression with an SVC",
    expected_effect="+1% accuracy",
    search_space={"C": idea_pb2.Range(low=0.1, high=100, log_scale=True)},
)
Loop = loop_pb2.ResearchLoop


def review(**overrides):
    arguments = dict(
        task="classification",
        metric="accuracy",
        experiments_left=9,
        experiments_per_idea=3,
        tried_titles=[],
        novelty=Novelty(similarity=0.4),
    )
    arguments.update(overrides)
    return review_idea(IDEA, **arguments)


def test_a_clear_new_feasible_idea_is_approved():
    verdict = review()
    assert verdict.approved and verdict.novelty > 0.5 and verdict.feasibility == 1.0


def test_duplicates_are_rejected_with_the_reason():
    remembered = review(novelty=Novelty(duplicate_of="SVM with RBF kernel", similarity=0.96))
    assert not remembered.approved and "near-duplicate" in remembered.reasons[0]
    here = review(tried_titles=["support vector machine with an rbf-kernel"])
    assert not here.approved and "already tried" in here.reasons[0]


def test_a_feature_idea_remembered_from_earlier_research_runs_again_said_so():
    feature = idea_pb2.Idea(
        id="i" + "5" * 26,
        title="Debt to income ratio",
        change="add debt / income before gradient boosting",
        expected_effect="a higher ROC AUC",
        steps=[idea_pb2.FeatureStep(technique=idea_pb2.TECHNIQUE_RATIO, columns=["debt", "income"])],
    )
    remembered = Novelty(duplicate_of="Debt to income ratio", similarity=1.0)
    arguments = dict(task="classification", metric="roc_auc", experiments_left=9, experiments_per_idea=3)
    verdict = review_idea(feature, tried_titles=[], novelty=remembered, **arguments)
    assert verdict.approved and "known from earlier research" in verdict.reasons[1]
    assert verdict.reasons[0] == "clear, fits the budget and the metric"  # not called new
    again = review_idea(feature, tried_titles=["Debt to income ratio"], novelty=remembered, **arguments)
    assert not again.approved and "already tried in this research" in again.reasons[0]


def test_an_idea_from_the_literature_is_approved_cited_and_never_called_new():
    cited = idea_pb2.Idea()
    cited.CopyFrom(IDEA)
    cited.cites.append(2)
    related = [
        idea_pb2.Paper(title="Random Forests", year=2001),
        idea_pb2.Paper(title="Support-vector networks", year=1995),
    ]
    arguments = dict(task="classification", metric="accuracy", experiments_left=9, experiments_per_idea=3)
    novelty = Novelty(similarity=0.4)
    verdict = review_idea(cited, tried_titles=[], novelty=novelty, related=related, **arguments)
    assert verdict.approved
    assert verdict.literature == "from the literature: [2] Support-vector networks (1995)"
    first = verdict.reasons[0]
    assert first.startswith("clear, from the literature: [2]") and "new" not in first
    assert review().reasons[0].startswith("clear, new,")  # the same idea, citing nothing


def test_an_idea_the_budget_cannot_afford_is_rejected():
    verdict = review(experiments_left=2)
    assert not verdict.approved and "2 are left" in verdict.reasons[0]


def test_a_regressor_for_a_classification_metric_is_misaligned():
    idea = idea_pb2.Idea(title="Gradient boosting regressor", change="fit a GradientBoostingRegressor")
    idea.MergeFrom(IDEA)
    idea.title, idea.change = "Gradient boosting regressor", "fit a GradientBoostingRegressor"
    verdict = review_idea(idea, task="classification", metric="accuracy", experiments_left=9,
                          experiments_per_idea=3, tried_titles=[], novelty=Novelty())  # fmt: skip
    assert not verdict.approved and verdict.alignment < 0.5


def plan(max_experiments=12, seeds=(0, 1, 2)):
    return research_pb2.Plan(seeds=seeds, budget=research_pb2.Budget(max_experiments=max_experiments,
                                                                      max_wall_seconds=3600))  # fmt: skip


def test_decisions():
    rules = ResearchDefaults()
    spend = continuation.Spend(experiments=3, seconds=10, tokens=0, cost_usd=0)
    kind, reason = continuation.decide(Loop(), plan(), spend, rules)
    assert kind == manager_pb2.DECISION_KIND_CONTINUE
    kind, reason = continuation.decide(Loop(), plan(), continuation.Spend(10, 10, 0, 0), rules)
    assert kind == manager_pb2.DECISION_KIND_STOP and "budget spent: 10 of 12" in reason
    kind, reason = continuation.decide(Loop(), plan(), continuation.Spend(3, 4000, 0, 0), rules)
    assert kind == manager_pb2.DECISION_KIND_STOP and "wall-clock" in reason
    best = Loop(best=loop_pb2.BestIdea(significant=True, title="SVM", mean=0.98),
                baseline=loop_pb2.BaselineResult(mean=0.96))  # fmt: skip
    kind, reason = continuation.decide(best, plan(), spend, rules)
    assert kind == manager_pb2.DECISION_KIND_STOP and reason.startswith("goal met")
    kind, reason = continuation.decide(Loop(rounds_without_progress=2), plan(), spend, rules)
    assert kind == manager_pb2.DECISION_KIND_STOP and "no progress in 2 rounds" in reason
    kind, _ = continuation.decide(Loop(consecutive_failures=3), plan(), spend, rules)
    assert kind == manager_pb2.DECISION_KIND_ASK_HUMAN
    kind, _ = continuation.decide(Loop(consecutive_failures=3, escalated=True), plan(), spend, rules)
    assert kind == manager_pb2.DECISION_KIND_CONTINUE
    # With human gates off nobody is asked: the no-progress rule ends a research whose ideas keep failing.
    kind, _ = continuation.decide(Loop(consecutive_failures=3), plan(), spend, rules, ask_people=False)
    assert kind == manager_pb2.DECISION_KIND_CONTINUE


def test_no_progress_stops_a_beat_goal_at_most_of_its_budget_and_a_budget_goal_at_its_end():
    rules = ResearchDefaults()
    stale = Loop(rounds_without_progress=2)
    for until, used, kind, said in (
        (research_pb2.STOP_RULE_BEAT_BASELINE, 12, manager_pb2.DECISION_KIND_CONTINUE, "more search"),
        (research_pb2.STOP_RULE_BEAT_BASELINE, 24, manager_pb2.DECISION_KIND_STOP, "80% of the experiments"),
        (research_pb2.STOP_RULE_USE_BUDGET, 24, manager_pb2.DECISION_KIND_CONTINUE, "(6 experiments left)"),
        (research_pb2.STOP_RULE_USE_BUDGET, 28, manager_pb2.DECISION_KIND_STOP, "budget spent: 28 of 30"),
    ):
        goal = plan(30)
        goal.until = until
        spend = continuation.Spend(used, 10, 0, 0)
        decided, reason = continuation.decide(stale, goal, spend, rules, can_exploit=True)
        assert decided == kind and said in reason, (until, used, reason)
    # Nothing to search further: no progress stops either goal.
    goal.until = research_pb2.STOP_RULE_USE_BUDGET
    decided, reason = continuation.decide(stale, goal, continuation.Spend(12, 10, 0, 0), rules)
    assert decided == manager_pb2.DECISION_KIND_STOP and "nothing to search further" in reason


def test_the_search_is_repeatable_and_stays_in_its_ranges():
    space = {
        "C": idea_pb2.Range(low=0.1, high=100, log_scale=True),
        "depth": idea_pb2.Range(low=2, high=9, integer=True),
    }
    done = []
    for step in range(6):
        params = tpe.next_params(space, done, maximize=True, seed=0)
        assert params == tpe.next_params(space, done, maximize=True, seed=0)
        assert 0.1 <= params["C"] <= 100 and 2 <= params["depth"] <= 9 and isinstance(params["depth"], int)
        done.append((params, None if step == 2 else -abs(params["C"] - 10)))
    assert len({round(p["C"], 6) for p, _ in done}) == len(done)
    assert tpe.next_params({}, [], maximize=True, seed=0) == {}


def test_parallel_trials_are_told_apart_by_a_constant_liar():
    space = {"C": idea_pb2.Range(low=0.1, high=100, log_scale=True)}
    done = [({"C": 1.0}, 0.9), ({"C": 50.0}, 0.7)]
    running = tpe.next_params(space, done, maximize=True, seed=0)
    beside = tpe.next_params(space, done, pending=[running], maximize=True, seed=0)
    # Repeatable (a restarted manager asks for the same point), and not the point already running.
    assert beside == tpe.next_params(space, done, pending=[running], maximize=True, seed=0)
    assert beside != running and 0.1 <= beside["C"] <= 100
    # Before any trial has a score, running points are still counted (a fresh random start-up draw).
    first = tpe.next_params(space, [], pending=[{"C": 3.0}], maximize=False, seed=0)
    assert first != {"C": 3.0}


def test_an_idea_that_repeats_the_prompts_example_is_rejected():
    copied = idea_pb2.Idea(
        title="Polynomial interaction features",
        change="add degree-2 polynomial features before a regularized linear model",
        expected_effect="a higher score",
    )
    verdict = review_idea(copied, task="classification", metric="accuracy", experiments_left=9,
                          experiments_per_idea=3, tried_titles=[], novelty=Novelty())  # fmt: skip
    assert not verdict.approved and "prompt's example" in verdict.reasons[0]


def test_the_stop_rule_needs_three_runs_at_a_checkpoint_and_skips_checkpoints_at_the_last_epoch():
    curves = [
        early_stopping.Curve([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], 6),
        early_stopping.Curve([0.2, 0.4, 0.6, 0.8], 8),  # stopped early after 4 of its 8 epochs
        early_stopping.Curve([0.0, 0.1], 6),
    ]
    # 6 epochs: checkpoints after epochs 2 and 4; only epoch 2 has three curves (median of 0.2, 0.4, 0.1).
    assert early_stopping.stop_below(curves, 6) == {2: 0.2}
    assert early_stopping.stop_below(curves, 6, min_curves=2) == {2: 0.2, 4: pytest.approx(0.6)}
    # 3 epochs: a third is epoch 1, moved to 2 (one epoch says little); two thirds is the last epoch.
    assert early_stopping.stop_below(curves, 3) == {2: 0.2}
    assert early_stopping.stop_below(curves, 2) == {} and early_stopping.stop_below([], 30) == {}


def test_only_runs_planned_for_at_least_as_many_epochs_set_the_bar():
    # Runs of 6 epochs end annealed: their epoch 4 does not judge the middle of a 12-epoch trial.
    short = [early_stopping.Curve([0.5, 0.6, 0.7, 0.9, 0.95, 0.96], 6) for _ in range(3)]
    assert early_stopping.stop_below(short, 12) == {}
    long = [early_stopping.Curve([0.1 * i for i in range(1, 13)], 12) for _ in range(3)]
    assert early_stopping.stop_below(short + long, 12) == {4: pytest.approx(0.4), 8: pytest.approx(0.8)}
