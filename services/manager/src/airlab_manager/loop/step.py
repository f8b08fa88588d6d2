"""What every transition of the research loop works on: a Step holds the research, its loop state, the
event that caused the step and what was looked up for it; transitions change the state in place and
append the events to publish and the memories to write. A phase that reaches a point where the loop must
choose what comes next says so (`then_decide`) and returns: the policy (loop.policy) chooses, once the
phase is done. Nothing here does I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message

from airlab.domain import title_key
from airlab.enums import enum_words
from airlab.events import make_event
from airlab.ids import derived_id
from airlab.settings import ResearchDefaults
from airlab.strategy import Strategy
from airlab.v1 import events_pb2, idea_pb2, loop_pb2, research_pb2
from airlab_manager.catalog import DatasetCatalog
from airlab_manager.loop.idea_review import Novelty

BASELINE = "baseline"
Phase = loop_pb2.LoopPhase
Status = loop_pb2.IdeaStatus
Kind = loop_pb2.ExperimentKind
RunState = loop_pb2.ExperimentState
REQUESTED = loop_pb2.EXPERIMENT_STATE_REQUESTED
FINISHED = loop_pb2.EXPERIMENT_STATE_FINISHED
FAILED = loop_pb2.EXPERIMENT_STATE_FAILED
# Ideas of the idea agent: the LLM's, or in the profile-only preset the data profile's measured steps,
# searched, raced and built on alike (so the two presets differ only in who chose the steps).
PROPOSED = (loop_pb2.IDEA_ORIGIN_LLM, loop_pb2.IDEA_ORIGIN_PROFILE)


@dataclass(frozen=True)
class LoopConfig:
    """What the loop's rules are for this manager: fixed for its lifetime."""

    rules: ResearchDefaults
    catalog: DatasetCatalog
    source: str = "manager"


@dataclass
class StepContext:
    """What a step needs that comes from outside the record (looked up before the compare-and-set)."""

    now: float
    tokens: int = 0
    cost_usd: float = 0.0
    llm_seconds: float = 0.0
    novelty: dict[str, Novelty] = field(default_factory=dict)
    recalled: list[str] = field(default_factory=list)
    # TPE's proposals made while handling this event, by their inputs: a compare-and-set retry of the same
    # event (another write came first) reuses a proposal whose inputs did not change, instead of running
    # the study again.
    proposals: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Memory:
    """Something the lab should remember after the step: an idea tried, a lesson learnt."""

    kind: str
    text: str
    payload: dict[str, str | bool]
    key: str


def idea_memory(plan: research_pb2.Plan, research_id: str, idea: idea_pb2.Idea) -> Memory:
    """An approved idea, remembered so later ideas close to it are told apart as near-copies."""
    payload: dict[str, str | bool] = {
        "dataset": plan.dataset,
        "research_id": research_id,
        "idea_id": idea.id,
        "title": idea.title,
    }
    return Memory("idea", f"{idea.title}: {idea.change}", payload, idea.id)


@dataclass
class Step:
    research: research_pb2.Research
    loop: loop_pb2.ResearchLoop
    cause: events_pb2.Event
    context: StepContext
    config: LoopConfig
    events: list[events_pb2.Event] = field(default_factory=list)
    memories: list[Memory] = field(default_factory=list)
    # Set by a phase that ended where the loop must choose its next step; the policy then chooses.
    decision_due: bool = False

    def then_decide(self) -> None:
        """Have the policy choose the next step once this phase returns (phases never call forward)."""
        self.decision_due = True

    def take_decision(self) -> bool:
        """Whether a decision is due (and it is taken now): the transitions' driver asks after each phase."""
        due, self.decision_due = self.decision_due, False
        return due

    @property
    def plan(self) -> research_pb2.Plan:
        return self.research.plan

    @property
    def rules(self) -> ResearchDefaults:
        return self.config.rules

    @property
    def strategy(self) -> Strategy:
        """How the loop spends the budget (airlab.strategy): the policy's knobs."""
        return self.config.rules.strategy

    @property
    def maximize(self) -> bool:
        return self.plan.direction == research_pb2.METRIC_DIRECTION_MAXIMIZE

    def emit(self, event_type: str, body: Message) -> None:
        # Derived from the cause and the event's place in the step: the same step always names its events
        # the same (so publishing them again is deduplicated), and ids stay short however long the chain.
        event_id = derived_id("e", f"{self.cause.id}:{event_type}:{len(self.events)}")
        self.events.append(
            make_event(
                event_type,
                self.research.id,
                body,
                event_id=event_id,
                correlation_id=self.cause.id,
                source=self.config.source,
            )
        )


def find_idea(loop: loop_pb2.ResearchLoop, idea_id: str) -> loop_pb2.LoopIdea | None:
    return next((i for i in loop.ideas if i.idea.id == idea_id), None)


def find_experiment(loop: loop_pb2.ResearchLoop, experiment_id: str) -> loop_pb2.LoopExperiment | None:
    return next((x for x in loop.experiments if x.id == experiment_id), None)


def experiments_of(loop: loop_pb2.ResearchLoop, ids: Iterable[str]) -> list[loop_pb2.LoopExperiment]:
    """The experiments named by `ids`, in that order."""
    by_id = {x.id: x for x in loop.experiments}
    return [by_id[i] for i in ids if i in by_id]


def all_done(loop: loop_pb2.ResearchLoop, ids: Iterable[str]) -> bool:
    return all(x.state != REQUESTED for x in experiments_of(loop, ids))


def tried_titles(loop: loop_pb2.ResearchLoop) -> list[str]:
    """Titles an idea must not repeat: every idea of the research except those rejected in review."""
    return [i.idea.title for i in loop.ideas if i.status != loop_pb2.IDEA_STATUS_REJECTED]


def is_tried(loop: loop_pb2.ResearchLoop, title: str) -> bool:
    return title_key(title) in {title_key(t) for t in tried_titles(loop)}


def summary_of(idea: loop_pb2.LoopIdea) -> str:
    """One line on how an idea did, for the idea agent and memory."""
    title = idea.idea.title
    if idea.HasField("evaluation"):
        e = idea.evaluation
        verdict = (
            "a significant gain"
            if e.significant
            else "suggestive, not significant"
            if e.suggestive
            else "no significant gain"
        )
        return (
            f"{title}: {e.mean:.4f} ± {e.std:.4f} against the baseline's "
            f"{e.baseline_mean:.4f} ± {e.baseline_std:.4f}: {verdict}"
        )
    if idea.status == loop_pb2.IDEA_STATUS_REJECTED:
        return f"{title}: rejected in review ({'; '.join(idea.review.reasons)})"
    if idea.status == loop_pb2.IDEA_STATUS_FAILED:
        return f"{title}: failed ({idea.failure[:300]})"
    if idea.status == loop_pb2.IDEA_STATUS_NOT_BETTER:
        return f"{title}: not better ({idea.failure[:300]})"
    return f"{title}: {enum_words(loop_pb2.IdeaStatus, idea.status)}"
