"""Every transition of the research loop, as pure functions over typed state: no servers, no I/O. A
`Loop` below plays the other services by hand: it sends the loop an event and reads what the loop asks
for in return."""

from __future__ import annotations

import json
import math

import pytest

from airlab.events import body_of, make_event
from airlab.research_record import LOOP_SCHEMA, OldLoopSchema, ResearchCodec, StoredResearch
from airlab.settings import ResearchDefaults
from airlab.strategy import KNOBS
from airlab.v1 import events_pb2, idea_pb2, loop_pb2, manager_pb2, research_pb2
from airlab_manager.catalog import DatasetCatalog
from airlab_manager.loop import LoopConfig, StepContext, apply
from airlab_manager.loop import ideas as idea_rules
from airlab_manager.loop.coding import CODE_AHEAD
from airlab_manager.loop.idea_review import Novelty

CATALOG = DatasetCatalog.load()
RID = "r" + "a" * 26
Phase = loop_pb2.LoopPhase
ACCURACY = {"accuracy": 0.9, "val_accuracy": 0.9}
RUNNING = loop_pb2.EXPERIMENT_STATE_REQUESTED


def idea(n: int, title: str = "", **space: idea_pb2.Range) -> idea_pb2.Idea:
    return idea_pb2.Idea(
        id=f"i{n:026d}",
        title=title or f"Random forest variant {n}",
        change="replace the logistic regression with a random forest",
        expected_effect="+1% accuracy",
        search_space=space or {"n_estimators": idea_pb2.Range(low=10, high=300, integer=True)},
    )


class Loop:
    """The research and its loop state, advanced one event at a time through `apply`."""

    def __init__(self, *, gates=research_pb2.HUMAN_GATES_OFF, budget=12, seeds=(0, 1, 2), **rules) -> None:
        self.research = research_pb2.Research(
            id=RID,
            goal="beat the baseline on digits",
            state=research_pb2.RESEARCH_STATE_PLANNED,
            gates=gates,
            plan=research_pb2.Plan(
                dataset="digits",
                task="classification",
                metric="accuracy",
                direction=research_pb2.METRIC_DIRECTION_MAXIMIZE,
                baseline="logistic_regression",
                seeds=seeds,
                test_fraction=0.25,
                budget=research_pb2.Budget(max_experiments=budget, max_wall_seconds=3600),
            ),
        )
        self.state = loop_pb2.ResearchLoop()
        # The LLM's ideas alone unless a test asks for the portfolio.
        knobs = {"portfolio_share": 0.0} | {k: v for k, v in rules.items() if k in KNOBS}
        others = {k: v for k, v in rules.items() if k not in KNOBS}
        self.config = LoopConfig(ResearchDefaults(strategy=knobs, **others), CATALOG, "manager")
        self.now = 1000.0
        self.sent = 0
        self.novelty: dict[str, Novelty] = {}

    def send(self, event_type: str, body=None) -> list[events_pb2.Event]:
        """Apply one event; the events the loop published in answer (none when it changed nothing)."""
        self.sent += 1
        event = make_event(event_type, RID, body, event_id=f"c{self.sent}")
        context = StepContext(now=self.now, novelty=self.novelty)
        outcome = apply(self.research, self.state, event, context, self.config)
        if outcome is None:
            return []
        self.research, self.state = outcome.research, outcome.loop
        return outcome.events

    def requested(self, events, kind=None) -> list[events_pb2.ExperimentRequested]:
        found = [body_of(e) for e in events if e.type == "experiment.requested"]
        return [r for r in found if kind is None or r.kind == kind]

    def finish(self, experiment_id: str, metrics=None, *, ok: bool = True) -> list[events_pb2.Event]:
        outcome = events_pb2.ExperimentOutcome(experiment_id=experiment_id, metrics=metrics or ACCURACY)
        if not ok:
            outcome = events_pb2.ExperimentOutcome(experiment_id=experiment_id, reason="exit code 1")
        return self.send("experiment.finished" if ok else "experiment.failed", outcome)

    def requested_by(self, events) -> set[str]:
        """The ideas (or "baseline") whose runs these events asked for."""
        asked = {r.experiment_id for r in self.requested(events)}
        return {x.name for x in self.state.experiments if x.id in asked}

    def through_baseline(self) -> list[events_pb2.Event]:
        self.send("research.planned")
        runs = self.requested(self.send("code.ready", events_pb2.CodeOutcome(name="baseline", code_ref="b/")))
        events: list[events_pb2.Event] = []
        for run in runs:
            events = self.finish(run.experiment_id, {"accuracy": 0.90, "val_accuracy": 0.89})
        return events

    def through_coding(self, *ideas: idea_pb2.Idea) -> list[events_pb2.Event]:
        self.through_baseline()
        self.send("idea.proposed", events_pb2.IdeaProposed(round=1, ideas=ideas))
        return self.send("code.ready", events_pb2.CodeOutcome(name=ideas[0].id, attempts=1, code_ref="c/"))

    def types(self, events) -> list[str]:
        return [e.type for e in events]


# -- the start and the baseline ---------------------------------------------------------------------------


def test_a_planned_research_asks_for_the_baselines_code():
    lab = Loop()
    events = lab.send("research.planned")
    assert lab.types(events) == ["code.requested"]
    request = body_of(events[0])
    assert request.name == "baseline" and not request.HasField("idea")
    assert request.job_config.model == "logistic_regression" and request.job_config.split_seed == 0
    assert lab.research.state == research_pb2.RESEARCH_STATE_RUNNING
    assert lab.state.phase == Phase.LOOP_PHASE_BASELINE and lab.state.schema == LOOP_SCHEMA
    assert lab.research.progress.phase == "baseline"


def test_the_baseline_runs_on_every_seed_then_the_first_round_of_ideas_is_asked_for():
    lab = Loop()
    lab.send("research.planned")
    runs = lab.requested(lab.send("code.ready", events_pb2.CodeOutcome(name="baseline", code_ref="b/")))
    assert [r.kind for r in runs] == [loop_pb2.EXPERIMENT_KIND_BASELINE] * 3
    assert sorted(r.experiment_id for r in runs) == sorted({r.experiment_id for r in runs})
    assert lab.finish(runs[0].experiment_id) == []  # the others still run
    assert lab.state.experiments[0].state == loop_pb2.EXPERIMENT_STATE_FINISHED
    assert lab.state.phase == Phase.LOOP_PHASE_BASELINE
    lab.finish(runs[1].experiment_id, {"accuracy": 0.92, "val_accuracy": 0.91})
    events = lab.finish(runs[2].experiment_id, {"accuracy": 0.94, "val_accuracy": 0.93})
    assert lab.types(events) == ["research.decided", "idea.requested"]
    assert lab.state.baseline.mean == pytest.approx(0.92) and lab.state.baseline.std == pytest.approx(0.02)
    assert lab.state.baseline.validation == pytest.approx((0.90 + 0.91 + 0.93) / 3)
    assert body_of(events[1]).round == 1 and body_of(events[1]).count == 3
    assert lab.research.progress.has_baseline and lab.research.progress.experiments_finished == 3
    # The first seed's run profiled the table: the idea agent is told where to read it.
    profiled = [json.loads(r.spec.env["JOB_CONFIG"]).get("profile", False) for r in runs]
    assert profiled == [True, False, False]
    assert body_of(events[1]).profile_experiment == runs[0].experiment_id


def test_baseline_code_that_fails_its_checks_ends_the_research_failed():
    lab = Loop()
    lab.send("research.planned")
    events = lab.send("code.failed", events_pb2.CodeOutcome(name="baseline", problems=["syntax error"]))
    assert lab.types(events) == ["report.requested"]
    assert body_of(events[0]).failed and "syntax error" in body_of(events[0]).stop_reason


def test_a_baseline_that_fails_on_every_seed_ends_the_research_failed():
    lab = Loop()
    lab.send("research.planned")
    runs = lab.requested(lab.send("code.ready", events_pb2.CodeOutcome(name="baseline", code_ref="b/")))
    events = []
    for run in runs:
        events = lab.finish(run.experiment_id, ok=False)
    assert lab.types(events) == ["report.requested"]
    assert "failed on every seed: exit code 1" in body_of(events[0]).stop_reason
    assert lab.state.failed


# -- ideas and their review -------------------------------------------------------------------------------


def test_proposed_ideas_are_reviewed_and_the_first_approved_one_is_coded():
    lab = Loop()
    lab.through_baseline()
    duplicate = idea(3, "Random forest variant 1!")
    wrong_task = idea(4, "Gradient boosting regressor")
    events = lab.send(
        "idea.proposed", events_pb2.IdeaProposed(round=1, ideas=[idea(1), idea(2), duplicate, wrong_task])
    )
    assert lab.types(events) == ["idea.reviewed", "research.decided", "code.requested"]
    reviews = body_of(events[0]).reviews
    assert [r.approved for r in reviews] == [True, True, False, False]
    assert "already tried" in reviews[2].reasons[0] and reviews[3].alignment < 0.5
    assert body_of(events[2]).idea.id == idea(1).id
    assert list(lab.state.queue) == [idea(2).id]
    assert [i.status for i in lab.state.ideas][:2] == [
        loop_pb2.IDEA_STATUS_CODING,
        loop_pb2.IDEA_STATUS_APPROVED,
    ]


def test_ideas_of_another_round_and_repeated_events_change_nothing():
    lab = Loop()
    lab.through_baseline()
    assert lab.send("idea.proposed", events_pb2.IdeaProposed(round=2, ideas=[idea(1)])) == []
    stored = (lab.research.SerializeToString(), lab.state.SerializeToString())
    run = lab.state.experiments[0].id
    assert lab.finish(run) == []  # already finished: a redelivery
    assert (lab.research.SerializeToString(), lab.state.SerializeToString()) == stored


def test_a_round_without_ideas_is_recorded_as_a_failure_and_another_is_asked_for():
    lab = Loop()
    lab.through_baseline()
    events = lab.send("idea.proposed", events_pb2.IdeaProposed(round=1, error="the model gave no JSON"))
    assert lab.types(events) == ["idea.reviewed", "research.decided", "idea.requested"]
    assert lab.state.failures[0].what == "idea agent" and "no JSON" in lab.state.failures[0].error
    assert body_of(events[-1]).round == 2 and lab.state.rounds_without_progress == 1


def test_the_direct_review_and_the_loop_use_the_same_rules():
    """ReviewIdea answers what the loop would decide: an idea rejected in review may come back."""
    lab = Loop()
    lab.through_baseline()
    rejected = idea(1, "Gradient boosting regressor")
    lab.send("idea.proposed", events_pb2.IdeaProposed(round=1, ideas=[rejected, idea(2)]))
    again = idea(5, "Gradient boosting classifier")
    direct = idea_rules.review(lab.research.plan, lab.state, again, Novelty())
    assert direct.approved
    repeat = idea_rules.review(lab.research.plan, lab.state, idea(6, "Random forest variant 2"), Novelty())
    assert not repeat.approved and "already tried" in repeat.reasons[0]
    # Budget: 12 - 3 baseline runs - 3 reserved for the queued... idea 2 is coding, nothing queued.
    tight = Loop(budget=5)
    tight.through_baseline()
    verdict = idea_rules.review(tight.research.plan, tight.state, idea(7), Novelty())
    assert not verdict.approved and "2 are left" in verdict.reasons[0]


def test_memory_says_an_idea_was_tried_before():
    lab = Loop()
    lab.through_baseline()
    lab.novelty = {idea(1).id: Novelty("Random forest", 0.99)}
    events = lab.send("idea.proposed", events_pb2.IdeaProposed(round=1, ideas=[idea(1)]))
    assert "near-duplicate" in body_of(events[0]).reviews[0].reasons[0]


# -- code, search, evaluation -----------------------------------------------------------------------------


def test_working_code_starts_the_search_with_two_trials_in_flight():
    lab = Loop()
    events = lab.through_coding(idea(1))
    trials = lab.requested(events, loop_pb2.EXPERIMENT_KIND_TRIAL)
    assert len(trials) == 2
    first = lab.state.experiments[3]
    # Whole numbers stay whole: the integer range's value is an integer, in the job's config too.
    assert first.params["n_estimators"].WhichOneof("value") == "integer"
    assert '"n_estimators": 155' in trials[0].spec.env["JOB_CONFIG"]
    assert lab.state.ideas[0].trial_budget == 4 and lab.state.phase == Phase.LOOP_PHASE_SEARCHING


def test_a_search_ends_with_the_best_trial_run_on_every_other_seed_then_reviewed():
    lab = Loop()
    events = lab.through_coding(idea(1))
    scores = iter([0.91, 0.95, 0.93, 0.92])
    pending = [t.experiment_id for t in lab.requested(events)]
    evaluations = []
    while pending:
        run = pending.pop(0)
        value = next(scores)
        answer = lab.finish(run, {"accuracy": value, "val_accuracy": value})
        pending += [t.experiment_id for t in lab.requested(answer, loop_pb2.EXPERIMENT_KIND_TRIAL)]
        evaluations += lab.requested(answer, loop_pb2.EXPERIMENT_KIND_EVALUATION)
    state = lab.state.ideas[0]
    assert len(state.trials) == 4 and state.best_trial == state.trials[1]
    assert len(evaluations) == 2 and lab.state.phase == Phase.LOOP_PHASE_EVALUATING
    assert sorted(state.evaluations) == [0, 1, 2] and state.evaluations[0] == state.best_trial
    lab.finish(evaluations[0].experiment_id)
    events = lab.finish(evaluations[1].experiment_id)
    assert lab.types(events) == ["evaluation.requested"]
    request = body_of(events[0])
    assert dict(request.candidate) == dict(state.evaluations) and request.maximize
    assert dict(request.baseline) == dict(lab.state.baseline.experiments)


def test_code_that_never_works_fails_the_idea_and_the_next_one_is_coded():
    lab = Loop()
    lab.through_baseline()
    lab.send("idea.proposed", events_pb2.IdeaProposed(round=1, ideas=[idea(1), idea(2)]))
    outcome = events_pb2.CodeOutcome(name=idea(1).id, attempts=3, problems=["build_model missing"])
    events = lab.send("code.failed", outcome)
    assert lab.types(events) == ["research.decided", "code.requested"]
    assert lab.state.ideas[0].status == loop_pb2.IDEA_STATUS_FAILED
    assert "after 3 attempt(s): build_model missing" in lab.state.ideas[0].failure
    assert lab.state.consecutive_failures == 1 and body_of(events[1]).idea.id == idea(2).id


def test_a_significant_gain_meets_the_goal_and_the_report_is_asked_for():
    lab = Loop()
    lab.through_coding(idea(1))
    lab.state.ideas[0].status = loop_pb2.IDEA_STATUS_REVIEWING
    comparison = review(0.05, significant=True)
    events = lab.send(
        "evaluation.completed", events_pb2.EvaluationCompleted(name=idea(1).id, evaluation=comparison)
    )
    assert lab.types(events) == ["research.decided", "report.requested"]
    assert lab.state.best.idea_id == idea(1).id and lab.state.best.significant
    report = body_of(events[1])
    assert report.stop_reason.startswith("goal met") and report.loop.best.gain == pytest.approx(0.05)
    assert report.research.id == RID and not report.failed
    ended = lab.send("report.written", events_pb2.ReportWritten(markdown_key="m", html_key="h"))
    assert lab.types(ended) == ["research.completed"]
    assert lab.research.state == research_pb2.RESEARCH_STATE_COMPLETED
    assert lab.research.report_markdown_key == "m" and body_of(ended[0]).best.idea_id == idea(1).id
    # A finished research takes no more events.
    assert lab.send("report.written", events_pb2.ReportWritten()) == []


def test_the_experiment_budget_stops_the_research():
    lab = Loop(budget=6)
    lab.through_baseline()
    events = lab.send("idea.proposed", events_pb2.IdeaProposed(round=1, ideas=[idea(1)]))
    assert lab.types(events)[-1] == "code.requested"
    events = lab.send("code.ready", events_pb2.CodeOutcome(name=idea(1).id, attempts=1, code_ref="c/"))
    # 6 - 3 baseline runs - 2 more evaluation seeds: one trial.
    assert lab.state.ideas[0].trial_budget == 1 and len(lab.requested(events)) == 1


# -- people -----------------------------------------------------------------------------------------------


def test_under_the_every_experiment_gate_an_idea_waits_for_a_person():
    lab = Loop(gates=research_pb2.HUMAN_GATES_EVERY_EXPERIMENT)
    lab.through_baseline()
    events = lab.send("idea.proposed", events_pb2.IdeaProposed(round=1, ideas=[idea(1), idea(2)]))
    assert lab.types(events)[-1] == "research.awaiting_approval"
    assert lab.research.awaiting == "experiment" and lab.research.awaiting_idea_id == idea(1).id
    lab.research.state = research_pb2.RESEARCH_STATE_RUNNING  # what the Lab API does on a decision
    rejected = lab.send(
        "research.rejected", events_pb2.PersonDecision(subject="experiment", idea_id=idea(1).id, comment="no")
    )
    assert (
        lab.types(rejected)[-1] == "research.awaiting_approval"
        and body_of(rejected[-1]).idea_id == idea(2).id
    )
    lab.research.state = research_pb2.RESEARCH_STATE_RUNNING
    approved = lab.send(
        "research.approved", events_pb2.PersonDecision(subject="experiment", idea_id=idea(2).id)
    )
    assert lab.types(approved) == ["code.requested"]
    assert "rejected by a person: no" in lab.state.ideas[0].review.reasons


def test_ideas_that_keep_failing_ask_a_person_who_may_let_it_go_on():
    lab = Loop(gates=research_pb2.HUMAN_GATES_PLAN, escalate_after_failures=2)
    lab.through_baseline()
    lab.send("idea.proposed", events_pb2.IdeaProposed(round=1, ideas=[idea(1), idea(2), idea(3)]))
    lab.send("code.failed", events_pb2.CodeOutcome(name=idea(1).id, attempts=3, problems=["x"]))
    events = lab.send("code.failed", events_pb2.CodeOutcome(name=idea(2).id, attempts=3, problems=["x"]))
    assert lab.types(events) == ["research.decided", "research.awaiting_approval"]
    assert body_of(events[0]).kind == manager_pb2.DECISION_KIND_ASK_HUMAN
    assert lab.research.awaiting == "continue" and lab.state.phase == Phase.LOOP_PHASE_WAITING
    lab.research.state = research_pb2.RESEARCH_STATE_RUNNING
    events = lab.send("research.approved", events_pb2.PersonDecision(subject="continue"))
    assert lab.types(events) == ["research.decided", "code.requested"] and lab.state.escalated


def test_a_person_may_stop_the_research_instead():
    lab = Loop()
    lab.through_baseline()
    events = lab.send("research.rejected", events_pb2.PersonDecision(subject="continue", comment="enough"))
    assert (
        lab.types(events) == ["report.requested"]
        and "a person chose to stop: enough" in lab.state.stop_reason
    )


# -- dead letters -----------------------------------------------------------------------------------------


def dead(original_type: str, body) -> events_pb2.DeadLetter:
    original = make_event(original_type, RID, body, event_id="orig")
    return events_pb2.DeadLetter(event=original, error="RuntimeError: boom", deliveries=5)


def test_a_dead_code_request_fails_the_idea():
    lab = Loop()
    lab.through_baseline()
    lab.send("idea.proposed", events_pb2.IdeaProposed(round=1, ideas=[idea(1)]))
    events = lab.send("deadletter.coder", dead("code.requested", events_pb2.CodeRequested(name=idea(1).id)))
    assert lab.types(events) == ["research.decided", "idea.requested"]
    assert "code.requested failed 5 times: RuntimeError: boom" in lab.state.ideas[0].failure


def test_a_dead_idea_request_is_a_round_without_ideas():
    lab = Loop()
    lab.through_baseline()
    events = lab.send("deadletter.idea", dead("idea.requested", events_pb2.IdeaRequested(round=1)))
    assert lab.types(events)[-1] == "idea.requested" and "boom" in lab.state.failures[0].error


def test_a_dead_experiment_request_is_a_failed_experiment():
    lab = Loop()
    lab.send("research.planned")
    runs = lab.requested(lab.send("code.ready", events_pb2.CodeOutcome(name="baseline", code_ref="b/")))
    body = events_pb2.ExperimentRequested(experiment_id=runs[0].experiment_id)
    lab.send("deadletter.runner_requests", dead("experiment.requested", body))
    assert lab.state.experiments[0].state == loop_pb2.EXPERIMENT_STATE_FAILED
    assert "boom" in lab.state.experiments[0].reason


def test_a_dead_evaluation_request_fails_the_idea():
    lab = Loop()
    lab.through_coding(idea(1))
    lab.state.ideas[0].status = loop_pb2.IDEA_STATUS_REVIEWING
    events = lab.send(
        "deadletter.reviewer", dead("evaluation.requested", events_pb2.EvaluationRequested(name=idea(1).id))
    )
    assert lab.types(events)[0] == "research.decided"
    assert lab.state.ideas[0].failure.startswith("its evaluation failed")


def test_a_dead_report_request_ends_the_research_failed_saying_why():
    lab = Loop()
    lab.through_baseline()
    lab.send("research.rejected", events_pb2.PersonDecision(subject="continue", comment="enough"))
    events = lab.send("deadletter.reviewer", dead("report.requested", events_pb2.ReportRequested()))
    assert lab.types(events) == ["research.failed"]
    assert lab.research.state == research_pb2.RESEARCH_STATE_FAILED
    assert "the report could not be written" in lab.research.state_reason


def test_a_dead_letter_the_loop_cannot_answer_changes_nothing():
    lab = Loop()
    lab.through_baseline()
    assert lab.send("deadletter.other", dead("research.created", events_pb2.ResearchCreated())) == []


# -- the stored form --------------------------------------------------------------------------------------


def test_apply_leaves_its_arguments_alone_and_the_state_round_trips_through_the_record():
    lab = Loop()
    lab.through_coding(idea(1))
    before = lab.state.SerializeToString()
    trial = events_pb2.ExperimentOutcome(experiment_id=lab.state.ideas[0].trials[0], metrics=ACCURACY)
    event = make_event("experiment.finished", RID, trial, event_id="x")
    assert apply(lab.research, lab.state, event, StepContext(now=0), lab.config) is not None
    assert lab.state.SerializeToString() == before
    stored = ResearchCodec().encode(StoredResearch(lab.research, lab.state))
    assert stored["loop"]["schema"] == LOOP_SCHEMA and "revision" not in stored
    again = ResearchCodec().decode(json.loads(json.dumps(stored)))
    assert again.research == lab.research and again.running_loop() == lab.state


def test_a_loop_stored_by_the_previous_version_is_refused_naming_both_versions_and_kept():
    old = {"id": RID, "loop": {"phase": "searching", "experiments": {}, "ideas": {}}}
    stored = ResearchCodec().decode(json.loads(json.dumps(old)))
    with pytest.raises(OldLoopSchema, match=r"loop schema 1.*schema 2"):
        stored.running_loop()
    stored.research.state = research_pb2.RESEARCH_STATE_FAILED
    assert ResearchCodec().encode(stored)["loop"] == old["loop"]  # not thrown away by a later write
    assert ResearchCodec().decode({"id": RID}).running_loop() is None


# -- the portfolio, the stop rule and the exploit step -----------------------------------------------------


def review(
    gain: float, *, significant: bool, p_value: float | None = None, seeds: int = 3
) -> loop_pb2.Comparison:
    """A reviewer's comparison: with `significant` its evidence is overwhelming (p = 1e-6), without it
    none (p = 0.5); `p_value` sets the raw p (the manager judges the family's adjusted p itself)."""
    p = p_value if p_value is not None else (1e-6 if significant else 0.5)
    return loop_pb2.Comparison(
        mean=0.9 + gain, gain=gain, baseline_mean=0.9, seeds=range(seeds), clears_noise=True, p_value=p
    )


def evaluate(
    lab: Loop, idea_id: str, *, gain: float, significant: bool, p_value: float | None = None
) -> list[events_pb2.Event]:
    """Run an idea's searching and evaluation runs to their end and answer its review."""
    events: list[events_pb2.Event] = []
    for _ in range(20):
        state = next(i for i in lab.state.ideas if i.idea.id == idea_id)
        if state.status == loop_pb2.IDEA_STATUS_REVIEWING:
            break
        pending = [
            x
            for x in lab.state.experiments
            if x.name == idea_id and x.state == loop_pb2.EXPERIMENT_STATE_REQUESTED
        ]
        assert pending, f"idea {idea_id} is {state.status} with nothing running"
        value = 0.9 + gain
        events = lab.finish(pending[0].id, {"accuracy": value, "val_accuracy": value + 0.001 * len(events)})
    comparison = review(gain, significant=significant, p_value=p_value)
    return lab.send(
        "evaluation.completed", events_pb2.EvaluationCompleted(name=idea_id, evaluation=comparison)
    )


def test_the_first_round_is_the_portfolio_coded_from_the_registry_without_the_llm():
    lab = Loop(budget=40, portfolio_share=0.5)
    events = lab.through_baseline()
    # The idea agent is asked for round 1's ideas at once: it works while the portfolio runs.
    assert lab.types(events) == ["research.decided", "idea.requested", "code.requested"]
    assert body_of(events[1]).round == 1 and lab.state.ideas_pending_round == 1
    request = body_of(events[2])
    assert request.family == "hist_gradient_boosting" and request.idea.title.endswith("(portfolio)")
    assert set(request.idea.search_space) == {
        "learning_rate",
        "max_iter",
        "max_leaf_nodes",
        "l2_regularization",
    }
    assert request.idea.search_space["max_iter"].integer
    # 40 - 3 baseline runs = 37; half of it at 2 trials + 2 evaluation runs each: 4 families.
    families = [i.family for i in lab.state.ideas]
    assert families == ["hist_gradient_boosting", "random_forest", "svm", "mlp"]
    assert all(i.origin == loop_pb2.IDEA_ORIGIN_PORTFOLIO for i in lab.state.ideas)
    outcome = events_pb2.CodeOutcome(
        name=request.name, attempts=1, code_ref="p/", origin=loop_pb2.CODE_ORIGIN_REGISTRY
    )
    events = lab.send("code.ready", outcome)
    assert lab.state.ideas[0].code_origin == loop_pb2.CODE_ORIGIN_REGISTRY
    assert lab.state.ideas[0].trial_budget == 2 and len(lab.requested(events)) == 2


def test_after_the_portfolio_the_idea_agent_is_told_how_it_did():
    lab = Loop(budget=40, portfolio_share=0.5, stop_when_goal_met=False, search_while_waiting=False)
    lab.through_baseline()
    events: list[events_pb2.Event] = []
    for n in range(4):
        idea_id = lab.state.ideas[n].idea.id
        lab.send("code.ready", events_pb2.CodeOutcome(name=idea_id, attempts=1, code_ref=f"p{n}/"))
        events = evaluate(lab, idea_id, gain=0.01 * (n + 1), significant=n == 1)
    # Round 1's ideas, asked for with the portfolio, have not come: the loop waits for them, asks nothing.
    assert "idea.requested" not in lab.types(events) and lab.state.phase == loop_pb2.LOOP_PHASE_IDEAS
    events = lab.send("idea.proposed", events_pb2.IdeaProposed(round=1, error="the model gave no JSON"))
    assert lab.types(events)[-1] == "idea.requested"
    request = body_of(events[-1])
    assert (
        request.round == 2 and len(request.results) == 4 and "Random forest (portfolio)" in request.results[1]
    )
    assert lab.state.best.idea_id == lab.state.ideas[1].idea.id  # the significant one, not the largest gain


@pytest.mark.parametrize(("budget", "searches"), [(40, True), (24, True), (20, False)])
def test_while_the_idea_agent_works_the_best_idea_searches_on_when_the_budget_leaves_a_whole_idea(
    budget, searches
):
    lab = Loop(budget=budget, portfolio_share=0.5, stop_when_goal_met=False)
    lab.through_baseline()
    portfolio = [i.idea.id for i in lab.state.ideas]
    events: list[events_pb2.Event] = []
    for n, idea_id in enumerate(portfolio):
        lab.send("code.ready", events_pb2.CodeOutcome(name=idea_id, attempts=1, code_ref=f"p{n}/"))
        events = evaluate(lab, idea_id, gain=0.01 * (n + 1), significant=True)
    # Round 1's ideas, asked for with the portfolio, have not come. A whole idea is 4 trials and the runs
    # on 2 more seeds: with 20, 9 are left after the portfolio, no room for both, and the slots wait.
    if not searches:
        assert budget - len(lab.state.experiments) == 9
        assert not lab.requested(events) and lab.state.phase == loop_pb2.LOOP_PHASE_IDEAS
        return
    step = lab.state.ideas[-1]
    assert step.origin == loop_pb2.IDEA_ORIGIN_EXPLOIT and step.parent_id == portfolio[-1]
    assert lab.requested_by(events) == {step.idea.id}
    assert lab.state.phase == loop_pb2.LOOP_PHASE_SEARCHING and lab.state.ideas_pending_round == 1
    assert "round 1's ideas asked for" in lab.research.state_reason
    # The ideas come while it searches: queued behind it, their code asked for ahead.
    events = lab.send("idea.proposed", events_pb2.IdeaProposed(round=1, ideas=[idea(1)]))
    assert list(lab.state.queue) == [idea(1).id] and "code.requested" in lab.types(events)
    assert lab.state.ideas[-1].status == loop_pb2.IDEA_STATUS_APPROVED


def test_the_first_ideas_of_the_llm_get_their_turn_before_the_last_share_even_when_they_come_late():
    """`make demo` (budget 12): the portfolio ended 4 s before the idea agent answered, and its last share
    went to more search on the portfolio's model; the LLM's feature idea never ran."""
    lab = Loop(budget=12, portfolio_share=0.5, stop_when_goal_met=False)
    lab.through_baseline()
    (portfolio,) = [i.idea.id for i in lab.state.ideas]
    lab.send("code.ready", events_pb2.CodeOutcome(name=portfolio, attempts=1, code_ref="p/"))
    events = evaluate(lab, portfolio, gain=0.05, significant=True)
    assert not lab.requested(events) and lab.state.exploits == 0  # it waits for the ideas
    assert lab.state.phase == loop_pb2.LOOP_PHASE_IDEAS
    lab.send("idea.proposed", events_pb2.IdeaProposed(round=1, ideas=[idea(1)]))
    assert lab.state.ideas[-1].status == loop_pb2.IDEA_STATUS_CODING


def test_without_llm_ideas_the_portfolio_then_more_search_on_its_best_spend_the_budget():
    lab = Loop(budget=30, portfolio_share=0.5, llm_ideas=False, improve=False, stop_when_goal_met=False)
    events = lab.through_baseline()
    assert "idea.requested" not in lab.types(events)
    for n, portfolio in enumerate(list(lab.state.ideas)):
        lab.send("code.ready", events_pb2.CodeOutcome(name=portfolio.idea.id, attempts=1, code_ref=f"p{n}/"))
        events = evaluate(lab, portfolio.idea.id, gain=0.01 * (n + 1), significant=True)
    # The portfolio ended: more search on its best (exploit steps) instead of a round of ideas.
    assert lab.state.exploits == 1 and "idea.requested" not in lab.types(events)
    for _ in range(40):  # each exploit step's trials end behind the best: the next one follows
        pending = [x for x in lab.state.experiments if x.state == loop_pb2.EXPERIMENT_STATE_REQUESTED]
        if not pending:
            break
        lab.finish(pending[0].id, {"accuracy": 0.9, "val_accuracy": 0.5})
    assert lab.state.phase == loop_pb2.LOOP_PHASE_REPORTING and lab.state.ideas_pending_round == 0
    assert all(i.origin != loop_pb2.IDEA_ORIGIN_LLM for i in lab.state.ideas)
    assert lab.state.stop_reason == "experiment budget spent: 28 of 30 used" and lab.state.exploits == 4


def test_profile_only_asks_the_idea_agent_once_without_the_llm_and_its_idea_runs_as_an_llm_feature_idea():
    """The profile-only preset: the first round's ideas come from the data profile's measured steps (the
    request says so), credited to the profile, raced and built on as the LLM's; no later round."""
    lab = Loop(budget=30, portfolio_share=0.5, llm_ideas=False, improve=False, profile_ideas=True,
               stop_when_goal_met=False)  # fmt: skip
    events = lab.through_baseline()
    (request,) = [e.idea_requested for e in events if e.type == "idea.requested"]
    assert request.measured and request.round == 1
    portfolio = list(lab.state.ideas)
    for n, done in enumerate(portfolio):
        lab.send("code.ready", events_pb2.CodeOutcome(name=done.idea.id, attempts=1, code_ref=f"p{n}/"))
        events = evaluate(lab, done.idea.id, gain=0.01 * (n + 1), significant=True)
    # The portfolio ended before the idea came: its best searches on meanwhile, then the idea's turn.
    assert lab.state.ideas_pending_round == 1 and lab.state.phase != loop_pb2.LOOP_PHASE_REPORTING
    measured = idea(1, "Features debt/income, income vs region mean")
    measured.steps.add(technique=idea_pb2.TECHNIQUE_RATIO, columns=["debt", "income"])
    measured.family = "hist_gradient_boosting"
    lab.send("idea.proposed", events_pb2.IdeaProposed(round=1, ideas=[measured]))
    found = lab.state.ideas[-1]
    assert found.idea.id == measured.id and found.origin == loop_pb2.IDEA_ORIGIN_PROFILE
    assert found.status == loop_pb2.IDEA_STATUS_APPROVED and list(lab.state.queue) == [measured.id]
    # Its turn comes once the best's step ended; its search is raced as an LLM idea's is (its first two
    # trials, then more only when one is ahead of the best). Nothing asks for another round of ideas.
    for _ in range(40):
        pending = [x for x in lab.state.experiments if x.state == loop_pb2.EXPERIMENT_STATE_REQUESTED]
        if found.status != loop_pb2.IDEA_STATUS_APPROVED or not pending:
            break
        events = lab.finish(pending[0].id, {"accuracy": 0.9, "val_accuracy": 0.5})
        assert "idea.requested" not in lab.types(events)
    found = lab.state.ideas[[i.idea.id for i in lab.state.ideas].index(measured.id)]
    assert found.status == loop_pb2.IDEA_STATUS_CODING
    events = lab.send("code.ready", events_pb2.CodeOutcome(name=measured.id, attempts=1, code_ref="m/"))
    found = lab.state.ideas[[i.idea.id for i in lab.state.ideas].index(measured.id)]
    assert found.trial_budget > 2 and len(found.trials) == 2
    for trial in list(found.trials):  # both far behind the best: the rest of its trials go back
        lab.finish(trial, {"accuracy": 0.1, "val_accuracy": 0.1})
    found = lab.state.ideas[[i.idea.id for i in lab.state.ideas].index(measured.id)]
    assert len(found.trials) == 2 and found.status == loop_pb2.IDEA_STATUS_NOT_BETTER


def test_a_budget_goal_goes_on_after_a_significant_win_and_a_beat_goal_stops():
    for until, stops in (
        (research_pb2.STOP_RULE_BEAT_BASELINE, True),
        (research_pb2.STOP_RULE_USE_BUDGET, False),
    ):
        lab = Loop(budget=30)
        lab.research.plan.until = until
        lab.through_coding(idea(1), idea(2))
        events = evaluate(lab, idea(1).id, gain=0.05, significant=True)
        assert (lab.types(events)[-1] == "report.requested") is stops
        if not stops:  # the next idea's turn: its code was asked for ahead, while the first one searched
            assert lab.types(events)[-1] == "research.decided"
            assert lab.state.ideas[1].status == loop_pb2.IDEA_STATUS_CODING and lab.state.ideas[1].code_asked


def stale_research(budget: int) -> Loop:
    """A research whose one evaluated idea brought no significant gain, and whose idea agent then gave
    nothing for two rounds."""
    lab = Loop(budget=budget, search_while_waiting=False)
    lab.through_coding(idea(1))
    evaluate(lab, idea(1).id, gain=0.01, significant=False)
    lab.send("idea.proposed", events_pb2.IdeaProposed(round=2, error="no JSON"))
    return lab


def test_without_progress_the_best_idea_gets_more_search_from_where_it_stopped():
    lab = stale_research(budget=40)
    assert lab.state.rounds_without_progress == 2
    exploit = lab.state.ideas[-1]
    assert exploit.origin == loop_pb2.IDEA_ORIGIN_EXPLOIT and exploit.parent_id == idea(1).id
    assert exploit.code_ref == "c/" and exploit.code_origin == loop_pb2.CODE_ORIGIN_REUSED
    assert "more search (#1)" in exploit.idea.title and lab.state.decisions[-1].reason.startswith(
        "no progress"
    )
    # TPE continues the parent's study: 4 trials were told, so the new points are TPE's, not the default.
    first = next(x for x in lab.state.experiments if x.id == exploit.trials[0])
    assert first.params["n_estimators"].integer != 155  # the middle of the range, the first trial's point
    assert len(exploit.trials) == 2 and lab.state.phase == Phase.LOOP_PHASE_SEARCHING


def test_a_step_on_the_best_idea_carries_none_of_its_parents_notes():
    lab = Loop(budget=40, search_while_waiting=False)
    noted = idea(1)
    noted.notes.append("started in the slots 'A' left free as it ended (two ideas in flight)")
    lab.through_coding(noted)
    evaluate(lab, noted.id, gain=0.01, significant=False)
    lab.send("idea.proposed", events_pb2.IdeaProposed(round=2, error="no JSON"))
    parent, exploit = lab.state.ideas[0], lab.state.ideas[-1]
    assert exploit.origin == loop_pb2.IDEA_ORIGIN_EXPLOIT and exploit.parent_id == parent.idea.id
    assert list(parent.idea.notes) == list(noted.notes) and not exploit.idea.notes


@pytest.mark.parametrize("budget", [15, 16])
def test_the_last_exploit_steps_worth_of_the_budget_goes_to_the_best_idea_before_queued_ideas(budget):
    """4 trials and 2 more seeds: once 6 experiments or fewer are left, the best idea searches on first."""
    lab = Loop(budget=budget)
    lab.through_coding(idea(1), idea(2))
    events = evaluate(lab, idea(1).id, gain=0.05, significant=False)  # 3 + 4 + 2 = 9 used
    trials = lab.requested(events, loop_pb2.EXPERIMENT_KIND_TRIAL)
    if budget == 16:  # 7 left: the queued idea's turn
        assert not trials and lab.state.ideas[1].status == loop_pb2.IDEA_STATUS_CODING
        return
    step = lab.state.ideas[-1]
    assert step.origin == loop_pb2.IDEA_ORIGIN_EXPLOIT and step.parent_id == idea(1).id
    assert step.trial_budget == 4 and len(trials) == 2  # the queued idea holds none of it back
    assert list(lab.state.queue) == [idea(2).id] and lab.state.rounds_without_progress == 0
    # The queued idea's code, asked for ahead, waits for its turn.
    events = lab.send("code.ready", events_pb2.CodeOutcome(name=idea(2).id, attempts=1, code_ref="d/"))
    assert not lab.requested(events) and lab.state.ideas[-1].status == loop_pb2.IDEA_STATUS_SEARCHING


def test_an_exploit_step_that_finds_nothing_better_ends_without_evaluation_runs():
    lab = stale_research(budget=40)
    exploit = lab.state.ideas[-1]
    before = len(lab.state.experiments)
    for _ in range(8):
        pending = [
            x
            for x in lab.state.experiments
            if x.name == exploit.idea.id and x.state == loop_pb2.EXPERIMENT_STATE_REQUESTED
        ]
        if not pending:
            break
        lab.finish(pending[0].id, {"accuracy": 0.5, "val_accuracy": 0.5})  # worse than any earlier trial
    exploit = next(i for i in lab.state.ideas if i.idea.id == exploit.idea.id)
    assert exploit.status == loop_pb2.IDEA_STATUS_NOT_BETTER and "did not beat" in exploit.failure
    assert all(x.kind == loop_pb2.EXPERIMENT_KIND_TRIAL for x in lab.state.experiments[before:])


def test_no_progress_stops_a_research_only_once_most_of_its_budget_is_used():
    lab = stale_research(budget=15)  # 3 + 6 used: 60% < 80%, and 6 left is still one more search
    assert lab.state.ideas[-1].origin == loop_pb2.IDEA_ORIGIN_EXPLOIT
    nothing = Loop(budget=40)
    nothing.through_baseline()
    nothing.send("idea.proposed", events_pb2.IdeaProposed(round=1, ideas=[idea(1)]))
    nothing.send("code.failed", events_pb2.CodeOutcome(name=idea(1).id, attempts=3, problems=["x"]))
    events = nothing.send("idea.proposed", events_pb2.IdeaProposed(round=2, error="no JSON"))
    assert lab.types(events)[-1] == "report.requested"
    assert "nothing to search further" in nothing.state.stop_reason


def test_an_idea_whose_code_and_hyperparameters_already_ran_is_rejected_as_not_novel():
    from airlab_manager.loop.coding import ran_before

    lab = Loop(budget=30)
    lab.through_baseline()
    twin = idea(2, "Ensemble with random forest")
    lab.send("idea.proposed", events_pb2.IdeaProposed(round=1, ideas=[idea(1), twin]))
    code = "ab" * 32
    lab.send("code.ready", events_pb2.CodeOutcome(name=idea(1).id, attempts=1, code_ref="c1/", sha256=code))
    lab.state.ideas[0].status = loop_pb2.IDEA_STATUS_REVIEWING
    comparison = review(0.01, significant=False)
    lab.send("evaluation.completed", events_pb2.EvaluationCompleted(name=idea(1).id, evaluation=comparison))
    assert lab.state.ideas[1].status == loop_pb2.IDEA_STATUS_CODING  # its code was asked for ahead
    # Its code came back the same (a registry fallback for the same family, say), for the same search.
    events = lab.send(
        "code.ready", events_pb2.CodeOutcome(name=twin.id, attempts=4, code_ref="c2/", sha256=code)
    )
    second = lab.state.ideas[1]
    assert second.status == loop_pb2.IDEA_STATUS_REJECTED and not lab.requested(events)
    assert (
        "not novel" in second.review.reasons[-1] and "'Random forest variant 1'" in second.review.reasons[-1]
    )
    assert lab.types(events)[0] == "research.decided"
    # Other code, or the same code over other hyperparameters, is an experiment of its own.
    second.code_sha256 = "cd" * 32
    assert ran_before(lab.state, second) is None
    second.code_sha256 = code
    second.idea.search_space["max_depth"].CopyFrom(idea_pb2.Range(low=2, high=20, integer=True))
    assert ran_before(lab.state, second) is None


def finish_search_of(lab: Loop, idea_id: str) -> list[events_pb2.Event]:
    """End every search trial of an idea, each worse than any earlier one; the last answer's events."""
    events: list[events_pb2.Event] = []
    while pending := [
        x.id
        for x in lab.state.experiments
        if x.name == idea_id and x.state == loop_pb2.EXPERIMENT_STATE_REQUESTED
    ]:
        events = lab.finish(pending[0], {"accuracy": 0.5, "val_accuracy": 0.5})
    return events


def test_after_an_exploit_step_the_llm_is_asked_to_improve_the_best_code_told_its_results():
    lab = stale_research(budget=40)
    events = finish_search_of(lab, lab.state.ideas[-1].idea.id)  # the exploit step finds nothing better
    # Still no progress: this time the LLM changes the best idea's code (they take turns).
    assert lab.types(events)[-1] == "code.requested"
    request = body_of(events[-1])
    improve = lab.state.ideas[-1]
    assert improve.origin == loop_pb2.IDEA_ORIGIN_IMPROVE and improve.parent_id == idea(1).id
    assert improve.status == loop_pb2.IDEA_STATUS_CODING and lab.state.improves == 1
    assert request.idea.id == improve.idea.id and request.base_code_ref == "c/"
    assert "improved by the LLM (#1)" in request.idea.title and not request.family
    assert request.base_results[0].startswith("held-out test accuracy over 3 seeds: 0.9100")
    assert any(line.startswith("trial with {'n_estimators'") for line in request.base_results)
    # Its code searched and evaluated like any idea's; the same code as its parent's costs nothing.
    events = lab.send(
        "code.ready",
        events_pb2.CodeOutcome(name=improve.idea.id, attempts=1, code_ref="c2/", sha256="f" * 64),
    )
    assert len(lab.requested(events, loop_pb2.EXPERIMENT_KIND_TRIAL)) == 2
    off = stale_research(budget=40)
    off.config.rules.strategy.improve = False
    finish_search_of(off, off.state.ideas[-1].idea.id)
    assert off.state.ideas[-1].origin == loop_pb2.IDEA_ORIGIN_EXPLOIT and off.state.improves == 0


def test_the_next_ideas_code_is_asked_for_while_an_idea_searches_and_its_search_starts_at_once():
    lab = Loop(budget=30, overlap_ideas=False)
    lab.through_baseline()
    lab.send("idea.proposed", events_pb2.IdeaProposed(round=1, ideas=[idea(1), idea(2, "Extra trees")]))
    events = lab.send("code.ready", events_pb2.CodeOutcome(name=idea(1).id, attempts=1, code_ref="c1/"))
    # The first idea's trials, and the second idea's code, asked for in the same step.
    asked = [body_of(e) for e in events if e.type == "code.requested"]
    assert [a.idea.id for a in asked] == [idea(2).id] and len(lab.requested(events)) == 2
    second = lab.state.ideas[1]
    assert second.status == loop_pb2.IDEA_STATUS_APPROVED and second.code_asked
    # Its code comes back while the first still searches: kept, nothing started, said once.
    ready = events_pb2.CodeOutcome(name=idea(2).id, attempts=2, code_ref="c2/", sha256="e" * 64)
    assert lab.send("code.ready", ready) == [] and lab.state.ideas[1].code_ref == "c2/"
    assert lab.state.ideas[1].status == loop_pb2.IDEA_STATUS_APPROVED
    assert lab.send("code.ready", ready) == []  # a redelivery changes nothing
    # When the first idea is done, the second's search starts in the same step: no wait for the coder
    # (with two ideas in flight, the default, it starts before: see the test below).
    events = evaluate(lab, idea(1).id, gain=0.01, significant=False)
    trials = lab.requested(events, loop_pb2.EXPERIMENT_KIND_TRIAL)
    assert len(trials) == 2 and all(t.name == idea(2).id for t in trials)
    assert (
        lab.state.ideas[1].status == loop_pb2.IDEA_STATUS_SEARCHING and lab.state.ideas[1].code_attempts == 2
    )
    # Code that failed ahead fails the idea at its turn; with code_ahead off, code waits for its turn.
    failing = Loop(budget=30)
    failing.through_baseline()
    failing.send("idea.proposed", events_pb2.IdeaProposed(round=1, ideas=[idea(1), idea(2, "Extra trees")]))
    failing.send("code.ready", events_pb2.CodeOutcome(name=idea(1).id, attempts=1, code_ref="c1/"))
    failing.send(
        "code.failed", events_pb2.CodeOutcome(name=idea(2).id, attempts=3, problems=["no build_model"])
    )
    evaluate(failing, idea(1).id, gain=0.01, significant=False)
    assert failing.state.ideas[1].status == loop_pb2.IDEA_STATUS_FAILED
    assert "after 3 attempt(s): no build_model" in failing.state.ideas[1].failure
    off = Loop(budget=30, code_ahead=False)
    off.through_baseline()
    off.send("idea.proposed", events_pb2.IdeaProposed(round=1, ideas=[idea(1), idea(2, "Extra trees")]))
    events = off.send("code.ready", events_pb2.CodeOutcome(name=idea(1).id, attempts=1, code_ref="c1/"))
    assert "code.requested" not in off.types(events) and not off.state.ideas[1].code_asked


def running(lab: Loop, idea_id: str) -> list[str]:
    """The runs of the idea still in flight."""
    return [x.id for x in lab.state.experiments if x.name == idea_id and x.state == RUNNING]


def two_ideas_coded() -> Loop:
    """Two ideas of the LLM queued, the first's search started and the second's code ready ahead."""
    lab = Loop(budget=30)
    lab.through_baseline()
    lab.send("idea.proposed", events_pb2.IdeaProposed(round=1, ideas=[idea(1), idea(2, "Extra trees")]))
    lab.send("code.ready", events_pb2.CodeOutcome(name=idea(1).id, attempts=1, code_ref="c1/"))
    lab.send("code.ready", events_pb2.CodeOutcome(name=idea(2).id, attempts=1, code_ref="c2/"))
    return lab


def test_the_next_idea_starts_in_the_slots_the_first_leaves_free_and_the_choice_waits_for_both():
    lab = two_ideas_coded()
    # The first idea's four trials fill both slots: nothing else starts while it can use them.
    for _ in range(2):
        assert lab.requested_by(lab.finish(running(lab, idea(1).id)[0])) == {idea(1).id}
    assert lab.state.ideas[1].status == loop_pb2.IDEA_STATUS_APPROVED
    # Its third trial ends with its fourth still running: the free slot is the second idea's.
    events = lab.finish(running(lab, idea(1).id)[0])
    assert lab.requested_by(events) == {idea(2).id} and list(lab.state.queue) == []
    assert lab.state.ideas[1].status == loop_pb2.IDEA_STATUS_SEARCHING
    assert "leaves free as it ends" in lab.research.state_reason
    assert "two ideas in flight" in lab.state.ideas[1].idea.notes[-1]  # the report says so
    # The first's search ends: its runs over the other seeds, while the second's trial runs.
    events = lab.finish(running(lab, idea(1).id)[0])
    assert [r.kind for r in lab.requested(events)] == [loop_pb2.EXPERIMENT_KIND_EVALUATION] * 2
    assert lab.state.ideas[0].status == loop_pb2.IDEA_STATUS_EVALUATING
    # What the second idea may still ask for is held from the budget (three trials, two seeds' runs).
    used = len(lab.state.experiments)
    assert idea_rules.budget.experiments_left(lab.research.plan, lab.state, queued=False) == 30 - used - 5
    # The slots are full (the first's evaluation runs come first): the second waits for one.
    events = lab.finish(running(lab, idea(2).id)[0])
    assert lab.requested(events) == [] and running(lab, idea(2).id) == []
    assert lab.state.ideas[1].status == loop_pb2.IDEA_STATUS_SEARCHING
    events = lab.finish(running(lab, idea(1).id)[0])
    assert lab.requested_by(events) == {idea(2).id}
    events = lab.finish(running(lab, idea(1).id)[0])
    # The second is an LLM idea, raced: it stays at its first two trials until the first idea, which may
    # become the best it races against, has ended.
    assert lab.types(events)[-1] == "evaluation.requested" and lab.requested_by(events) == set()
    assert len(lab.state.ideas[1].trials) == 2 and running(lab, idea(2).id)
    # The first idea reviewed: the choice of what comes next waits for the second's end.
    events = lab.send(
        "evaluation.completed",
        events_pb2.EvaluationCompleted(name=idea(1).id, evaluation=review(0.01, significant=False)),
    )
    assert "research.decided" not in lab.types(events)
    assert lab.state.ideas[0].status == loop_pb2.IDEA_STATUS_EVALUATED
    assert lab.state.phase == Phase.LOOP_PHASE_SEARCHING and "under way" in lab.research.state_reason
    # Its second trial ahead of the first idea's point on validation: the race is won, the rest runs.
    events = lab.finish(running(lab, idea(2).id)[0], {"accuracy": 0.93, "val_accuracy": 0.95})
    assert len(lab.requested(events, loop_pb2.EXPERIMENT_KIND_TRIAL)) == 2
    events = evaluate(lab, idea(2).id, gain=0.02, significant=False)
    assert lab.types(events)[0] == "research.decided"
    # After the baseline, when the ideas came, and once both ideas ended (none at the first one's end).
    assert len(lab.state.decisions) == 3


def test_an_llm_idea_started_early_waits_at_its_rung_for_the_first_ideas_verdict_then_its_race_is_judged():
    lab = two_ideas_coded()
    behind = {"accuracy": 0.80, "val_accuracy": 0.80}
    while lab.state.ideas[0].status != loop_pb2.IDEA_STATUS_REVIEWING:
        # The second idea's trials end behind; the first's runs go on to its review.
        for run in running(lab, idea(2).id):
            lab.finish(run, behind)
        lab.finish(running(lab, idea(1).id)[0])
    for run in running(lab, idea(2).id):
        lab.finish(run, behind)
    # Both of its first trials ended, nothing to race against yet: it waits, neither searching on nor ended.
    second = lab.state.ideas[1]
    assert len(second.trials) == 2 and second.status == loop_pb2.IDEA_STATUS_SEARCHING
    events = lab.send(
        "evaluation.completed",
        events_pb2.EvaluationCompleted(name=idea(1).id, evaluation=review(0.01, significant=False)),
    )
    # The first is the best: the second's race is lost, its other trials go back, and the choice is made.
    second = lab.state.ideas[1]
    assert second.status == loop_pb2.IDEA_STATUS_NOT_BETTER and "after 2 of its 4 trials" in second.failure
    assert "research.decided" in lab.types(events)


def test_an_idea_starts_early_only_when_the_budget_left_holds_its_search_and_no_gate_waits_for_it():
    # 3 baseline runs, the first idea's 4 trials and 2 seeds' runs: 5 left, short of the second's 4 + 2.
    for lab in (Loop(budget=14), Loop(budget=30, gates=research_pb2.HUMAN_GATES_EVERY_EXPERIMENT)):
        lab.through_baseline()
        lab.send("idea.proposed", events_pb2.IdeaProposed(round=1, ideas=[idea(1), idea(2, "Extra trees")]))
        if lab.research.gates == research_pb2.HUMAN_GATES_EVERY_EXPERIMENT:
            lab.research.state = research_pb2.RESEARCH_STATE_RUNNING  # what the Lab API does on a decision
            lab.send("research.approved", events_pb2.PersonDecision(subject="experiment", idea_id=idea(1).id))
        lab.send("code.ready", events_pb2.CodeOutcome(name=idea(1).id, attempts=1, code_ref="c1/"))
        lab.send("code.ready", events_pb2.CodeOutcome(name=idea(2).id, attempts=1, code_ref="c2/"))
        while running(lab, idea(1).id) and lab.state.ideas[0].status == loop_pb2.IDEA_STATUS_SEARCHING:
            assert lab.requested_by(lab.finish(running(lab, idea(1).id)[0])) <= {idea(1).id}
        assert lab.state.ideas[0].status == loop_pb2.IDEA_STATUS_EVALUATING
        assert lab.state.ideas[1].status != loop_pb2.IDEA_STATUS_SEARCHING


def test_improve_steps_that_cost_nothing_cannot_follow_each_other_without_end():
    """An improve step whose code fails costs no experiment; without exploit steps to take turns with,
    one is taken, and then the research stops for lack of progress instead of asking the LLM forever."""
    lab = Loop(budget=40, exploit=False)
    lab.through_coding(idea(1))
    evaluate(lab, idea(1).id, gain=0.01, significant=False)
    events = lab.send("idea.proposed", events_pb2.IdeaProposed(round=2, error="no JSON"))
    improve = lab.state.ideas[-1]
    assert improve.origin == loop_pb2.IDEA_ORIGIN_IMPROVE and lab.types(events)[-1] == "code.requested"
    failed = events_pb2.CodeOutcome(name=improve.idea.id, attempts=3, problems=["no build_model"])
    events = lab.send("code.failed", failed)
    assert lab.state.improves == 1 and lab.types(events)[-1] == "report.requested"
    assert "nothing to search further" in lab.state.stop_reason


# -- early stopping (multi-fidelity) -------------------------------------------------------------------


EPOCHS = {"epochs": idea_pb2.Range(low=9, high=9, integer=True)}


def through_curved_baseline(lab: Loop, *curves: list[float]) -> None:
    """The baseline, its runs reporting a validation curve each (a template that trains in epochs)."""
    lab.send("research.planned")
    runs = lab.requested(lab.send("code.ready", events_pb2.CodeOutcome(name="baseline", code_ref="b/")))
    for run, curve in zip(runs, curves, strict=True):
        finish_with_curve(lab, run.experiment_id, curve)


def finish_with_curve(lab: Loop, experiment_id: str, curve: list[float], stopped_at: int = 0):
    outcome = events_pb2.ExperimentOutcome(
        experiment_id=experiment_id,
        metrics={"accuracy": curve[-1], "val_accuracy": curve[-1]},
        validation_curve=curve,
        stopped_at_epoch=stopped_at,
    )
    return lab.send("experiment.finished", outcome)


def job_config(request: events_pb2.ExperimentRequested) -> dict:
    return json.loads(request.spec.env["JOB_CONFIG"])


def test_a_trial_is_told_the_median_of_the_researchs_runs_at_a_third_and_two_thirds_of_its_epochs():
    lab = Loop()
    through_curved_baseline(lab, [i / 10 for i in range(1, 10)], [i / 20 for i in range(1, 10)], [0.3] * 9)
    lab.send("idea.proposed", events_pb2.IdeaProposed(round=1, ideas=[idea(1, **EPOCHS)]))
    events = lab.send("code.ready", events_pb2.CodeOutcome(name=idea(1).id, attempts=1, code_ref="c/"))
    trial = lab.requested(events, loop_pb2.EXPERIMENT_KIND_TRIAL)[0]
    # 9 epochs: checkpoints after epochs 3 and 6; the medians of (0.3, 0.15, 0.3) and (0.6, 0.3, 0.3) (the
    # baseline's runs leave epochs to the template: they are planned for as many as they trained).
    assert job_config(trial)["stop_below"] == {"3": pytest.approx(0.3), "6": pytest.approx(0.3)}
    assert list(lab.state.experiments[0].validation_curve) == pytest.approx([i / 10 for i in range(1, 10)])


def test_without_epochs_or_with_early_stopping_off_a_trial_has_no_stop_rule():
    curves = ([0.5] * 9, [0.6] * 9, [0.7] * 9)
    for lab, space in ((Loop(), {}), (Loop(early_stopping=False), EPOCHS)):
        through_curved_baseline(lab, *curves)
        lab.send("idea.proposed", events_pb2.IdeaProposed(round=1, ideas=[idea(1, **space)]))
        events = lab.send("code.ready", events_pb2.CodeOutcome(name=idea(1).id, attempts=1, code_ref="c/"))
        trial = lab.requested(events, loop_pb2.EXPERIMENT_KIND_TRIAL)[0]
        assert "stop_below" not in job_config(trial)


def test_a_trial_stopped_early_is_never_the_one_evaluated():
    lab = Loop(trials_per_idea=2)
    through_curved_baseline(lab, [0.5] * 9, [0.6] * 9, [0.7] * 9)
    lab.send("idea.proposed", events_pb2.IdeaProposed(round=1, ideas=[idea(1, **EPOCHS)]))
    events = lab.send("code.ready", events_pb2.CodeOutcome(name=idea(1).id, attempts=1, code_ref="c/"))
    first, second = lab.requested(events, loop_pb2.EXPERIMENT_KIND_TRIAL)
    # The stopped trial's partial score is higher, but a partly trained network is not evaluated.
    finish_with_curve(lab, first.experiment_id, [0.9, 0.95, 0.97], stopped_at=3)
    events = finish_with_curve(lab, second.experiment_id, [0.7] * 9)
    state = lab.state.ideas[0]
    assert state.best_trial == second.experiment_id and state.status == loop_pb2.IDEA_STATUS_EVALUATING
    assert len(lab.requested(events, loop_pb2.EXPERIMENT_KIND_EVALUATION)) == 2
    assert lab.state.experiments[3].stopped_at_epoch == 3


def test_an_idea_whose_every_trial_stopped_early_is_not_evaluated_and_the_loop_goes_on():
    lab = Loop(trials_per_idea=2)
    through_curved_baseline(lab, [0.5] * 9, [0.6] * 9, [0.7] * 9)
    lab.send("idea.proposed", events_pb2.IdeaProposed(round=1, ideas=[idea(1, **EPOCHS), idea(2, **EPOCHS)]))
    events = lab.send("code.ready", events_pb2.CodeOutcome(name=idea(1).id, attempts=1, code_ref="c/"))
    first, second = lab.requested(events, loop_pb2.EXPERIMENT_KIND_TRIAL)
    finish_with_curve(lab, first.experiment_id, [0.1, 0.2, 0.3], stopped_at=3)
    events = finish_with_curve(lab, second.experiment_id, [0.1, 0.2, 0.3], stopped_at=3)
    state = lab.state.ideas[0]
    assert state.status == loop_pb2.IDEA_STATUS_NOT_BETTER and "stopped early" in state.failure
    assert not lab.requested(events, loop_pb2.EXPERIMENT_KIND_EVALUATION)
    # The next idea's code (asked for while the first searched) starts its search when it comes.
    assert lab.state.phase == Phase.LOOP_PHASE_CODING
    events = lab.send("code.ready", events_pb2.CodeOutcome(name=idea(2).id, attempts=1, code_ref="d/"))
    assert len(lab.requested(events, loop_pb2.EXPERIMENT_KIND_TRIAL)) == 2


# -- which searches are evaluated over the seeds ---------------------------------------------------------


@pytest.mark.parametrize("evaluate_every_idea", [False, True])
def test_an_idea_behind_the_best_on_validation_is_not_run_over_the_seeds(evaluate_every_idea):
    lab = Loop(budget=40, evaluate_every_idea=evaluate_every_idea, race_ideas=False)
    lab.through_coding(idea(1), idea(2))
    evaluate(lab, idea(1).id, gain=0.05, significant=False)  # best trial 0.95 on validation
    events = lab.send("code.ready", events_pb2.CodeOutcome(name=idea(2).id, attempts=1, code_ref="d/"))
    for _ in range(4):
        pending = [x.id for x in lab.state.experiments if x.state == loop_pb2.EXPERIMENT_STATE_REQUESTED]
        events = lab.finish(pending[0], {"accuracy": 0.93, "val_accuracy": 0.93})
    second = lab.state.ideas[1]
    if evaluate_every_idea:
        assert second.status == loop_pb2.IDEA_STATUS_EVALUATING
        assert len(lab.requested(events, loop_pb2.EXPERIMENT_KIND_EVALUATION)) == 2
        return
    assert second.status == loop_pb2.IDEA_STATUS_NOT_BETTER and not second.evaluations
    assert "not ahead of the best idea so far, 'Random forest variant 1' (0.95" in second.failure
    assert not lab.requested(events, loop_pb2.EXPERIMENT_KIND_EVALUATION)
    assert "research.decided" in lab.types(events)


def race_second_idea(lab: Loop, rung: list[float]) -> list[events_pb2.Event]:
    """Idea 1 evaluated as the best (0.95 on validation), then idea 2's first trials scored `rung`."""
    lab.through_coding(idea(1), idea(2))
    evaluate(lab, idea(1).id, gain=0.05, significant=False)
    events = lab.send("code.ready", events_pb2.CodeOutcome(name=idea(2).id, attempts=1, code_ref="d/"))
    first, second = lab.requested(events, loop_pb2.EXPERIMENT_KIND_TRIAL)
    # The rung is judged once both of its trials ended: the first alone asks for no third.
    assert not lab.finish(first.experiment_id, {"accuracy": rung[0], "val_accuracy": rung[0]})
    return lab.finish(second.experiment_id, {"accuracy": rung[1], "val_accuracy": rung[1]})


def test_an_llm_idea_behind_the_best_after_its_first_trials_gives_the_rest_of_its_trials_back():
    lab = Loop(budget=40)
    events = race_second_idea(lab, [0.93, 0.94])
    second = lab.state.ideas[1]
    assert len(second.trials) == 2 and second.trial_budget == 4
    assert second.status == loop_pb2.IDEA_STATUS_NOT_BETTER and not second.evaluations
    assert "(0.9400 on validation) is not ahead of the best idea so far" in second.failure
    assert "after 2 of its 4 trials (raced: the rest went to other ideas)" in second.failure
    assert "research.decided" in lab.types(events) and "idea.requested" in lab.types(events)
    # While the idea agent works on the next round, the best idea searches on.
    step = lab.state.ideas[-1]
    assert step.origin == loop_pb2.IDEA_ORIGIN_EXPLOIT and step.parent_id == idea(1).id
    assert lab.requested_by(events) == {step.idea.id}


def test_an_llm_idea_ahead_of_the_best_after_its_first_trials_searches_on():
    lab = Loop(budget=40)
    events = race_second_idea(lab, [0.93, 0.97])
    assert len(lab.requested(events, loop_pb2.EXPERIMENT_KIND_TRIAL)) == 2
    assert len(lab.state.ideas[1].trials) == 4


def evaluate_best(lab: Loop, trial: float, others: tuple[float, float]) -> None:
    """Idea 1 becomes the best with its search trials at `trial` on validation and its runs on the other
    two seeds at `others`."""
    lab.through_coding(idea(1), idea(2))
    evaluation_scores = iter(others)
    for _ in range(10):
        pending = [
            x
            for x in lab.state.experiments
            if x.name == idea(1).id and x.state == loop_pb2.EXPERIMENT_STATE_REQUESTED
        ]
        if not pending:
            break
        value = trial if pending[0].kind == loop_pb2.EXPERIMENT_KIND_TRIAL else next(evaluation_scores)
        lab.finish(pending[0].id, {"accuracy": value, "val_accuracy": value})
    comparison = review(0.02, significant=False)
    lab.send("evaluation.completed", events_pb2.EvaluationCompleted(name=idea(1).id, evaluation=comparison))
    assert lab.state.best.idea_id == idea(1).id


def race_against_best(lab: Loop, rung: tuple[float, float]) -> list[events_pb2.Event]:
    """Idea 2's code comes and its first two trials score `rung`."""
    events = lab.send("code.ready", events_pb2.CodeOutcome(name=idea(2).id, attempts=1, code_ref="d/"))
    first, second = lab.requested(events, loop_pb2.EXPERIMENT_KIND_TRIAL)
    lab.finish(first.experiment_id, {"accuracy": rung[0], "val_accuracy": rung[0]})
    return lab.finish(second.experiment_id, {"accuracy": rung[1], "val_accuracy": rung[1]})


@pytest.mark.parametrize("bar_over_seeds", [False, True])
def test_the_bar_for_ahead_of_the_best_can_be_the_mean_of_its_seeds_not_its_lucky_best_trial(bar_over_seeds):
    lab = Loop(budget=40, bar_over_seeds=bar_over_seeds)
    # A lucky best trial: 0.95 on seed 0, 0.80 and 0.82 on the others (the seeds' mean: 0.8567).
    evaluate_best(lab, 0.95, (0.80, 0.82))
    events = race_against_best(lab, (0.86, 0.90))
    second_idea = lab.state.ideas[1]
    if bar_over_seeds:  # 0.90 is ahead of 0.8567: the race goes on
        assert len(lab.requested(events, loop_pb2.EXPERIMENT_KIND_TRIAL)) == 2
        assert len(second_idea.trials) == 4
        return
    assert second_idea.status == loop_pb2.IDEA_STATUS_NOT_BETTER and len(second_idea.trials) == 2
    assert "'Random forest variant 1' (0.9500) after 2 of its 4 trials" in second_idea.failure


def test_a_bar_from_the_seeds_is_said_in_the_report():
    lab = Loop(budget=40, bar_over_seeds=True)
    evaluate_best(lab, 0.95, (0.80, 0.82))
    race_against_best(lab, (0.85, 0.85))
    failure = lab.state.ideas[1].failure
    assert "'Random forest variant 1' (0.8567, the mean of its 3 seeds) after 2 of its 4 trials" in failure


def test_the_seeds_mean_never_raises_the_bar_above_the_best_trial():
    lab = Loop(budget=40, bar_over_seeds=True)
    # An unlucky best trial: 0.85 on seed 0, 0.95 and 0.96 on the others (the seeds' mean: 0.92).
    evaluate_best(lab, 0.85, (0.95, 0.96))
    events = race_against_best(lab, (0.86, 0.86))  # ahead of 0.85, the lower of the two
    assert len(lab.requested(events, loop_pb2.EXPERIMENT_KIND_TRIAL)) == 2


def test_an_idea_without_a_best_to_race_against_searches_its_whole_budget():
    lab = Loop(budget=40)
    events = lab.through_coding(idea(1))
    for run in lab.requested(events, loop_pb2.EXPERIMENT_KIND_TRIAL):
        assert len(lab.requested(lab.finish(run.experiment_id, {"accuracy": 0.5, "val_accuracy": 0.5}))) == 1
    assert len(lab.state.ideas[0].trials) == 4


def test_an_idea_whose_trials_keep_failing_stops_its_search_without_spending_the_rest():
    lab = Loop()
    events = lab.through_coding(idea(1), idea(2))
    first, second = lab.requested(events, loop_pb2.EXPERIMENT_KIND_TRIAL)
    third = lab.requested(lab.finish(first.experiment_id, ok=False))  # one failure: the search goes on
    assert len(third) == 1
    assert not lab.requested(lab.finish(second.experiment_id, ok=False))  # two, none finished: no more
    lab.finish(third[0].experiment_id, ok=False)
    state = lab.state.ideas[0]
    assert len(state.trials) == 3 and state.trial_budget == 4
    assert state.status == loop_pb2.IDEA_STATUS_FAILED
    assert "every search trial failed: exit code 1" in state.failure


def test_the_loop_keeps_at_most_a_bounded_part_of_a_runs_curve():
    lab = Loop()
    through_curved_baseline(lab, [0.5] * 9, [0.6] * 9, [0.7] * 9)
    lab.send("idea.proposed", events_pb2.IdeaProposed(round=1, ideas=[idea(1, **EPOCHS)]))
    events = lab.send("code.ready", events_pb2.CodeOutcome(name=idea(1).id, attempts=1, code_ref="c/"))
    trial = lab.requested(events, loop_pb2.EXPERIMENT_KIND_TRIAL)[0]
    finish_with_curve(lab, trial.experiment_id, [0.5] * 5000)  # a job may report any length
    stored = next(x for x in lab.state.experiments if x.id == trial.experiment_id)
    assert len(stored.validation_curve) == 200


# -- verdicts over the research's family of comparisons (airlab.verdicts) --------------------------------


def test_a_gain_significant_alone_is_not_claimed_in_a_family_of_comparisons():
    """p = 0.006 passes 0.01 alone, but the budget of 30 plans 9 comparisons: adjusted 0.054, no claim and
    not even borderline."""
    lab = Loop(budget=30)
    lab.through_coding(idea(1), idea(2))
    evaluate(lab, idea(1).id, gain=0.05, significant=False, p_value=0.006)
    first = lab.state.ideas[0]
    assert first.status == loop_pb2.IDEA_STATUS_EVALUATED and first.evaluation.family_size == 9
    assert first.evaluation.adjusted_p == pytest.approx(0.054) and not first.evaluation.significant
    assert not first.evaluation.suggestive and not first.extra_seeds
    assert lab.state.best.idea_id == idea(1).id and not lab.state.best.significant
    progress = lab.research.progress
    assert progress.best_p_value == pytest.approx(0.006) and progress.best_adjusted_p == pytest.approx(0.054)
    assert progress.family_size == 9 and not progress.best_significant


def seeds_of(lab: Loop, runs: list[events_pb2.ExperimentRequested]) -> list[tuple[str, int]]:
    by_id = {x.id: x for x in lab.state.experiments}
    return sorted((r.name, by_id[r.experiment_id].seed) for r in runs)


def test_a_borderline_first_look_gets_two_more_seeds_for_the_idea_and_the_baseline_then_a_second():
    lab = Loop(budget=30)
    lab.research.plan.until = research_pb2.STOP_RULE_BEAT_BASELINE
    lab.through_coding(idea(1), idea(2))
    # Adjusted p 9 * 0.003 = 0.027: between 0.01 and 0.05.
    events = evaluate(lab, idea(1).id, gain=0.05, significant=False, p_value=0.003)
    first = lab.state.ideas[0]
    assert first.status == loop_pb2.IDEA_STATUS_EVALUATING and list(first.extra_seeds) == [3, 4]
    runs = lab.requested(events)
    assert seeds_of(lab, runs) == [("baseline", 3), ("baseline", 4), (idea(1).id, 3), (idea(1).id, 4)]
    assert "borderline" in lab.research.state_reason
    # Nothing is reviewed before every one of them ended: the idea's first, then the baseline's.
    baseline_runs = [r for r in runs if r.name == "baseline"]
    for run in [r for r in runs if r.name != "baseline"] + baseline_runs[:1]:
        assert lab.types(lab.finish(run.experiment_id)) == []
    events = lab.finish(baseline_runs[1].experiment_id)
    assert lab.types(events) == ["evaluation.requested"]
    request = body_of(events[0])
    assert sorted(request.candidate) == [0, 1, 2, 3, 4] and sorted(request.baseline) == [0, 1, 2, 3, 4]
    assert request.look == 2 and request.family_size == 9
    # The second look: 9 * 0.004 = 0.036 < 0.04 is a claim, and the beat goal is met.
    events = lab.send(
        "evaluation.completed",
        events_pb2.EvaluationCompleted(
            name=idea(1).id, evaluation=review(0.05, significant=False, p_value=0.004, seeds=5)
        ),
    )
    judged = lab.state.ideas[0].evaluation
    assert judged.look == 2 and judged.level == pytest.approx(0.04) and judged.significant
    assert lab.state.best.significant and lab.types(events)[-1] == "report.requested"


def test_a_second_look_above_its_level_is_no_claim():
    lab = Loop(budget=30)
    lab.through_coding(idea(1), idea(2))
    events = evaluate(lab, idea(1).id, gain=0.05, significant=False, p_value=0.003)
    for run in lab.requested(events):
        lab.finish(run.experiment_id)
    lab.send(
        "evaluation.completed",
        events_pb2.EvaluationCompleted(
            name=idea(1).id, evaluation=review(0.05, significant=False, p_value=0.005, seeds=5)
        ),
    )
    judged = lab.state.ideas[0]
    assert judged.status == loop_pb2.IDEA_STATUS_EVALUATED
    assert judged.evaluation.adjusted_p == pytest.approx(0.045) and not judged.evaluation.significant
    assert not judged.evaluation.suggestive  # the second look decided it


def test_a_borderline_first_look_with_no_budget_left_is_suggestive_and_no_claim():
    lab = Loop(budget=30)
    lab.through_coding(idea(1))
    for _ in range(30):  # the idea's search and seeds
        pending = [x for x in lab.state.experiments if x.state == loop_pb2.EXPERIMENT_STATE_REQUESTED]
        if not pending:
            break
        lab.finish(pending[0].id, {"accuracy": 0.95, "val_accuracy": 0.95})
    assert lab.state.ideas[0].status == loop_pb2.IDEA_STATUS_REVIEWING
    while len(lab.state.experiments) < 29:  # one run left: not one more seed for both sides
        lab.state.experiments.add(id=f"x{len(lab.state.experiments)}", state=loop_pb2.EXPERIMENT_STATE_FAILED)
    comparison = review(0.05, significant=False, p_value=0.003)
    events = lab.send(
        "evaluation.completed", events_pb2.EvaluationCompleted(name=idea(1).id, evaluation=comparison)
    )
    judged = lab.state.ideas[0]
    assert judged.status == loop_pb2.IDEA_STATUS_EVALUATED and not lab.requested(events)
    assert judged.evaluation.adjusted_p == pytest.approx(0.027)
    assert judged.evaluation.suggestive and not judged.evaluation.significant
    assert not lab.state.best.significant


@pytest.mark.parametrize("budget", [24, 40])
def test_ideas_asked_for_with_the_portfolio_queue_behind_it_and_are_coded_ahead(budget):
    lab = Loop(budget=budget, portfolio_share=0.5, stop_when_goal_met=False)
    lab.through_baseline()
    portfolio_ids = [i.idea.id for i in lab.state.ideas]
    first = portfolio_ids[0]
    lab.send("code.ready", events_pb2.CodeOutcome(name=first, attempts=1, code_ref="p0/"))
    assert lab.state.phase == loop_pb2.LOOP_PHASE_SEARCHING
    idea = idea_pb2.Idea(
        id="i" + "f" * 26,
        title="Debt to income",
        change="add the ratio of debt to income before gradient boosting",
        expected_effect="a higher ROC AUC",
        family="hist_gradient_boosting",
        steps=[idea_pb2.FeatureStep(technique=idea_pb2.TECHNIQUE_RATIO, columns=["debt", "income"])],
        search_space={"learning_rate": idea_pb2.Range(low=0.01, high=0.3, log_scale=True)},
    )
    events = lab.send("idea.proposed", events_pb2.IdeaProposed(round=1, ideas=[idea]))
    # Reviewed and queued behind the portfolio; the search goes on (no decision taken mid-search).
    assert "research.decided" not in lab.types(events) and lab.state.phase == loop_pb2.LOOP_PHASE_SEARCHING
    assert list(lab.state.queue) == [*portfolio_ids[1:], idea.id] and lab.state.ideas_pending_round == 0
    stored = lab.state.ideas[-1]
    assert stored.origin == loop_pb2.IDEA_ORIGIN_LLM and stored.family == "hist_gradient_boosting"
    # Its code is asked for once it is among the next CODE_AHEAD queued ideas: it is ready at its turn, the
    # slots not waiting for the coder.
    asked = [body_of(e).name for e in events if e.type == "code.requested"]
    assert asked == ([idea.id] if len(portfolio_ids) <= CODE_AHEAD else []), len(portfolio_ids)
    # A second answer for the same round (a redelivery) changes nothing.
    assert lab.send("idea.proposed", events_pb2.IdeaProposed(round=1, ideas=[idea])) == []


def test_a_queued_feature_idea_runs_before_the_budgets_last_share_goes_to_the_best_idea():
    for steps in ([idea_pb2.FeatureStep(technique=idea_pb2.TECHNIQUE_RATIO, columns=["debt", "income"])], []):
        lab = Loop(budget=12, portfolio_share=0.5, stop_when_goal_met=False)
        lab.through_baseline()
        (portfolio,) = [i.idea.id for i in lab.state.ideas]
        lab.send("code.ready", events_pb2.CodeOutcome(name=portfolio, attempts=1, code_ref="p/"))
        idea = idea_pb2.Idea(
            id="i" + "e" * 26,
            title="Debt to income",
            change="add the ratio of debt to income before gradient boosting",
            expected_effect="a higher ROC AUC",
            family="hist_gradient_boosting" if steps else "",
            steps=steps,
            search_space={"learning_rate": idea_pb2.Range(low=0.01, high=0.3, log_scale=True)},
        )
        events = lab.send("idea.proposed", events_pb2.IdeaProposed(round=1, ideas=[idea]))
        # Its code is asked for ahead, while the portfolio searches (a feature idea's with its family).
        asked = [body_of(e) for e in events if e.type == "code.requested"]
        assert [(a.name, a.family) for a in asked] == [(idea.id, idea.family)]
        evaluate(lab, portfolio, gain=0.05, significant=True)
        stored = next(i for i in lab.state.ideas if i.idea.id == idea.id)
        # The feature idea's turn comes before the budget's last share; so does a free-form one's here, the
        # research's first idea from the LLM (a later one waits: the last share is the best idea's).
        assert stored.status == loop_pb2.IDEA_STATUS_CODING and lab.state.exploits == 0


@pytest.mark.parametrize("warm_start", [True, False])
def test_a_feature_ideas_first_trial_starts_from_the_best_point_its_model_family_found(warm_start):
    lab = Loop(budget=24, portfolio_share=0.5, stop_when_goal_met=False, warm_start=warm_start)
    lab.through_baseline()
    portfolio = lab.state.ideas[0]
    lab.send("code.ready", events_pb2.CodeOutcome(name=portfolio.idea.id, attempts=1, code_ref="p/"))
    idea = idea_pb2.Idea(
        id="i" + "d" * 26,
        title="Features debt/income",
        change="add ratio of debt and income, feeding a hist gradient boosting",
        expected_effect="a higher accuracy",
        family=portfolio.family,
        steps=[idea_pb2.FeatureStep(technique=idea_pb2.TECHNIQUE_RATIO, columns=["debt", "income"])],
        search_space=portfolio.idea.search_space,  # the family's own, as the agent gives a feature idea
    )
    lab.send("idea.proposed", events_pb2.IdeaProposed(round=1, ideas=[idea]))
    # The portfolio's two trials: the second is the better one on validation.
    trials = [x for x in lab.state.experiments if x.name == portfolio.idea.id]
    lab.finish(trials[0].id, {"accuracy": 0.91, "val_accuracy": 0.90})
    lab.finish(trials[1].id, {"accuracy": 0.93, "val_accuracy": 0.94})
    best_params = dict(next(x for x in lab.state.experiments if x.id == trials[1].id).params)
    evaluate(lab, portfolio.idea.id, gain=0.03, significant=True)
    (other,) = [i for i in lab.state.ideas if i.status == loop_pb2.IDEA_STATUS_CODING]  # the random forest
    lab.send("code.failed", events_pb2.CodeOutcome(name=other.idea.id, attempts=1, problems=["x"]))
    events = lab.send("code.ready", events_pb2.CodeOutcome(name=idea.id, attempts=1, code_ref="f/"))
    first = lab.requested(events, loop_pb2.EXPERIMENT_KIND_TRIAL)[0]
    stored = next(i for i in lab.state.ideas if i.idea.id == idea.id)
    assert stored.status == loop_pb2.IDEA_STATUS_SEARCHING
    if warm_start:
        assert dict(first.params) == best_params
        assert stored.idea.notes[-1] == (
            "its first trial starts from the best point found so far for its model, in "
            f"{portfolio.idea.title!r} (0.9400 on validation)"
        )
    else:
        assert dict(first.params) != best_params and not stored.idea.notes


@pytest.mark.parametrize("full_epochs", [True, False])
def test_a_portfolio_networks_first_trial_trains_for_the_top_of_its_epochs_range(full_epochs):
    lab = Loop(budget=14, portfolio_share=0.5, full_epochs_first=full_epochs)
    plan = lab.research.plan
    plan.template, plan.dataset, plan.task, plan.metric, plan.baseline = (
        "pytorch", "shapes", "segmentation", "dice", "unet",
    )  # fmt: skip
    lab.send("research.planned")
    runs = lab.requested(lab.send("code.ready", events_pb2.CodeOutcome(name="baseline", code_ref="b/")))
    for run in runs:
        lab.finish(run.experiment_id, {"dice": 0.40, "val_dice": 0.39})
    unet = next(i for i in lab.state.ideas if i.family == "unet")
    assert unet.origin == loop_pb2.IDEA_ORIGIN_PORTFOLIO
    events = lab.send("code.ready", events_pb2.CodeOutcome(name=unet.idea.id, attempts=1, code_ref="u/"))
    first = lab.requested(events, loop_pb2.EXPERIMENT_KIND_TRIAL)[0]
    space = unet.idea.search_space
    stored = next(i for i in lab.state.ideas if i.idea.id == unet.idea.id)
    # The other ranges' middle either way; the epochs the top of their range, or their middle.
    assert first.params["width"].integer == round(math.sqrt(space["width"].low * space["width"].high))
    if full_epochs:
        assert first.params["epochs"].integer == round(space["epochs"].high)
        assert stored.idea.notes[-1] == (
            f"its first trial trains for {round(space['epochs'].high)} epochs, the top of its range "
            "(the middle of the others)"
        )
    else:
        middle = round(math.sqrt(space["epochs"].low * space["epochs"].high))
        assert first.params["epochs"].integer == middle and not stored.idea.notes


def test_hyperparameters_the_code_does_not_read_leave_the_search_and_are_noted():
    lab = Loop(budget=30)
    lab.through_baseline()
    idea = idea_pb2.Idea(
        id="i" + "d" * 26,
        title="A stacked ensemble",
        change="stack a random forest and a logistic regression",
        expected_effect="+1% accuracy",
        search_space={"C": idea_pb2.Range(low=0.01, high=10, log_scale=True)},
    )
    lab.send("idea.proposed", events_pb2.IdeaProposed(round=1, ideas=[idea]))
    outcome = events_pb2.CodeOutcome(name=idea.id, attempts=2, code_ref="c/", unsearched=["C"])
    events = lab.send("code.ready", outcome)
    stored = next(i for i in lab.state.ideas if i.idea.id == idea.id)
    assert not stored.idea.search_space and "'C' left out of the search" in stored.idea.notes[0]
    # Nothing left to search: one trial is the idea, not four of the same model.
    assert stored.trial_budget == 1 and len(lab.requested(events)) == 1


def test_a_retried_step_reuses_tpes_proposal_instead_of_running_the_study_again(monkeypatch):
    """A compare-and-set retry applies the same event to the same state again: the trial it asks for is
    the same, and TPE ran once."""
    from airlab_manager.loop import tpe

    lab = Loop()
    first = lab.requested(lab.through_coding(idea(1)))[0]
    calls = []
    real = tpe.next_params
    monkeypatch.setattr(tpe, "next_params", lambda *a, **k: calls.append(1) or real(*a, **k))
    event = make_event(
        "experiment.finished",
        RID,
        events_pb2.ExperimentOutcome(experiment_id=first.experiment_id, metrics={"accuracy": 0.9}),
        event_id="retried",
    )
    context = StepContext(now=lab.now)
    tries = [apply(lab.research, lab.state, event, context, lab.config) for _ in range(3)]
    asked = [lab.requested(outcome.events, loop_pb2.EXPERIMENT_KIND_TRIAL) for outcome in tries]
    assert len(asked[0]) == 1 and asked[0] == asked[1] == asked[2]
    assert len(calls) == 1


def feature_idea(n: int, *steps: tuple[int, list[str]]) -> idea_pb2.Idea:
    return idea_pb2.Idea(
        id=f"i{n:026d}",
        title=f"Features {n}",
        change="add features of the technique catalog before gradient boosting",
        expected_effect="a higher score",
        family="hist_gradient_boosting",
        steps=[idea_pb2.FeatureStep(technique=t, columns=c) for t, c in steps],
        search_space={"learning_rate": idea_pb2.Range(low=0.01, high=0.3, log_scale=True)},
    )


RATIO = (idea_pb2.TECHNIQUE_RATIO, ["debt", "income"])
GROUP_MEAN = (idea_pb2.TECHNIQUE_GROUP_MEAN, ["income", "region"])


@pytest.mark.parametrize("build_on_best", [True, False])
def test_a_feature_idea_whose_turn_comes_after_another_became_the_best_builds_on_its_features(build_on_best):
    lab = Loop(budget=40, build_on_best=build_on_best, stop_when_goal_met=False)
    first, second = feature_idea(1, RATIO), feature_idea(2, GROUP_MEAN, RATIO)
    lab.through_coding(first, second)
    # The second idea's code is asked for ahead, with its own steps, while the first searches.
    lab.send("code.ready", events_pb2.CodeOutcome(name=second.id, attempts=1, code_ref="own/"))
    events = evaluate(lab, first.id, gain=0.05, significant=True)
    assert lab.state.best.idea_id == first.id
    stored = lab.state.ideas[1]
    if not build_on_best:  # its own code runs, its own steps alone
        assert stored.status == loop_pb2.IDEA_STATUS_SEARCHING and stored.code_ref == "own/"
        assert not stored.built_on and len(stored.idea.steps) == 2
        return
    # Its turn: its steps are added to the best's (the ratio it shares once) and its code asked for again,
    # under a name of its own (the coder keeps each name's code once).
    asked = [body_of(e) for e in events if e.type == "code.requested"]
    assert [a.name for a in asked] == [f"{second.id}-on-{first.id}"]
    assert [(s.technique, list(s.columns)) for s in asked[0].idea.steps] == [
        (idea_pb2.TECHNIQUE_RATIO, ["debt", "income"]),
        (idea_pb2.TECHNIQUE_GROUP_MEAN, ["income", "region"]),
    ]
    assert stored.built_on == first.id and stored.status == loop_pb2.IDEA_STATUS_CODING
    assert not stored.code_ref and "built on the best idea at its turn, 'Features 1'" in stored.idea.notes[-1]
    # A late answer under its first name changes nothing; the new code starts its search.
    assert lab.send("code.ready", events_pb2.CodeOutcome(name=second.id, attempts=1, code_ref="x/")) == []
    events = lab.send("code.ready", events_pb2.CodeOutcome(name=asked[0].name, attempts=1, code_ref="on/"))
    trials = lab.requested(events, loop_pb2.EXPERIMENT_KIND_TRIAL)
    assert trials and all(t.spec.code_ref == "on/" for t in trials)
    assert lab.state.ideas[1].status == loop_pb2.IDEA_STATUS_SEARCHING
    # The next round's idea agent is told the best's features, so it proposes others.
    for trial in trials:  # behind the best: the race ends it, and the next round is asked for
        events = lab.finish(trial.experiment_id, {"accuracy": 0.91, "val_accuracy": 0.91})
    (request,) = [body_of(e) for e in events if e.type == "idea.requested"]
    assert request.round == 2 and request.results[0] == (
        "The best idea so far, 'Features 1', uses the features ratio of debt and income. A new feature "
        "idea's steps are added to these, so propose features that are not among them."
    )


def test_a_feature_idea_builds_on_nothing_when_the_best_has_no_steps_or_it_adds_none():
    lab = Loop(budget=40, stop_when_goal_met=False)
    first, same = feature_idea(1, RATIO), feature_idea(2, RATIO)
    lab.through_coding(first, same)
    lab.send("code.ready", events_pb2.CodeOutcome(name=same.id, attempts=1, code_ref="own/"))
    evaluate(lab, first.id, gain=0.05, significant=True)
    stored = lab.state.ideas[1]
    assert not stored.built_on and stored.code_ref == "own/"  # nothing of its own to add
