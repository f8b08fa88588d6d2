"""The coder's work as data: a task (an idea, the plan's baseline, a catalog family or an improve step),
its outcome, one tried draft, and the smoke runner it asks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from airlab import experiments
from airlab.llm.accounting import Budget
from airlab.v1 import idea_pb2, loop_pb2, runner_pb2

BASELINE = "baseline"
MAX_ATTEMPTS = 10
DEFAULT_ATTEMPTS = 3


@dataclass
class CodeTask:
    research_id: str
    # The idea's id, or "baseline" for the plan's baseline (no LLM involved).
    name: str
    job_config: loop_pb2.JobConfig
    idea: idea_pb2.Idea | None = None
    max_attempts: int = DEFAULT_ATTEMPTS
    budget: Budget | None = None
    # Read-only dataset mounts every run of the research gets.
    mounts: list[runner_pb2.DatasetMount] = field(default_factory=list)
    # A model family of the domain catalog: built from the template's registry, no LLM.
    family: str = ""
    # An improve step: the code to improve (artifact prefix) and how it did, one line each.
    base_code_ref: str = ""
    base_results: list[str] = field(default_factory=list)


@dataclass
class CodeOutcome:
    ok: bool
    code_ref: str
    attempts: int
    problems: list[str] = field(default_factory=list)
    origin: loop_pb2.CodeOrigin = loop_pb2.CODE_ORIGIN_UNSPECIFIED
    sha256: str = ""
    # What the coder itself changed in the model's code that passed, and why (api_check, networks).
    repairs: list[str] = field(default_factory=list)
    # Searched hyperparameters the code that passed does not read: the search leaves them out.
    unsearched: list[str] = field(default_factory=list)

    @property
    def entrypoint(self) -> str:
        return experiments.CODE_FILE


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
