"""The manager's review of an idea: clarity, novelty against memory and this research, feasibility within
what the budget leaves, alignment with the task and metric. Plain rules with written reasons."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from airlab import literature
from airlab.domain import title_key
from airlab.v1 import idea_pb2, manager_pb2

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# The idea prompt's fixed examples (prompts/idea/propose.j2): an idea that repeats one was copied, not
# thought of. A table's example is its own most telling measured steps (airlab_idea.agent.example_idea),
# which an idea may take: its title says its steps, never one of these.
PROMPT_EXAMPLES = {
    title_key(t)
    for t in (
        "Polynomial interaction features",
        "Squeeze-excitation blocks",
        "Price per square metre, age at sale and the city's usual price",
    )
}
MAX_PARAMS = 6
WRONG_TASK_WORDS = {"classification": r"\bregressor\b|\bregression trees?\b", "regression": r"\bclassifier\b"}


@dataclass
class Novelty:
    """What memory says about an idea: the closest earlier idea, if any came near."""

    duplicate_of: str = ""
    similarity: float = 0.0


def review_idea(
    idea: idea_pb2.Idea,
    *,
    task: str,
    metric: str,
    experiments_left: int,
    experiments_per_idea: int,
    tried_titles: Iterable[str],
    novelty: Novelty,
    related: Sequence[idea_pb2.Paper] = (),
) -> manager_pb2.IdeaReview:
    reasons: list[str] = []
    # Clarity: a title, a change that says what changes, a search space that can be searched.
    checks = []
    title, change = idea.title.strip(), idea.change.strip()
    checks.append(len(title) >= 3)
    checks.append(len(change) >= 10)
    checks.append(bool(idea.expected_effect.strip()))
    space = idea.search_space
    bad_params = [name for name in space if not IDENTIFIER.match(name)]
    bad_ranges = [
        name
        for name, r in space.items()
        if not (math.isfinite(r.low) and math.isfinite(r.high))
        or r.low >= r.high
        or (r.log_scale and r.low <= 0)
    ]
    checks.append(not bad_params and not bad_ranges and len(space) <= MAX_PARAMS)
    clarity = sum(checks) / len(checks)
    if len(change) < 10:
        reasons.append("the change is not described")
    if bad_params or bad_ranges:
        reasons.append(f"unusable hyperparameters: {', '.join(bad_params + bad_ranges)}")
    if len(space) > MAX_PARAMS:
        reasons.append(f"{len(space)} hyperparameters; at most {MAX_PARAMS} can be searched in an idea")
    # Novelty: not a near-duplicate of an idea tried here or remembered from earlier research.
    if title_key(title) in PROMPT_EXAMPLES:
        novelty_score = 0.0
        reasons.append(f"it repeats the idea prompt's example ({title!r}), word for word")
    elif title_key(title) in {title_key(t) for t in tried_titles}:
        novelty_score = 0.0
        reasons.append(f"already tried in this research: {title!r}")
    elif novelty.duplicate_of and idea.steps:
        # A feature idea remembered from an earlier research is a known lead, not a copy: its features run
        # on this research's split and seeds (the same ones in this research are caught by their code).
        novelty_score = 0.1
        reasons.append(
            f"known from earlier research: {novelty.duplicate_of!r} (similarity {novelty.similarity:.2f}); "
            "its features are tried on this research"
        )
    elif novelty.duplicate_of:
        novelty_score = 0.0
        reasons.append(
            f"a near-duplicate of an idea already tried: {novelty.duplicate_of!r} "
            f"(similarity {novelty.similarity:.2f})"
        )
    else:
        novelty_score = round(1.0 - max(novelty.similarity, 0.0), 3)
    # Feasibility: the budget must leave room for at least one trial and the evaluation seeds.
    if experiments_left >= experiments_per_idea:
        feasibility = 1.0
    else:
        feasibility = 0.0
        reasons.append(
            f"needs at least {experiments_per_idea} experiments; {experiments_left} are left in the budget"
        )
    # Alignment: the idea must fit the task the metric measures.
    text = f"{title} {change}".lower()
    wrong = WRONG_TASK_WORDS.get(task)
    if wrong and re.search(wrong, text):
        alignment = 0.2
        reasons.append(f"it reads as a model for another task than {task} ({metric})")
    else:
        alignment = 1.0
    # A method of the related work is worth trying here, but it is the literature's, never new.
    follows = {n for n in idea.cites if 0 < n <= len(related)}
    follows |= set(literature.methods_named(f"{title} {change}", related))  # named, if not cited
    known = [f"[{n}] {related[n - 1].title} ({related[n - 1].year or 'n.d.'})" for n in sorted(follows)]
    source = f"from the literature: {'; '.join(known)}" if known else ""
    approved = clarity >= 0.75 and novelty_score > 0 and feasibility > 0 and alignment >= 0.5
    if approved:
        new = source or ("new" if novelty_score > 0.1 else "")
        reasons.insert(0, f"clear, {new + ', ' if new else ''}fits the budget and the metric")
    elif source:
        reasons.append(source)
    return manager_pb2.IdeaReview(
        literature=source,
        idea_id=idea.id,
        title=idea.title,
        approved=approved,
        clarity=clarity,
        novelty=novelty_score,
        feasibility=feasibility,
        alignment=alignment,
        reasons=reasons,
    )
