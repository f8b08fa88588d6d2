"""The coder's work as data: a task (an idea, the plan's baseline, a catalog family or an improve step) as
its request event's message, the outcome as the reply's (events.proto CodeOutcome), one tried draft, and
the smoke runner it asks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from airlab.llm.accounting import Budget
from airlab.v1 import events_pb2, idea_pb2, runner_pb2

MAX_ATTEMPTS = 10
DEFAULT_ATTEMPTS = 3


@dataclass(frozen=True)
class CodeTask:
    """What the coder is asked (the code.requested event's own message) and the research it is for."""

    research_id: str
    request: events_pb2.CodeRequested

    @property
    def idea(self) -> idea_pb2.Idea | None:
        """The idea to code; None for the plan's baseline (the template as it is, no LLM)."""
        return self.request.idea if self.request.HasField("idea") else None

    @property
    def budget(self) -> Budget:
        """The research's LLM budget for this task (0: no limit)."""
        return Budget(self.request.budget.max_tokens, self.request.budget.max_cost_usd)


def succeeded(outcome: events_pb2.CodeOutcome) -> bool:
    """Whether the outcome carries code that passed its checks and smoke run."""
    return bool(outcome.code_ref)


@dataclass
class Tried:
    """One draft after its checks and smoke run."""

    ok: bool
    # The function as checked (with the coder's repairs), or the draft when it could not be read.
    function: str
    problems: list[str]
    repairs: list[str] = field(default_factory=list)
    # Searched hyperparameters the draft does not read (a problem, or left out of the search).
    unread: list[str] = field(default_factory=list)
    unsearched: list[str] = field(default_factory=list)


@dataclass
class SmokeResult:
    ok: bool
    detail: str = ""


class SmokeRunner(Protocol):
    async def run(
        self,
        research_id: str,
        experiment_id: str,
        code_ref: str,
        config: dict[str, Any],
        mounts: list[runner_pb2.DatasetMount],
    ) -> SmokeResult: ...
