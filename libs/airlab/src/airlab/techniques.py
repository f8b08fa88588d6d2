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
import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, Literal, Union, cast

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

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
    return cast(idea_pb2.Technique, idea_pb2.Technique.Value(f"TECHNIQUE_{kind.upper()}"))


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


class MeasuredStep(BaseModel):
    """A derived feature the profile measured: a step's column, its mutual information with the label
    (nats, on the training part) and the most its columns have alone."""

    model_config = ConfigDict(extra="ignore")

    kind: str = Field(max_length=40)
    columns: list[str] = Field(max_length=2)
    association: float = 0.0
    columns_alone: float = 0.0

    @property
    def added(self) -> float:
        """What the derived feature tells of the label beyond its columns alone."""
        return self.association - self.columns_alone

    def step(self) -> Step:
        """The derived feature as the step that makes it."""
        return Step(kind=self.kind, columns=list(self.columns))


class DataProfile(BaseModel):
    """What the baseline's first run measured of the table, from its training part only."""

    model_config = ConfigDict(extra="ignore")

    rows: int = 0
    # False for a built-in array's columns (feature_0, feature_1, ...): their names mean nothing.
    named: bool = True
    columns: list[ProfileColumn] = Field(default_factory=list, max_length=2000)
    label: dict[str, Any] = Field(default_factory=dict)
    # Derived features measured on the training part (the template's candidate_features), most telling
    # beyond their columns first; empty from a template of an older version.
    candidates: list[MeasuredStep] = Field(default_factory=list, max_length=50)

    def usable(self) -> list[ProfileColumn]:
        return [c for c in self.columns if c.kind != "identifier"]

    def kinds(self) -> dict[str, str]:
        return {c.name: c.kind for c in self.usable()}

    def prompt_lines(self, limit: int = PROFILE_PROMPT_CHARS, *, values: bool = True) -> list[str]:
        """One line per column, the most telling first (by importance, then association), then the
        label's; cut at `limit` characters with a line saying how many were left out. Without `values`,
        no cell of the data is shown (no examples, no ranges): for a model outside the lab."""
        ranked = sorted(
            self.columns,
            key=lambda c: (c.kind == "identifier", -(c.importance or 0.0), -(c.association or 0.0)),
        )
        lines = [f"label {self.label.get('name', '')!r}: {_label_line(self.label, values=values)}"]
        used = len(lines[0])
        if not values:
            lines.append("(the data's values are withheld from this model: names, kinds and scores only)")
        for index, column in enumerate(ranked):
            line = _column_line(column, values=values)
            if used + len(line) > limit:
                lines.append(f"... and {len(ranked) - index} more column(s)")
                break
            lines.append(line)
            used += len(line)
        return lines


def _label_line(label: dict[str, Any], *, values: bool = True) -> str:
    """The label's balance and the baseline's recall per class (classes named by their values, or by
    their rank when values are withheld), or its spread."""
    if "balance" in label:
        names = {k: (k if values else f"#{n + 1}") for n, k in enumerate(dict(label["balance"]))}
        shares = ", ".join(f"class {names[k]}: {float(v):.0%}" for k, v in dict(label["balance"]).items())
        recall = label.get("recall") or {}
        per_class = ", ".join(
            f"{names.get(k, k if values else '?')}: {float(v):.2f}" for k, v in recall.items()
        )
        told = f"; the baseline's recall per class: {per_class}"
        return f"{shares}{told if recall else ''}"
    shown = ("mean", "std", "low", "high") if values else ("mean", "std")
    return ", ".join(f"{k} {float(label[k]):.4g}" for k in shown if k in label)


def _column_line(column: ProfileColumn, *, values: bool = True) -> str:
    if column.kind == "identifier":
        return f"{column.name!r} (identifier, dropped)"
    facts: list[str] = [column.kind]
    if column.missing:
        facts.append(f"{column.missing:.0%} missing")
    facts.append(f"{column.distinct} distinct")
    if values and column.low is not None and column.high is not None:
        facts.append(f"from {_short(column.low)} to {_short(column.high)}")
    if values and column.examples and column.kind in ("category", "text"):
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


# Steps that only fit one task: class weights balance classes, a log target is for amounts.
TASK_ONLY = {"class_weights": "classification", "target_log": "regression"}
# A numeric column with at most this many distinct values may be encoded as a category.
FEW_VALUES = 20
# Steps with a number to choose, and what it means.
VALUES = {"power": "the exponent", "bins": "how many bins"}


def fitting_columns(profile: DataProfile, must: Sequence[str]) -> list[str]:
    """The table's columns a step's position of these kinds may take. A number stands for a category only
    when it has few values (a code, a count of rooms)."""
    fits = step_fits()
    return [
        c.name
        for c in profile.usable()
        if any(
            c.kind in fits[m] and (m != "category" or c.kind != "number" or c.distinct <= FEW_VALUES)
            for m in must
        )
    ]


def available_steps(profile: DataProfile, task: str = "") -> dict[str, tuple[str, ...]]:
    """The techniques this table and task can use, with the kinds of column each takes."""
    return {
        kind: takes
        for kind, takes in step_columns().items()
        if not (task and TASK_ONLY.get(kind, task) != task)
        and all(fitting_columns(profile, (must,)) for must in takes)
    }


def proposal_step_model(profile: DataProfile, task: str = "") -> Any:
    """A step as the idea agent's model writes it: one form per technique, each taking exactly as many
    columns as it needs, chosen from the table's columns of the kinds it takes (so constrained decoding
    cannot name a column that does not exist, of the wrong kind, or too few of them). What the grammar
    cannot rule out (a column with itself) is `proposal_problem`'s. Techniques no column of this table
    fits, or that do not fit the task, are left out (`available_steps`)."""
    column_sets: dict[str, type[enum.Enum]] = {}

    def columns_of(must: tuple[str, ...]) -> type[enum.Enum]:
        key = "_".join(sorted(set(must)))
        if key not in column_sets:
            title = "".join(part.title() for part in sorted(set(must))) + "Column"
            names = fitting_columns(profile, must)
            column_sets[key] = cast(type[enum.Enum], enum.Enum(title, {n: n for n in names}, type=str))
        return column_sets[key]

    forms = []
    for kind, takes in available_steps(profile, task).items():
        fields: dict[str, Any] = {"kind": (Literal[kind], ...)}
        if takes:
            allowed = columns_of(takes)
            fields["columns"] = (list[allowed], Field(min_length=len(takes), max_length=len(takes)))  # type: ignore[valid-type]
        if kind in VALUES:
            fields["value"] = (float, Field(default=0.0, description=f"{VALUES[kind]}; 0: the default"))
        if kind == "keywords":
            fields["words"] = (list[str], Field(min_length=1, max_length=MAX_WORDS))
        forms.append(create_model(f"{kind.title().replace('_', '')}Step", **fields))
    return Annotated[Union[tuple(forms)], Field(discriminator="kind")]  # noqa: UP007


# Candidate steps shown to the idea agent at most (`candidate_steps`).
MAX_CANDIDATES = 8


def candidate_steps(profile: DataProfile, limit: int = MAX_CANDIDATES) -> list[Step]:
    """Steps this table affords that model search on the raw columns cannot make, for the idea agent to
    choose from and compose (it may write others): the days between each two dates, the most telling
    numbers against each category's mean, and ratios of the most telling numbers. Those the profile
    measured come first, the most telling beyond their columns first (`measured_candidates`); the others
    ranked by their columns (baseline importance, then mutual information), within `limit`. The platform
    lists; the model chooses which belong together, as it would from a person's notes on the table."""
    usable = profile.usable()
    rank = sorted(usable, key=lambda c: (-(c.importance or 0.0), -(c.association or 0.0)))
    dates = [c.name for c in rank if c.kind == "date"]
    numbers = [c.name for c in rank if c.kind == "number"]
    categories = [c.name for c in rank if c.kind == "category"]
    found: list[Step] = [m.step() for m in measured_candidates(profile)]
    found += [
        Step(kind="date_difference", columns=[a, b]) for i, a in enumerate(dates) for b in dates[i + 1 :]
    ]
    found += [Step(kind="group_mean", columns=[n, c]) for n in numbers[:2] for c in categories[:2]]
    found += [
        Step(kind="ratio", columns=[a, b]) for i, a in enumerate(numbers[:3]) for b in numbers[i + 1 : 3]
    ]
    unique: dict[tuple[str, frozenset[str]], Step] = {}
    for step in found:  # once each (a date difference either way round tells the same)
        unique.setdefault((step.kind, frozenset(step.columns)), step)
    return list(unique.values())[:limit]


def measured_candidates(profile: DataProfile) -> list[MeasuredStep]:
    """The profile's measured derived features that the table can run, most telling beyond their columns
    first."""
    kinds = profile.kinds()
    runnable = [m for m in profile.candidates if not step_problem(m.kind, m.columns, kinds)]
    return sorted(runnable, key=lambda m: -m.added)


def example_steps(profile: DataProfile, tried: Sequence[str] = (), limit: int = 3) -> list[MeasuredStep]:
    """The measured steps of the idea prompt's example: the candidates that tell the label most beyond
    their columns, less those a tried idea's title names (a feature idea's title says its steps,
    `steps_title`), so a later request's example moves on to the next ones. A fixed example from another
    table misled the 0.5B model: on a table with a price_per_seat column it wrote ratios of "price", the
    example's column, and left out the sessions per seat the profile measured first."""
    told = " ".join(tried)
    fresh = [m for m in measured_candidates(profile) if m.added > 0]
    return [m for m in fresh if m.step().short() not in told][:limit]


def measured_lines(profile: DataProfile) -> list[str]:
    """The measured derived features in words, for the report beside the profile."""
    return [
        f"derived {m.step().described()}: mutual information "
        f"{m.association:.3f} (its columns alone at most {m.columns_alone:.3f})"
        for m in measured_candidates(profile)
    ]


def candidate_line(step: Step, profile: DataProfile) -> str:
    """A candidate step as the idea prompt lists it: as the reply writes it, with what the profile
    measured of it when it did."""
    written = json.dumps({"kind": step.kind, "columns": step.columns})
    for m in profile.candidates:
        if m.kind == step.kind and m.columns == step.columns:
            return (
                f"{written}: mutual information with the label {m.association:.3f} (its columns alone "
                f"at most {m.columns_alone:.3f})"
            )
    return written


@dataclass(frozen=True)
class Checked:
    """A step as the idea agent wrote it, after the one repair with a single right answer: why it cannot
    run ("" when it can) and what was repaired ("" when nothing)."""

    step: Step
    problem: str
    repair: str


def checked(written: Any, profile: DataProfile) -> Checked:
    """A written step checked against the table. A step of two columns that names one twice, where the
    table has exactly two columns it can take (two dates for a date difference), takes the other one."""
    step, repair = Step.from_proposal(written), ""
    takes = step_columns().get(step.kind, ())
    if len(takes) == 2 and len(step.columns) == 2 and step.columns[0] == step.columns[1]:
        choices = fitting_columns(profile, takes)
        if len(choices) == 2 and step.columns[0] in choices:
            first = step.columns[0]
            other = next(c for c in choices if c != first)
            step = step.model_copy(update={"columns": [first, other]})
            repair = f"it named {first!r} twice; the table's other {takes[1]} column, {other!r}, taken"
    return Checked(step, step_problem(step.kind, step.columns, profile.kinds(), step.words), repair)


def _plain(columns: Sequence[Any]) -> list[str]:
    return [c.value if isinstance(c, enum.Enum) else str(c) for c in columns]


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
    def from_proposal(cls, step: Any) -> Step:
        """A step as the idea agent's reply gave it (one of `proposal_step_model`'s forms)."""
        return cls(
            kind=step.kind,
            columns=_plain(getattr(step, "columns", [])),
            value=getattr(step, "value", 0.0),
            words=list(getattr(step, "words", [])),
        )

    @classmethod
    def from_proto(cls, step: idea_pb2.FeatureStep) -> Step:
        return cls(
            kind=kind_of(step.technique), columns=list(step.columns), value=step.value, words=list(step.words)
        )

    def short(self) -> str:
        """The step in a few characters, for a title: "debt/income", "days applied_on-employed_since"."""
        a, b = (*self.columns, "", "")[:2]
        forms = {
            "ratio": f"{a}/{b}", "difference": f"{a}-{b}", "product": f"{a}*{b}", "log": f"log {a}",
            "power": f"{a}^{self.value or 2:g}", "date_difference": f"days {a}-{b}",
            "keywords": f"words in {a}", "target_encoding": f"{a} target-encoded",
            "frequency_encoding": f"{a} frequency", "group_mean": f"{a} vs {b} mean", "bins": f"{a} binned",
        }  # fmt: skip
        return forms.get(self.kind, self.kind.replace("_", " "))

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


def steps_title(steps: Sequence[Step], limit: int = 100) -> str:
    """A feature idea's title from its steps ("Features debt/income, days applied_on-employed_since"),
    within `limit` characters."""
    title = "Features " + ", ".join(step.short() for step in steps)
    return title if len(title) <= limit else title[: limit - 3].rstrip(", ") + "..."


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
