"""What a research page shows, rebuilt from the research's record and its event stream (replayed from the
start, so a reload shows everything): the ideas with their reviews and code origin, and every experiment
with its parameters, scores, duration and state. Each row holds the loop's own messages (the idea, its
review, the coder's outcome, the experiment's request and outcome); the page reads them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from airlab import experiments, techniques
from airlab.enums import CODE_WORDS, enum_words
from airlab.events import body_of
from airlab.v1 import events_pb2, idea_pb2, loop_pb2, manager_pb2, research_pb2

BASELINE = "baseline"
ENDED = ("finished", "failed", "cancelled")


@dataclass
class IdeaRow:
    """One idea as the loop's own messages tell it: proposed (or first asked to be coded, for the
    portfolio's), reviewed, coded. The page reads the messages; nothing of them is copied."""

    idea: idea_pb2.Idea
    round: int = 0
    review: manager_pb2.IdeaReview | None = None
    code: events_pb2.CodeOutcome | None = None
    code_failed: bool = False
    portfolio: bool = False  # a strong family from the catalog: coded from the registry, never reviewed

    @property
    def title(self) -> str:
        return self.idea.title or self.idea.family or self.idea.id

    @property
    def verdict(self) -> str:
        if self.review is not None:
            return "approved" if self.review.approved else "rejected"
        if self.portfolio:
            return "portfolio: no review (a strong family from the catalog)"
        return ""

    @property
    def scores(self) -> dict[str, float]:
        if self.review is None:
            return {}
        r = self.review
        return {"clarity": r.clarity, "novelty": r.novelty, "feasibility": r.feasibility, "fit": r.alignment}

    @property
    def steps(self) -> list[str]:
        """A feature idea's steps of the technique catalog, in words."""
        return [techniques.Step.from_proto(s).described() for s in self.idea.steps]

    @property
    def coded_by(self) -> str:
        """Who wrote the code that ran, in words ("failed" when no code passed)."""
        if self.code is None:
            return ""
        return CODE_WORDS.get(self.code.origin, "failed" if self.code_failed else "")


@dataclass
class ExperimentRow:
    """One experiment: the request the loop sent and, once it ended, the runner's outcome."""

    requested: events_pb2.ExperimentRequested
    research_id: str
    sequence: int = 0
    state: str = "requested"
    outcome: events_pb2.ExperimentOutcome | None = None

    @property
    def id(self) -> str:
        return self.requested.experiment_id

    @property
    def kind(self) -> str:
        return enum_words(loop_pb2.ExperimentKind, self.requested.kind)

    @property
    def params(self) -> dict[str, experiments.Param]:
        return experiments.plain_params(self.requested.params)

    @property
    def seconds(self) -> float | None:
        if self.outcome is None:
            return None
        return self.outcome.run_seconds or self.outcome.duration_seconds or None

    def score(self, metric: str) -> float | None:
        """The held-out test score (`metric`), or the validation score (`val_<metric>`), if reported."""
        if self.outcome is None or metric not in self.outcome.metrics:
            return None
        return self.outcome.metrics[metric]

    @property
    def code(self) -> str:
        """The code that ran, as a key inside the research's artifacts ("code/<idea>/final/train.py")."""
        return code_file(self.research_id, self.requested.spec.code_ref, self.requested.spec.entrypoint)


@dataclass
class ResearchView:
    metric: str
    ideas: dict[str, IdeaRow] = field(default_factory=dict)
    experiments: dict[str, ExperimentRow] = field(default_factory=dict)
    last_sequence: int = 0
    events: int = 0
    # The research's related work as the idea agent first found it, and what became of the search.
    related_work: list[idea_pb2.Paper] = field(default_factory=list)
    related_work_status: str = ""

    def paper_link(self, paper: idea_pb2.Paper) -> str:
        """An http(s) address for the paper ("" for none: a page links nothing else)."""
        if paper.url.startswith(("https://", "http://")):
            return paper.url
        return f"https://doi.org/{paper.doi}" if paper.doi else ""

    def idea_title(self, name: str) -> str:
        if name == BASELINE:
            return BASELINE
        idea = self.ideas.get(name)
        return idea.title if idea else name

    def validation(self, experiment: ExperimentRow) -> float | None:
        return experiment.score(f"val_{self.metric}")

    def test(self, experiment: ExperimentRow) -> float | None:
        return experiment.score(self.metric)

    def chart(self) -> dict[str, object]:
        """Validation and test scores per experiment, in the order they finished (plotly traces' data)."""
        done = sorted(
            (e for e in self.experiments.values() if e.state == "finished"), key=lambda e: e.sequence
        )
        return {
            "metric": self.metric,
            "validation": [
                {"x": n, "y": self.validation(e), "label": f"{self.idea_title(e.requested.name)} ({e.kind})"}
                for n, e in enumerate(done, start=1)
                if self.validation(e) is not None
            ],
            "test": [
                {
                    "x": n,
                    "y": self.test(e),
                    "label": f"{self.idea_title(e.requested.name)} ({e.kind}, seed {e.requested.seed})",
                }
                for n, e in enumerate(done, start=1)
                if self.test(e) is not None
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
        if proposed.related_work_status and not view.related_work_status:
            view.related_work[:] = proposed.related_work
            view.related_work_status = proposed.related_work_status
        for idea in proposed.ideas:
            view.ideas[idea.id] = IdeaRow(idea, proposed.round)
    elif kind == "idea.reviewed":
        reviewed: events_pb2.IdeaReviewed = body_of(event)
        for review in reviewed.reviews:
            unseen = IdeaRow(idea_pb2.Idea(id=review.idea_id, title=review.title), reviewed.round)
            view.ideas.setdefault(review.idea_id, unseen).review = review
    elif kind == "code.requested":
        # The portfolio's ideas (a family from the catalog, no LLM) first appear here.
        asked: events_pb2.CodeRequested = body_of(event)
        if asked.HasField("idea") and asked.name not in view.ideas:
            idea = idea_pb2.Idea()
            idea.CopyFrom(asked.idea)
            idea.id, idea.family = asked.name, idea.family or asked.family
            view.ideas[asked.name] = IdeaRow(idea, portfolio=bool(asked.family))
    elif kind in ("code.ready", "code.failed"):
        code: events_pb2.CodeOutcome = body_of(event)
        coded = view.ideas.get(code.name)
        if coded is not None:
            coded.code, coded.code_failed = code, kind == "code.failed"
    elif kind == "experiment.requested":
        requested: events_pb2.ExperimentRequested = body_of(event)
        if requested.kind != loop_pb2.EXPERIMENT_KIND_SMOKE:
            view.experiments[requested.experiment_id] = ExperimentRow(requested, event.research_id, sequence)
    elif kind in ("experiment.queued", "experiment.started"):
        moved = view.experiments.get(body_of(event).experiment_id)
        if moved is not None and moved.state not in ENDED:
            moved.state = kind.removeprefix("experiment.")
    elif kind in ("experiment.finished", "experiment.failed", "experiment.cancelled"):
        outcome: events_pb2.ExperimentOutcome = body_of(event)
        experiment = view.experiments.get(outcome.experiment_id)
        if experiment is not None:  # None: a smoke run's
            experiment.state, experiment.sequence = kind.removeprefix("experiment."), sequence
            experiment.outcome = outcome
