"""Turns a goal into a plan, or into questions for a person when it cannot be pinned down.

Plain rules over the dataset catalog: they are exact where the goal is explicit, and the plan records why
each choice was made. Input hints (dataset, metric, baseline) are checked here and rejected with the name
of the offending field (airlab_manager.checks)."""

from __future__ import annotations

import posixpath
import re
from collections.abc import MutableSequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from airlab.dataset_access import DataPlaces
from airlab.domain import MAX_PATH_CHARS, TEMPLATES, hidden_characters, is_system_path
from airlab.errors import InvalidArgument, shown
from airlab.settings import ResearchDefaults
from airlab.v1 import research_pb2
from airlab_manager.catalog import (
    BASELINES,
    METRICS,
    PYTORCH_WORDS,
    DatasetCatalog,
    DatasetSpec,
    baselines_mentioned,
    mentions,
    metrics_mentioned,
)
from airlab_manager.checks import check_budget, check_goal, check_hints


@dataclass
class PlanRequest:
    goal: str
    dataset: str = ""
    metric: str = ""
    baseline: str = ""
    budget: research_pb2.Budget = field(default_factory=research_pb2.Budget)
    allow_defaults: bool = False
    user_dataset: research_pb2.UserDataset = field(default_factory=research_pb2.UserDataset)
    until: research_pb2.StopRule = research_pb2.STOP_RULE_UNSPECIFIED
    template: str = ""

    @classmethod
    def of(cls, request: Any) -> PlanRequest:
        """From a StartResearchRequest or a PlanResearchRequest (they share these fields)."""
        return cls(
            goal=request.goal,
            dataset=request.dataset,
            metric=request.metric,
            baseline=request.baseline,
            budget=request.budget,
            allow_defaults=request.allow_defaults,
            user_dataset=request.user_dataset,
            until=request.until,
            template=request.template,
        )


# Goals that ask for the best result the budget can buy, not just a win over the baseline.
USE_BUDGET_WORDS = re.compile(
    r"as (good|high|low|accurate|well) as (possible|it gets|you can|we can)|\bmaximi[sz]e|\bminimi[sz]e|"
    r"\boptimi[sz]e|\bbest (possible|achievable|score|result|model)|\bbest [a-z0-9_ -]{0,30}"
    r"(you|we|i) can\b|\b(highest|lowest)\b|\bas much as\b|\bpush\b|\bstate of the art\b"
)


def stop_rule(
    goal: str, asked: research_pb2.StopRule, reasons: MutableSequence[str]
) -> research_pb2.StopRule:
    """What ends the research before its budget: the user's explicit choice, else the goal's words."""
    if asked != research_pb2.STOP_RULE_UNSPECIFIED:
        reasons.append(f"stop rule {_rule_words(asked)!r} was given explicitly")
        return asked
    found = USE_BUDGET_WORDS.search(goal.lower())
    if found:
        reasons.append(f"the goal asks for the best result ({found.group(0)!r}): the budget is used")
        return research_pb2.STOP_RULE_USE_BUDGET
    reasons.append("the goal asks to beat the baseline: the research stops at the first significant win")
    return research_pb2.STOP_RULE_BEAT_BASELINE


def _rule_words(rule: research_pb2.StopRule) -> str:
    return {research_pb2.STOP_RULE_BEAT_BASELINE: "beat", research_pb2.STOP_RULE_USE_BUDGET: "budget"}.get(
        rule, "?"
    )


class _Ask(Exception):
    """A choice the planner cannot make from the request: asked of a person instead."""

    def __init__(self, question: research_pb2.Question) -> None:
        super().__init__(question.text)
        self.question = question


@dataclass
class PlanOutcome:
    plan: research_pb2.Plan | None
    questions: list[research_pb2.Question]


def resolve_budget(budget: research_pb2.Budget, defaults: ResearchDefaults) -> research_pb2.Budget:
    return research_pb2.Budget(
        max_experiments=budget.max_experiments or defaults.max_experiments,
        max_wall_seconds=budget.max_wall_seconds or defaults.max_wall_seconds,
        max_tokens=budget.max_tokens or defaults.max_tokens,
        max_cost_usd=budget.max_cost_usd or defaults.max_cost_usd,
    )


# (metric, baseline) of a user's CSV file, and of a user's .npz file or image folder (PyTorch).
USER_DEFAULTS = {
    "classification": ("accuracy", "logistic_regression"),
    "regression": ("rmse", "linear_regression"),
}
USER_PYTORCH_DEFAULTS = {
    "classification": ("accuracy", "torch_mlp"),
    "regression": ("rmse", "torch_mlp"),
    "segmentation": ("dice", "unet"),
}


def user_dataset_spec(dataset: research_pb2.UserDataset) -> DatasetSpec:
    """The catalog entry of a user's dataset: a CSV table, or for PyTorch an .npz file of arrays x and y or
    an image folder (a folder per class; images/ and masks/ for segmentation). InvalidArgument naming the
    field when it cannot be one."""
    source, target, task = dataset.source.strip(), dataset.target.strip(), dataset.task.strip()
    if len(source) > MAX_PATH_CHARS or "\x00" in source:
        raise InvalidArgument(
            "user_dataset.source", f"must be at most {MAX_PATH_CHARS} characters, without NUL"
        )
    if hidden_characters(target) or len(target) > 200:
        raise InvalidArgument(
            "user_dataset.target", "must be a column name of at most 200 printable characters"
        )
    folder = source.endswith("/") or not PurePosixPath(source).suffix
    pytorch = source.lower().endswith(".npz") or folder
    if not (source.lower().endswith(".csv") or pytorch):
        raise InvalidArgument(
            "user_dataset.source", f"must name a .csv or .npz file or an image folder, got {shown(source)}"
        )
    source = source.rstrip("/") if folder else source
    if folder and source.startswith("s3://"):
        raise InvalidArgument(
            "user_dataset.source", "an image folder must be on the runner's host; on S3, use an .npz file"
        )
    if source.startswith("s3://"):
        bucket, _, key = source.removeprefix("s3://").partition("/")
        if not bucket or not key:
            raise InvalidArgument("user_dataset.source", "an S3 source is s3://BUCKET/KEY")
        if ".." in key.split("/"):
            raise InvalidArgument("user_dataset.source", "an S3 key must not have '..' segments")
    elif not source.startswith("/") or ".." in source.split("/"):
        raise InvalidArgument(
            "user_dataset.source",
            "must be an absolute path (on the runner's host) without '..' segments, or s3://BUCKET/KEY",
        )
    elif is_system_path(posixpath.normpath(source)):
        raise InvalidArgument(
            "user_dataset.source", f"{shown(source)} is a system path; datasets do not come from there"
        )
    defaults = USER_PYTORCH_DEFAULTS if pytorch else USER_DEFAULTS
    if not target and not pytorch:
        raise InvalidArgument("user_dataset.target", "is required: the name of the label column")
    if task not in defaults:
        raise InvalidArgument("user_dataset.task", f"must be {' or '.join(defaults)}, got {task!r}")
    metric, baseline = defaults[task]
    name = re.sub(r"[^a-z0-9_]+", "_", PurePosixPath(source).stem.lower()).strip("_") or "user_dataset"
    return DatasetSpec(name=name, task=task, metric=metric, baseline=baseline, source=source, target=target)


class Planner:
    def __init__(
        self, catalog: DatasetCatalog, defaults: ResearchDefaults, places: DataPlaces | None = None
    ) -> None:
        self.catalog = catalog
        self.defaults = defaults
        # Where the lab keeps its own files and where datasets may come from (none: no such places).
        self.places = places or DataPlaces()

    def check(self, request: PlanRequest, owner: str) -> None:
        """InvalidArgument naming the field for anything the request cannot be planned from, a dataset its
        `owner` may not read included."""
        check_goal(request.goal)
        check_budget(request.budget)
        if request.until not in research_pb2.StopRule.values():
            raise InvalidArgument("until", f"unknown stop rule {request.until}")
        if request.template and request.template not in TEMPLATES:
            raise InvalidArgument(
                "template", f"unknown job template {request.template!r}; known: {', '.join(TEMPLATES)}"
            )
        seeds = len(self.defaults.seeds)
        if 0 < request.budget.max_experiments < seeds:
            raise InvalidArgument(
                "budget.max_experiments",
                f"must cover at least the baseline's {seeds} runs (one per seed), "
                f"got {request.budget.max_experiments}",
            )
        if (
            request.template
            and request.baseline in BASELINES
            and BASELINES[request.baseline].template != request.template
        ):
            raise InvalidArgument("baseline", f"{request.baseline!r} is not a {request.template} model")
        user_spec = user_dataset_spec(request.user_dataset) if request.user_dataset.source else None
        if user_spec is not None:
            self.places.check("user_dataset.source", user_spec.source or "", owner)
        known = user_spec or self.catalog.datasets.get(request.dataset)
        if request.template and known is not None and request.template not in known.templates:
            raise InvalidArgument(
                "template", f"the {request.template} job template cannot load {known.name!r}; "
                f"it is for: {', '.join(known.templates)}",
            )  # fmt: skip
        if known is not None and request.baseline in BASELINES:
            family = BASELINES[request.baseline]
            if family.template not in known.templates:
                raise InvalidArgument(
                    "baseline", f"{request.baseline!r} is a {family.template} model; {known.name!r} is for: "
                    f"{', '.join(known.templates)}",
                )  # fmt: skip
        if user_spec is not None:
            spec = user_spec
            if request.metric and (
                request.metric not in METRICS or spec.task not in METRICS[request.metric].tasks
            ):
                raise InvalidArgument("metric", f"{request.metric!r} does not fit a {spec.task} dataset")
            if request.baseline and (
                request.baseline not in BASELINES or spec.task not in BASELINES[request.baseline].tasks
            ):
                raise InvalidArgument("baseline", f"{request.baseline!r} does not fit a {spec.task} dataset")
            return
        check_hints(self.catalog, request.dataset, request.metric, request.baseline)

    def plan(self, request: PlanRequest) -> PlanOutcome:
        reasons: list[str] = []
        spec = self._dataset(request, reasons)
        if isinstance(spec, research_pb2.Question):
            return PlanOutcome(None, [spec])
        metric = self._metric(request, spec, reasons)
        if isinstance(metric, research_pb2.Question):
            return PlanOutcome(None, [metric])
        try:
            template = self._template(request, spec, reasons)
            baseline = self._baseline(request, spec, template, reasons)
        except _Ask as asked:
            return PlanOutcome(None, [asked.question])
        plan = research_pb2.Plan(
            dataset_source=spec.source or "",
            dataset_target=spec.target or "",
            dataset=spec.name,
            task=spec.task,
            metric=metric,
            direction=METRICS[metric].direction,
            baseline=baseline,
            seeds=self.defaults.seeds,
            test_fraction=self.defaults.test_fraction,
            budget=resolve_budget(request.budget, self.defaults),
            reasons=reasons,
            template=template,
        )
        if template == "pytorch" and self.defaults.experiment_gpus:
            plan.gpus = self.defaults.experiment_gpus
            plan.reasons.append(f"each experiment asks the runner for {plan.gpus} GPU(s)")
        plan.until = stop_rule(request.goal, request.until, plan.reasons)
        plan.reasons.append(
            f"evaluated over seeds {list(plan.seeds)} on a held-out {plan.test_fraction:.0%} split"
        )
        return PlanOutcome(plan, [])

    def _dataset(self, request: PlanRequest, reasons: list[str]) -> DatasetSpec | research_pb2.Question:
        if request.user_dataset.source:
            spec = user_dataset_spec(request.user_dataset)
            reasons.append(
                f"the user's dataset {spec.source} ({spec.task}, label column {spec.target!r}) "
                "was given explicitly"
            )
            return spec
        if request.dataset:
            reasons.append(f"dataset {request.dataset!r} was given explicitly")
            return self.catalog.datasets[request.dataset]
        named = self.catalog.mentioned_in(request.goal)
        if len(named) == 1:
            reasons.append(f"dataset {named[0]!r} is named in the goal")
            return self.catalog.datasets[named[0]]
        if request.allow_defaults:
            choice = named[0] if named else self.catalog.default
            why = (
                f"the goal names several datasets ({', '.join(named)})"
                if named
                else "the goal names no dataset"
            )
            reasons.append(f"{why}; assumed {choice!r} because defaults were allowed")
            return self.catalog.datasets[choice]
        options = named or self.catalog.names()
        text = (
            f"The goal names several datasets ({', '.join(named)}): which one should be used?"
            if named
            else "The goal names no dataset I know: which dataset should be used?"
        )
        return research_pb2.Question(key="dataset", text=text, options=options)

    def _metric(
        self, request: PlanRequest, spec: DatasetSpec, reasons: list[str]
    ) -> str | research_pb2.Question:
        if request.metric:
            reasons.append(f"metric {request.metric!r} was given explicitly")
            return request.metric
        named = metrics_mentioned(request.goal)
        fitting = [m for m in named if spec.task in METRICS[m].tasks]
        if fitting:
            reasons.append(f"metric {fitting[0]!r} is named in the goal")
            return fitting[0]
        if named and not request.allow_defaults:
            options = [m for m in METRICS if spec.task in METRICS[m].tasks]
            return research_pb2.Question(
                key="metric",
                text=f"The goal names {', '.join(named)}, which does not fit {spec.name!r} ({spec.task}): "
                "which metric?",
                options=options,
            )
        reasons.append(f"metric {spec.metric!r} is the default of {spec.name!r}")
        return spec.metric

    def _template(self, request: PlanRequest, spec: DatasetSpec, reasons: list[str]) -> str:
        """scikit-learn or PyTorch: as asked, else as the dataset allows, the baseline or the goal's words."""
        offered = spec.templates
        if request.template:
            if request.template not in offered:
                raise _Ask(research_pb2.Question(
                    key="template",
                    text=f"{spec.name!r} cannot be loaded by the {request.template} job template: which one?",
                    options=offered,
                ))  # fmt: skip
            reasons.append(f"job template {request.template!r} was given explicitly")
            return request.template
        if len(offered) == 1:
            if offered[0] == "pytorch":
                reasons.append(f"{spec.name!r} is a {spec.task} dataset the PyTorch job template loads")
            return offered[0]
        if request.baseline in BASELINES and BASELINES[request.baseline].template in offered:
            chosen = BASELINES[request.baseline].template
            if chosen == "pytorch":
                reasons.append(f"the baseline {request.baseline!r} is a PyTorch network")
            return chosen
        # A network family named by words no scikit-learn family also answers to ("cnn", "u-net"; not "mlp").
        sklearn_words = {
            word for f in BASELINES.values() if f.template == "sklearn" for word in (f.name, *f.aliases)
        }
        networks = [
            name for name, family in BASELINES.items()
            if family.template == "pytorch" and spec.task in family.tasks
            and mentions(request.goal, [w for w in (name, *family.aliases) if w not in sklearn_words])
        ]  # fmt: skip
        words = [w for w in PYTORCH_WORDS if mentions(request.goal, (w,))]
        if "pytorch" in offered and (networks or words):
            named = (networks or words)[0]
            reasons.append(f"the goal names {named!r}: the research trains PyTorch networks")
            return "pytorch"
        return offered[0]

    def _baseline(self, request: PlanRequest, spec: DatasetSpec, template: str, reasons: list[str]) -> str:
        if request.baseline:
            if BASELINES[request.baseline].template != template:
                fitting = [b for b, f in BASELINES.items() if f.template == template and spec.task in f.tasks]
                raise _Ask(research_pb2.Question(
                    key="baseline",
                    text=f"{request.baseline!r} is not a {template} model: which baseline should be used?",
                    options=fitting,
                ))  # fmt: skip
            reasons.append(f"baseline {request.baseline!r} was given explicitly")
            return request.baseline
        # "with a CNN", "using a U-Net" name the method tried, not the baseline.
        as_method = re.sub(r"\b(with|using|via|by) (an? |the )?[\w -]{1,40}", " ", request.goal.lower())
        fitting = [
            b for b in baselines_mentioned(as_method)
            if spec.task in BASELINES[b].tasks and BASELINES[b].template == template
        ]  # fmt: skip
        if fitting:
            reasons.append(f"baseline {fitting[0]!r} is named in the goal")
            return fitting[0]
        default = spec.baseline_for(template)
        reasons.append(f"baseline {default!r} is the default of {spec.name!r}")
        return default
