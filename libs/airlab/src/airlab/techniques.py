"""The technique catalog: feature steps an idea composes as data, and the data profile they refer to.

An idea for a table can be a list of steps (a ratio of two named columns, days between two dates, keywords
in a text column, a group mean, ...) plus a model family. The platform compiles it into the sklearn job
template (its FEATURES list), so any well-formed idea runs, whatever model proposed it. What each step
takes is read from the template itself (its STEP_COLUMNS), the one place that executes the steps.

The data profile is what the baseline's runs measured of the table on their training part (result.json's
"profile"): the idea agent gets it in its prompt, and its proposals are checked against it, so a step on a
column that does not exist, or of the wrong kind, is refused with a message the model gets back."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from airlab.job_templates import template_source
from airlab.v1 import idea_pb2

TEMPLATE = "sklearn_train_template.py"
FEATURES_BEGIN, FEATURES_END = "# <airlab:features>", "# </airlab:features>"
MAX_STEPS = 6
MAX_WORDS = 20
# The profile's lines in a prompt stop after this many characters (about 500 tokens).
PROFILE_PROMPT_CHARS = 2000
ColumnKind = Literal["number", "category", "date", "text", "identifier"]


@cache
def _template_constant(name: str) -> dict[str, tuple[str, ...]]:
    for node in ast.parse(template_source(TEMPLATE)).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return {str(k): tuple(v) for k, v in ast.literal_eval(node.value).items()}
    raise RuntimeError(f"{TEMPLATE} defines no {name}")


def step_columns() -> dict[str, tuple[str, ...]]:
    """Each step kind and the kinds of column it takes, as the sklearn template defines them."""
    return _template_constant("STEP_COLUMNS")


def step_fits() -> dict[str, tuple[str, ...]]:
    """What a column of each kind may stand for in a step (a date is a number of days)."""
    return _template_constant("STEP_FITS")


def technique_of(kind: str) -> idea_pb2.Technique:
    return idea_pb2.Technique.Value(f"TECHNIQUE_{kind.upper()}")


def kind_of(technique: idea_pb2.Technique) -> str:
    return idea_pb2.Technique.Name(technique).removeprefix("TECHNIQUE_").lower()


class ProfileColumn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(max_length=200)
    kind: ColumnKind
    missing: float = 0.0
    distinct: int = 0
    examples: list[str] = Field(default_factory=list, max_length=5)
    low: float | str | None = None
    median: float | str | None = None
    high: float | str | None = None
    # Mutual information with the label (nats) on the training part; none for text.
    association: float | None = None
    # How much the baseline's validation score dropped when the column was shuffled.
    importance: float | None = None
    note: str = ""


class DataProfile(BaseModel):
    """What the baseline's first run measured of the table, from its training part only."""

    model_config = ConfigDict(extra="ignore")

    rows: int = 0
    columns: list[ProfileColumn] = Field(default_factory=list, max_length=2000)
    label: dict[str, Any] = Field(default_factory=dict)

    def usable(self) -> list[ProfileColumn]:
        return [c for c in self.columns if c.kind != "identifier"]

    def kinds(self) -> dict[str, str]:
        return {c.name: c.kind for c in self.usable()}

    def prompt_lines(self, limit: int = PROFILE_PROMPT_CHARS) -> list[str]:
        """One line per column, the most telling first (by importance, then association), then the
        label's; cut at `limit` characters with a line saying how many were left out."""
        ranked = sorted(
            self.columns,
            key=lambda c: (c.kind == "identifier", -(c.importance or 0.0), -(c.association or 0.0)),
        )
        lines = [f"label {self.label.get('name', '')!r}: {_label_line(self.label)}"]
        used = len(lines[0])
        for index, column in enumerate(ranked):
            line = _column_line(column)
            if used + len(line) > limit:
                lines.append(f"... and {len(ranked) - index} more column(s)")
                break
            lines.append(line)
            used += len(line)
        return lines


def _label_line(label: dict[str, Any]) -> str:
    if "balance" in label:
        shares = ", ".join(f"class {k}: {float(v):.0%}" for k, v in dict(label["balance"]).items())
        recall = label.get("recall") or {}
        per_class = ", ".join(f"{k}: {float(v):.2f}" for k, v in recall.items())
        told = f"; the baseline's recall per class: {per_class}"
        return f"{shares}{told if recall else ''}"
    parts = [f"{k} {float(label[k]):.4g}" for k in ("mean", "std", "low", "high") if k in label]
    return ", ".join(parts)


def _column_line(column: ProfileColumn) -> str:
    if column.kind == "identifier":
        return f"{column.name!r} (identifier, dropped)"
    facts = [column.kind]
    if column.missing:
        facts.append(f"{column.missing:.0%} missing")
    facts.append(f"{column.distinct} distinct")
    if column.low is not None and column.high is not None:
        facts.append(f"from {_short(column.low)} to {_short(column.high)}")
    if column.examples and column.kind in ("category", "text"):
        facts.append("e.g. " + " | ".join(e[:30] for e in column.examples[:3]))
    if column.association is not None:
        facts.append(f"mutual information {column.association:.3f}")
    if column.importance is not None:
        facts.append(f"baseline importance {column.importance:.3f}")
    return f"{column.name!r}: " + ", ".join(facts)


def _short(value: float | str) -> str:
    return f"{value:.4g}" if isinstance(value, float | int) else str(value)


def step_problem(kind: str, columns: Sequence[str], kinds: dict[str, str], words: Sequence[str] = ()) -> str:
    """Why a step cannot run on a table whose usable columns have these kinds; "" when it can."""
    catalog = step_columns()
    if kind not in catalog:
        return f"unknown step kind {kind!r}; known: {', '.join(catalog)}"
    wanted = catalog[kind]
    if len(columns) != len(wanted):
        needs = " and ".join(wanted) if wanted else "no"
        return f"{kind} takes {len(wanted)} column(s) ({needs}), got {list(columns)}"
    for name, must in zip(columns, wanted, strict=True):
        found = kinds.get(name)
        if found is None:
            return f"{kind}: no usable column {name!r}; the columns are {', '.join(kinds)}"
        if found not in step_fits()[must]:
            return f"{kind}: column {name!r} is {found}, the step needs {must}"
    if kind in ("ratio", "difference", "product", "date_difference") and columns[0] == columns[1]:
        return f"{kind} of {columns[0]!r} with itself"
    if kind == "keywords" and not [w for w in words if w.strip()]:
        return "keywords: name at least one word to look for"
    return ""


def proposal_step_model(profile: DataProfile) -> type[BaseModel]:
    """A step as the idea agent's model writes it, with the table's column names as its only choices (so
    constrained decoding cannot name a column that does not exist) and checked against their kinds."""
    kinds = profile.kinds()
    names = tuple(kinds) or ("",)
    column = Literal[names]  # type: ignore[valid-type]
    step_kind = Literal[tuple(step_columns())]  # type: ignore[valid-type]

    def _fits(step: Any) -> Any:
        problem = step_problem(step.kind, step.columns, kinds, step.words)
        if problem:
            raise ValueError(problem)
        return step

    return create_model(
        "FeatureStepProposal",
        kind=(step_kind, Field(description="the technique: " + ", ".join(step_columns()))),
        columns=(list[column], Field(default_factory=list, max_length=2, description="the columns it uses")),
        value=(float, Field(default=0.0, description="a power's exponent or a number of bins; 0: default")),
        words=(list[str], Field(default_factory=list, max_length=MAX_WORDS, description="keywords only")),
        __validators__={"fits": model_validator(mode="after")(_fits)},
    )


class Step(BaseModel):
    """A checked step, as stored and compiled."""

    kind: str
    columns: list[str] = Field(default_factory=list)
    value: float = 0.0
    words: list[str] = Field(default_factory=list)

    @field_validator("words")
    @classmethod
    def _bounded(cls, words: list[str]) -> list[str]:
        return [w.strip()[:40] for w in words if w.strip()][:MAX_WORDS]

    def to_proto(self) -> idea_pb2.FeatureStep:
        return idea_pb2.FeatureStep(
            technique=technique_of(self.kind), columns=self.columns, value=self.value, words=self.words
        )

    @classmethod
    def from_proto(cls, step: idea_pb2.FeatureStep) -> Step:
        return cls(
            kind=kind_of(step.technique), columns=list(step.columns), value=step.value, words=list(step.words)
        )

    def described(self) -> str:
        """The step in words, e.g. "ratio of debt and income"."""
        if not self.columns:
            return self.kind.replace("_", " ")
        text = f"{self.kind.replace('_', ' ')} of {' and '.join(self.columns)}"
        if self.words:
            text += f" ({', '.join(self.words)})"
        if self.value:
            text += f" ({self.value:g})"
        return text


def features_source(steps: Sequence[idea_pb2.FeatureStep]) -> str:
    """The FEATURES assignment that compiles the steps into the template: a Python literal of plain dicts
    (every string written by repr, so no column name or word can become code)."""
    plain = []
    for proto in steps:
        step = Step.from_proto(proto)
        entry: dict[str, Any] = {"kind": step.kind, "columns": step.columns}
        if step.value:
            entry["value"] = float(step.value)
        if step.words:
            entry["words"] = step.words
        plain.append(entry)
    return f"FEATURES: list = {plain!r}"


def with_features(source: str, steps: Sequence[idea_pb2.FeatureStep]) -> str:
    """The template's source with its FEATURES region holding `steps` (unchanged when there are none)."""
    if not steps:
        return source
    start, end = source.index(FEATURES_BEGIN), source.index(FEATURES_END)
    region = source[start:end]
    kept = [line for line in region.splitlines() if line.startswith("#")]
    return source[:start] + "\n".join([*kept, features_source(steps)]) + "\n" + source[end:]
