"""The research page's tables, rebuilt from a research's events (no servers: real event messages)."""

from airlab import experiments
from airlab.events import make_event
from airlab.v1 import events_pb2, idea_pb2, loop_pb2, manager_pb2, research_pb2, runner_pb2
from airlab_dashboard import view

RESEARCH = "r" + "0" * 26


def requested(experiment: str, name: str, kind: int, seed: int, params: dict) -> events_pb2.Event:
    """The loop's request, made the way the loop makes it (airlab.experiments)."""
    return experiments.request(
        RESEARCH,
        experiment,
        code_ref=f"research/{RESEARCH}/code/{name}/final/",
        config={"seed": seed, "params": params},
        resources=runner_pb2.Resources(),
        kind=kind,
        name=name,
        seed=seed,
        params=experiments.param_values(params),
    )


def finished(experiment: str, validation: float, test: float) -> events_pb2.Event:
    body = events_pb2.ExperimentOutcome(
        experiment_id=experiment, metrics={"val_accuracy": validation, "accuracy": test}, run_seconds=1.5
    )
    return make_event("experiment.finished", RESEARCH, body)


def test_ideas_reviews_code_origin_and_experiments_come_from_the_events():
    research = research_pb2.Research(id=RESEARCH, plan=research_pb2.Plan(metric="accuracy"))
    idea = idea_pb2.Idea(id="i1", title="Random forest", change="use a random forest")
    events = [
        make_event("research.created", RESEARCH),
        requested("x0", "baseline", loop_pb2.EXPERIMENT_KIND_BASELINE, 0, {}),
        finished("x0", 0.91, 0.90),
        make_event("idea.proposed", RESEARCH, events_pb2.IdeaProposed(round=1, ideas=[idea])),
        make_event(
            "idea.reviewed",
            RESEARCH,
            events_pb2.IdeaReviewed(
                round=1,
                reviews=[manager_pb2.IdeaReview(idea_id="i1", approved=True, novelty=0.7, reasons=["new"])],
            ),
        ),
        make_event(
            "code.ready",
            RESEARCH,
            events_pb2.CodeOutcome(
                name="i1", attempts=2, origin=loop_pb2.CODE_ORIGIN_LLM, repairs=["svm.SVC: probability=True"]
            ),
        ),
        requested("s1", "i1", loop_pb2.EXPERIMENT_KIND_SMOKE, 0, {}),  # a smoke run is not an experiment
        requested("x1", "i1", loop_pb2.EXPERIMENT_KIND_TRIAL, 0, {"n_estimators": 120}),
        make_event("experiment.started", RESEARCH, events_pb2.ExperimentStarted(experiment_id="x1")),
        requested("x2", "i1", loop_pb2.EXPERIMENT_KIND_TRIAL, 0, {"n_estimators": 40}),
        make_event(
            "experiment.failed",
            RESEARCH,
            events_pb2.ExperimentOutcome(experiment_id="x2", reason="exited with code 1: ValueError"),
        ),
    ]
    built = view.build(research, [(n, e) for n, e in enumerate(events, start=1)])

    assert built.events == len(events) and built.last_sequence == len(events)
    (seen,) = built.ideas.values()
    assert (seen.title, seen.verdict, seen.coded_by) == ("Random forest", "approved", "LLM")
    assert seen.code is not None and seen.code.attempts == 2
    assert list(seen.code.repairs) == ["svm.SVC: probability=True"]
    assert seen.scores["novelty"] == 0.7 and seen.review is not None and list(seen.review.reasons) == ["new"]
    assert list(built.experiments) == ["x0", "x1", "x2"]
    baseline, running, failed = built.experiments.values()
    assert (baseline.state, built.validation(baseline), built.test(baseline)) == ("finished", 0.91, 0.90)
    assert baseline.seconds == 1.5
    assert baseline.code == "code/baseline/final/train.py" and baseline.kind == "baseline"
    assert (running.state, running.params, built.idea_title(running.requested.name)) == (
        "started",
        {"n_estimators": 120},
        "Random forest",
    )
    assert failed.state == "failed" and failed.outcome is not None and "ValueError" in failed.outcome.reason
    chart = built.chart()
    assert chart["metric"] == "accuracy"
    assert [p["y"] for p in chart["validation"]] == [0.91] and [p["y"] for p in chart["test"]] == [0.90]


def test_a_feature_ideas_steps_and_evidence_are_shown():
    research = research_pb2.Research(id=RESEARCH, plan=research_pb2.Plan(metric="roc_auc"))
    idea = idea_pb2.Idea(
        id="i2",
        title="Debt to income",
        change="add debt / income",
        evidence="debt ranks first in the profile",
        family="hist_gradient_boosting",
        steps=[
            idea_pb2.FeatureStep(technique=idea_pb2.TECHNIQUE_RATIO, columns=["debt", "income"]),
            idea_pb2.FeatureStep(technique=idea_pb2.TECHNIQUE_KEYWORDS, columns=["note"], words=["rent"]),
        ],
    )
    events = [make_event("idea.proposed", RESEARCH, events_pb2.IdeaProposed(round=1, ideas=[idea]))]
    (seen,) = view.build(research, enumerate(events, start=1)).ideas.values()
    assert seen.steps == ["ratio of debt and income", "keywords of note (rent)"]
    assert seen.idea.evidence == "debt ranks first in the profile"


def test_a_portfolio_idea_first_seen_in_its_code_request_is_shown_unreviewed():
    research = research_pb2.Research(id=RESEARCH, plan=research_pb2.Plan(metric="accuracy"))
    asked = events_pb2.CodeRequested(
        name="i3", idea=idea_pb2.Idea(title="Histogram gradient boosting"), family="hist_gradient_boosting"
    )
    events = [make_event("code.requested", RESEARCH, asked)]
    (seen,) = view.build(research, enumerate(events, start=1)).ideas.values()
    assert (seen.title, seen.idea.id, seen.idea.family) == ("Histogram gradient boosting", "i3", asked.family)
    assert seen.verdict.startswith("portfolio: no review")
