"""The idea agent: proposes concrete, testable changes for a planned research through the LLM, asks for
them as structured output, and drops near-duplicates of what was already tried."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model, field_validator, model_validator

from airlab import domain, literature, techniques
from airlab.domain import title_key
from airlab.errors import FailedPrecondition, InvalidArgument
from airlab.ids import derived_id, new_id
from airlab.llm.accounting import Budget
from airlab.llm.client import LLMClient
from airlab.llm.prompts import render
from airlab.v1 import idea_pb2, research_pb2

MAX_IDEAS = 10
DEFAULT_IDEAS = 3
# The steps a feature idea takes at least, where the table affords as many (`feature_proposals`).
MIN_FEATURE_STEPS = 2
READY_STATES = (research_pb2.RESEARCH_STATE_PLANNED, research_pb2.RESEARCH_STATE_RUNNING)
CITES = "the numbers of the related-work papers the idea follows, if any"
FEATURE_TITLE_CHARS = 80


class SearchRange(BaseModel):
    low: float
    high: float
    log_scale: bool = False
    integer: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> SearchRange:
        if not self.low < self.high:
            raise ValueError("low must be below high")
        if self.log_scale and self.low <= 0:
            raise ValueError("a log-scale range must be positive")
        return self


class Proposal(BaseModel):
    title: str = Field(min_length=3, max_length=200, description="one line naming the change")
    change: str = Field(min_length=10, description="what changes against the baseline")
    expected_effect: str = Field(
        min_length=5, description="what it should do to the metric, roughly how much"
    )
    rationale: str = Field(default="", description="why it should work")
    search_space: dict[str, SearchRange] = Field(
        default_factory=dict, description="numeric hyperparameters of the change and their ranges"
    )
    cites: list[int] = Field(default_factory=list, description=CITES)

    @field_validator("search_space", mode="before")
    @classmethod
    def _usable_ranges(cls, value: Any) -> Any:
        """Small models often get a range backwards or make it empty: mend what can be mended (swap the
        ends, drop a log scale that cannot be one) and leave out what cannot, rather than lose the idea."""
        if not isinstance(value, dict):
            return {}
        kept = {}
        for name, r in value.items():
            if not isinstance(r, dict):
                continue
            try:
                low, high = float(r["low"]), float(r["high"])
            except (TypeError, ValueError):
                continue
            if not (math.isfinite(low) and math.isfinite(high)) or low == high:
                continue
            low, high = min(low, high), max(low, high)
            log_scale = bool(r.get("log_scale")) and low > 0
            # Counts, sizes and depths are whole numbers even when the model forgets to say so: searched
            # as floats they reach the estimator as 118.42 trees.
            whole = low.is_integer() and high.is_integer() and domain.counts_something(name)
            integer = bool(r.get("integer")) or whole
            kept[name] = {**r, "low": low, "high": high, "log_scale": log_scale, "integer": integer}
        return kept


# What a free-form idea's words may take at most in the reply's schema: constrained decoding stops a
# small model there instead of running on to its token limit (the 0.5B model wrote 1024 tokens three
# times in a row on friedman1, 80 s each, and each reply was cut off, no JSON).
PROSE_CHARS = 600
SEARCHED_AT_MOST = 8


class BoundedProposal(Proposal):
    title: str = Field(min_length=3, max_length=FEATURE_TITLE_CHARS, description="a short name")
    change: str = Field(
        min_length=10, max_length=PROSE_CHARS, description="what changes against the baseline"
    )
    expected_effect: str = Field(
        min_length=5, max_length=PROSE_CHARS, description="what it should do to the metric, roughly how much"
    )
    rationale: str = Field(default="", max_length=PROSE_CHARS, description="why it should work")
    search_space: dict[str, SearchRange] = Field(
        default_factory=dict,
        max_length=SEARCHED_AT_MOST,
        description="numeric hyperparameters of the change and their ranges",
    )
    cites: list[int] = Field(default_factory=list, max_length=5, description=CITES)


def free_proposals(count: int) -> type[BaseModel]:
    """The reply schema for free-form ideas: `count` ideas at most (decoding stops there; a model that
    is not held to the schema and writes more has its first `count` taken), each one's words bounded."""
    count = max(1, count)

    def first_ones(cls: Any, value: Any) -> Any:
        return value[:count] if isinstance(value, list) else value

    return create_model(
        "Proposals",
        __validators__={"first_ones": field_validator("ideas", mode="before")(first_ones)},
        ideas=(list[BoundedProposal], Field(min_length=1, max_length=count)),
    )


def families_for(plan: research_pb2.Plan) -> list[domain.ModelFamily]:
    """The portfolio's families for the plan's template and task: what a feature idea may feed."""
    template = domain.template_of(plan.template)
    return [
        domain.MODEL_FAMILIES[name]
        for name in domain.PORTFOLIO[template]
        if plan.task in domain.MODEL_FAMILIES[name].tasks
    ]


def feature_proposals(
    profile: techniques.DataProfile, families: Sequence[str], count: int, task: str = ""
) -> type[BaseModel]:
    """The reply schema for ideas on a table: each idea is steps of the technique catalog on the table's
    own columns, plus a model family, so whatever the model writes either runs or is refused with a
    message it gets back (constrained decoding keeps it to known columns, kinds and families, and to
    `count` ideas). No search space: a feature idea searches its family's own hyperparameters."""
    step = techniques.proposal_step_model(profile, task)
    # Two steps at least where the table affords two: given the choice, the 0.5B model wrote three ideas
    # of the one top step each (the same features thrice, two of them then rejected as repeats), where the
    # steps that belong together make one idea (the second from the listed candidates).
    least = max(1, min(MIN_FEATURE_STEPS, len(techniques.candidate_steps(profile))))
    family_choice: Any = Literal[tuple(families)]
    text = Proposal.model_fields

    def some_step_runs(proposal: Any) -> Any:
        # A step that cannot run is dropped (said in the idea's notes, `as_feature_idea`); an idea none
        # of whose steps can run goes back to the model with the reasons.
        problems = [techniques.checked(s, profile).problem for s in proposal.steps]
        if all(problems):
            raise ValueError("no step can run: " + "; ".join(problems))
        return proposal

    validators: dict[str, Any] = {"some_step_runs": model_validator(mode="after")(some_step_runs)}
    idea = create_model(
        "FeatureProposal",
        __validators__=validators,
        # A short title: the 0.5B model otherwise runs on, copying the prompt's example and its numbers.
        title=(str, BoundedProposal.model_fields["title"]),
        change=(str, text["change"]),
        expected_effect=(str, text["expected_effect"]),
        evidence=(str, Field(default="", max_length=300, description="what in the profile points to it")),
        family=(family_choice, Field(description="the model family the features feed")),
        steps=(list[step], Field(min_length=least, max_length=techniques.MAX_STEPS)),  # type: ignore[valid-type]
        cites=(list[int], Field(default_factory=list, description=CITES)),
    )
    return create_model(
        "FeatureProposals",
        ideas=(list[idea], Field(min_length=1, max_length=count)),
    )


class IdeaAgent:
    def __init__(self, llm: LLMClient) -> None:
        self.llm = llm

    async def propose(
        self,
        research: research_pb2.Research,
        count: int,
        tried: Sequence[str] = (),
        *,
        results: Sequence[str] = (),
        recalled: Sequence[str] = (),
        ids_from: str = "",
        profile: techniques.DataProfile | None = None,
        related: Sequence[idea_pb2.Paper] = (),
    ) -> list[idea_pb2.Idea]:
        """Up to `count` ideas for a planned research; ideas whose title repeats one tried or one already
        proposed in this batch are dropped. `results` says how this research's ideas did, `recalled` what
        memory holds from earlier researches. With `ids_from`, ids derive from it (a retried request
        proposes under the same ids). With a table's `profile` (sklearn template), ideas are feature
        steps of the technique catalog on its columns plus a model family. `related` is the research's
        related work: the prompt shows it (numbered, within a bound) and an idea cites the papers it
        follows."""
        if count > MAX_IDEAS:
            raise InvalidArgument("count", f"must be 0..{MAX_IDEAS}, got {count}")
        if research.state not in READY_STATES:
            state = research_pb2.ResearchState.Name(research.state)
            raise FailedPrecondition(f"research {research.id} is {state}: ideas come after its plan")
        count = count or DEFAULT_IDEAS
        plan = research.plan
        families = families_for(plan)
        table = table_of(plan, profile)
        family_names = [family.name for family in families]
        example = example_idea(table, tried, family_names) if table else None
        prompt = render(
            "idea/propose",
            goal=research.goal,
            dataset=plan.dataset,
            task=plan.task,
            metric=plan.metric,
            direction="higher" if plan.direction == research_pb2.METRIC_DIRECTION_MAXIMIZE else "lower",
            baseline=plan.baseline,
            template=domain.template_of(plan.template),
            families=", ".join(family.aliases[0] for family in families),
            family_names=family_names,
            example=json.dumps(example) if example else "",
            # A hosted model sees the columns' names, kinds and scores, never a cell (ServerConfig.sees_data).
            profile=table.prompt_lines(values=self.llm.config.sees_data("idea")) if table else [],
            steps=techniques.available_steps(table, plan.task) if table else {},
            # Steps the table affords, as the reply writes them, with what the profile measured of them: a
            # menu the model composes from.
            candidates=[techniques.candidate_line(c, table) for c in techniques.candidate_steps(table)]
            if table
            else [],
            tried=list(tried),
            results=list(results),
            recalled=list(recalled),
            related=literature.prompt_lines([literature.from_proto(p) for p in related]),
            count=count,
        )
        budget = Budget(max_tokens=plan.budget.max_tokens, max_cost_usd=plan.budget.max_cost_usd)
        schema = feature_proposals(table, family_names, count, plan.task) if table else free_proposals(count)
        # A table's schema (a form per technique, the column choices spelt out) is the grammar decoding
        # follows; the prompt says the same in words, within the small model's context.
        proposals: Any = await self.llm.structured(
            "idea",
            schema,
            prompt,
            research_id=research.id,
            purpose="propose ideas",
            budget=budget,
            show_schema=table is None,
        )
        ideas = _ideas_of(research, proposals.ideas, count, tried, ids_from, table, related)
        if example:  # a small model often gives the example back as it is: the report says so
            shown = {(step["kind"], tuple(step["columns"])) for step in example["steps"]}
            for idea in ideas:
                if {(techniques.kind_of(s.technique), tuple(s.columns)) for s in idea.steps} == shown:
                    idea.notes.append(
                        "its steps are the prompt's example as given (the data profile's most telling "
                        "measured steps not yet tried): the model chose none of its own"
                    )
        return ideas

    def measured(
        self,
        research: research_pb2.Research,
        tried: Sequence[str] = (),
        *,
        ids_from: str = "",
        profile: techniques.DataProfile | None = None,
    ) -> list[idea_pb2.Idea]:
        """Without the LLM: one feature idea of the steps the profile measured most telling and not yet
        tried, the idea prompt's example as it is written (`example_idea`); none for a table that affords
        fewer than two such steps, or without a table's profile. What the measurement alone gives, to
        set beside what the LLM composes from the same list (research.strategy.profile_ideas)."""
        plan = research.plan
        table = table_of(plan, profile)
        family_names = [family.name for family in families_for(plan)]
        example = example_idea(table, tried, family_names) if table else None
        if table is None or example is None:
            return []
        schema = feature_proposals(table, family_names, 1, plan.task)
        proposals: Any = schema.model_validate({"ideas": [example]})
        ideas = _ideas_of(research, proposals.ideas, 1, tried, ids_from, table, ())
        for idea in ideas:  # no model's words to keep beside the steps
            idea.rationale = f"the steps the data profile measured most telling, no LLM: {idea.evidence}"
        return ideas


def table_of(
    plan: research_pb2.Plan, profile: techniques.DataProfile | None
) -> techniques.DataProfile | None:
    """The profile when ideas on it are feature steps: a table's columns, whose names mean something (not a
    built-in array's feature_0, feature_1, ...), for the scikit-learn template; else None."""
    named = profile is not None and profile.named and bool(profile.usable())
    return profile if named and plan.template != "pytorch" else None


def _ideas_of(
    research: research_pb2.Research,
    proposals: Sequence[Any],
    count: int,
    tried: Sequence[str],
    ids_from: str,
    table: techniques.DataProfile | None,
    related: Sequence[idea_pb2.Paper],
) -> list[idea_pb2.Idea]:
    """The ideas of validated proposals: those whose title repeats one tried or one before it in the batch
    dropped; a feature proposal's steps checked on the table (`as_feature_idea`)."""
    seen = {title_key(t) for t in tried}
    ideas: list[idea_pb2.Idea] = []
    for proposal in proposals:
        if title_key(proposal.title) in seen:
            continue
        seen.add(title_key(proposal.title))
        idea = idea_pb2.Idea(
            id=derived_id("i", f"{ids_from}:{len(ideas)}") if ids_from else new_id("i"),
            research_id=research.id,
            title=proposal.title,
            change=proposal.change,
            expected_effect=proposal.expected_effect,
        )
        idea.cites.extend(cited(proposal, related))
        if table:
            as_feature_idea(idea, proposal, table)
        else:
            idea.rationale = proposal.rationale
            for name, r in proposal.search_space.items():
                idea.search_space[name].CopyFrom(
                    idea_pb2.Range(low=r.low, high=r.high, log_scale=r.log_scale, integer=r.integer)
                )
        ideas.append(idea)
    return ideas[:count]


def example_idea(
    profile: techniques.DataProfile, tried: Sequence[str], families: Sequence[str]
) -> dict[str, Any] | None:
    """The prompt's example of a feature idea, composed of this table's most telling measured steps not
    yet tried (`techniques.example_steps`), as the reply writes it; None when fewer than two are left
    (the prompt's fixed example stands in)."""
    measured = techniques.example_steps(profile, tried)
    if len(measured) < MIN_FEATURE_STEPS:
        return None
    steps, first = [m.step() for m in measured], measured[0]
    return {
        # Within the reply's bound, as a reply must be (the idea's title is its steps' in full anyway).
        "title": techniques.steps_title(steps, FEATURE_TITLE_CHARS),
        "change": "add the " + ", the ".join(step.described() for step in steps),
        "expected_effect": "a higher score: these features tell the label more than their columns alone",
        "evidence": f"the profile measured {first.association:.3f} for the {steps[0].described()} against "
        f"{first.columns_alone:.3f} for its columns alone",
        "family": "hist_gradient_boosting" if "hist_gradient_boosting" in families else families[0],
        "steps": [{"kind": step.kind, "columns": step.columns} for step in steps],
    }  # fmt: skip


def cited(proposal: Any, related: Sequence[idea_pb2.Paper]) -> list[int]:
    """The related-work papers an idea follows, by place: those it cites, and those whose method its
    title or change names (small models rarely cite)."""
    places = {n for n in getattr(proposal, "cites", []) if 1 <= n <= len(related)}
    places |= set(literature.methods_named(f"{proposal.title} {proposal.change}", related))
    return sorted(places)


def as_feature_idea(idea: idea_pb2.Idea, proposal: Any, profile: techniques.DataProfile) -> None:
    """A feature proposal's steps that can run (each other one dropped and said in the idea's notes, as is
    a repeat), family, evidence and search (the family's own) on its idea; its change says the steps."""
    family = domain.MODEL_FAMILIES[proposal.family]
    idea.family = family.name
    idea.evidence = proposal.evidence
    idea.rationale = f"feature steps of the technique catalog feeding a {family.aliases[0]}"
    kept: list[techniques.Step] = []
    for written in proposal.steps:
        found = techniques.checked(written, profile)
        problem = found.problem or ("a repeat" if found.step in kept else "")
        if problem:
            idea.notes.append(f"step {found.step.described()!r} dropped: {problem}")
            continue
        if found.repair:
            idea.notes.append(f"step {found.step.described()!r}: {found.repair}")
        kept.append(found.step)
    idea.steps.extend(step.to_proto() for step in kept)
    # The change is what the platform compiles, in words; the model's own words stay beside it (a small
    # model often copies the prompt's example there, naming columns the table does not have).
    idea.rationale += f"; the model's words: {idea.change}"
    idea.change = f"add {'; '.join(step.described() for step in kept)}, feeding a {family.aliases[0]}"
    if kept:  # the title too (a small model's often names the prompt example's columns): the model's kept
        idea.rationale += f"; the model's title: {idea.title}"
        idea.title = techniques.steps_title(kept)
    for name, r in family.search_space().items():  # the family's own, as the portfolio searches it
        idea.search_space[name].CopyFrom(r)
