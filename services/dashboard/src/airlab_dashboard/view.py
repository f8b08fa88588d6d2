"""What a research page shows, rebuilt from the research's record and its event stream (replayed from the
start, so a reload shows everything): the ideas with their reviews and code origin, and every experiment
with its parameters, scores, duration and state."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from airlab import techniques
from airlab.enums import CODE_WORDS, enum_words
from airlab.events import body_of
from airlab.v1 import events_pb2, loop_pb2, research_pb2

BASELINE = "baseline"
ENDED = ("finished", "failed", "cancelled")


@dataclass
class IdeaView:
    id: str
    title: str
    change: str = ""
    round: int = 0
    review: str = ""  # "approved" / "rejected" / "" (not reviewed yet)
    scores: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    code: str = ""  # who wrote the code that ran, in words
    code_attempts: int = 0
    code_problems: list[str] = field(default_factory=list)
    code_repairs: list[str] = field(default_factory=list)  # what the coder changed in the LLM's code
    # A feature idea: its steps of the technique catalog in words, and the evidence the model gave.
    steps: list[str] = field(default_factory=list)
    evidence: str = ""


@dataclass
class ExperimentView:
    id: str
    name: str
    kind: str
    params: dict[str, object] = field(default_factory=dict)
    state: str = "requested"
    validation: float | None = None
    test: float | None = None
    seed: int | None = None
    seconds: float | None = None
    reason: str = ""
    sequence: int = 0
    # The code that ran, as a key inside the research's artifacts ("code/<idea>/final/train.py").
    code: str = ""


@dataclass
class ResearchView:
    metric: str
    ideas: dict[str, IdeaView] = field(default_factory=dict)
    experiments: dict[str, ExperimentView] = field(default_factory=dict)
    last_sequence: int = 0
    events: int = 0

    def idea_title(self, name: str) -> str:
        if name == BASELINE:
            return BASELINE
        idea = self.ideas.get(name)
        return idea.title if idea else name

    def chart(self) -> dict[str, object]:
        """Validation and test scores per experiment, in the order they finished (plotly traces' data)."""
        done = sorted(
            (e for e in self.experiments.values() if e.state == "finished"), key=lambda e: e.sequence
        )
        return {
            "metric": self.metric,
            "validation": [
                {"x": n, "y": e.validation, "label": f"{self.idea_title(e.name)} ({e.kind})"}
                for n, e in enumerate(done, start=1)
                if e.validation is not None
            ],
            "test": [
                {"x": n, "y": e.test, "label": f"{self.idea_title(e.name)} ({e.kind}, seed {e.seed})"}
                for n, e in enumerate(done, start=1)
                if e.test is not None
            ],
        }

    def chart_json(self) -> str:
        return json.dumps(self.chart())


def code_file(research_id: str, code_ref: str, entrypoint: str) -> str:
    prefix = f"research/{research_id}/"
    if not code_ref.startswith(prefix) or not entrypoint:
        return ""
    return f"{code_ref.removeprefix(prefix).rstrip('/')}/{entrypoint}"


def build(research: research_pb2.Research, events: Iterable[tuple[int, events_pb2.Event]]) -> ResearchView:
    view = ResearchView(metric=research.plan.metric)
    for sequence, event in events:
        view.events += 1
        view.last_sequence = max(view.last_sequence, sequence)
        apply(view, sequence, event)
    return view


def apply(view: ResearchView, sequence: int, event: events_pb2.Event) -> None:
    kind = event.type
    if kind == "idea.proposed":
        proposed: events_pb2.IdeaProposed = body_of(event)
        for proposal in proposed.ideas:
            view.ideas[proposal.id] = IdeaView(
                proposal.id,
                proposal.title,
                proposal.change,
                proposed.round,
                steps=[techniques.Step.from_proto(s).described() for s in proposal.steps],
                evidence=proposal.evidence,
            )
    elif kind == "idea.reviewed":
        reviewed: events_pb2.IdeaReviewed = body_of(event)
        for review in reviewed.reviews:
            idea = view.ideas.setdefault(review.idea_id, IdeaView(review.idea_id, review.title))
            idea.title = idea.title or review.title
            idea.round = idea.round or reviewed.round
            idea.review = "approved" if review.approved else "rejected"
            idea.scores = {
                "clarity": review.clarity,
                "novelty": review.novelty,
                "feasibility": review.feasibility,
                "fit": review.alignment,
            }
            idea.reasons = list(review.reasons)
    elif kind == "code.requested":
        # The portfolio's ideas (a family from the catalog, no LLM) first appear here.
        asked: events_pb2.CodeRequested = body_of(event)
        if asked.HasField("idea") and asked.name not in view.ideas:
            title = asked.idea.title or asked.family or asked.name
            added = view.ideas[asked.name] = IdeaView(asked.name, title, asked.idea.change)
            if asked.family:
                added.review = "portfolio: no review (a strong family from the catalog)"
    elif kind in ("code.ready", "code.failed"):
        code: events_pb2.CodeOutcome = body_of(event)
        coded = view.ideas.get(code.name)
        if coded is not None:
            coded.code = CODE_WORDS.get(code.origin, "failed" if kind == "code.failed" else "")
            coded.code_attempts = code.attempts
            coded.code_problems = list(code.problems)
            coded.code_repairs = list(code.repairs)
    elif kind == "experiment.requested":
        requested: events_pb2.ExperimentRequested = body_of(event)
        if requested.kind == loop_pb2.EXPERIMENT_KIND_SMOKE:
            return
        config = json.loads(requested.spec.env.get("JOB_CONFIG", "{}") or "{}")
        view.experiments[requested.experiment_id] = ExperimentView(
            id=requested.experiment_id,
            name=requested.name,
            kind=enum_words(loop_pb2.ExperimentKind, requested.kind),
            params=config.get("params", {}),
            seed=config.get("seed"),
            sequence=sequence,
            code=code_file(event.research_id, requested.spec.code_ref, requested.spec.entrypoint),
        )
    elif kind in ("experiment.queued", "experiment.started"):
        moved = view.experiments.get(body_of(event).experiment_id)
        if moved is not None and moved.state not in ENDED:
            moved.state = kind.removeprefix("experiment.")
    elif kind in ("experiment.finished", "experiment.failed", "experiment.cancelled"):
        outcome: events_pb2.ExperimentOutcome = body_of(event)
        experiment = view.experiments.get(outcome.experiment_id)
        if experiment is None:
            return  # a smoke run's
        experiment.state = kind.removeprefix("experiment.")
        experiment.sequence = sequence
        experiment.seconds = outcome.run_seconds or outcome.duration_seconds or None
        experiment.reason = outcome.reason
        metric = view.metric
        if f"val_{metric}" in outcome.metrics:
            experiment.validation = outcome.metrics[f"val_{metric}"]
        if metric in outcome.metrics:
            experiment.test = outcome.metrics[metric]
