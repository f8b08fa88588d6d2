"""How the report words and shapes the loop's records: numbers, code origins, findings, decisions, a
comparison and the plan, as the templates and summary.json take them."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format

from airlab import techniques
from airlab.enums import CODE_WORDS, IDEA_ORIGIN_WORDS, enum_words
from airlab.v1 import loop_pb2, manager_pb2, research_pb2


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def code_origin_words(idea: loop_pb2.LoopIdea) -> str:
    """Who wrote the code an idea ran, in words: "LLM (attempt 2, 1 repair by the coder)"."""
    if idea.code_origin != loop_pb2.CODE_ORIGIN_LLM:
        return CODE_WORDS.get(idea.code_origin, "-")
    repairs = len(idea.code_repairs)
    told = f", {repairs} repair{'s' if repairs != 1 else ''} by the coder" if repairs else ""
    return f"LLM (attempt {idea.code_attempts}{told})"


def sentences(findings: list[str]) -> str:
    """Findings as sentences: each ends with a full stop."""
    return " ".join(f.rstrip(". ") + "." for f in findings if f.strip())


def collapsed_decisions(decisions: Any) -> list[dict[str, Any]]:
    """One line per decision, a run of the same decision and reason said once with its count."""
    rows: list[dict[str, Any]] = []
    for d in decisions:
        kind = enum_words(manager_pb2.DecisionKind, d.kind)
        if rows and (rows[-1]["kind"], rows[-1]["reason"]) == (kind, d.reason):
            rows[-1]["times"] += 1
            continue
        rows.append({"round": d.round, "kind": kind, "reason": d.reason, "times": 1})
    return rows


def comparison_view(comparison: loop_pb2.Comparison) -> dict[str, Any]:
    """The comparison as JSON (reviews/<idea>.json, summary.json and the report's context)."""
    view = json_format.MessageToDict(
        comparison, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    view["seeds"] = list(comparison.seeds)
    view["per_seed"] = [
        {"seed": p.seed, "baseline": p.baseline, "candidate": p.candidate} for p in comparison.per_seed
    ]
    return view


def plan_view(plan: research_pb2.Plan) -> dict[str, Any]:
    budget = plan.budget
    return {
        "dataset": plan.dataset,
        "task": plan.task,
        "metric": plan.metric,
        "baseline": plan.baseline,
        "template": plan.template or "sklearn",
        "gpus": plan.gpus,
        "seeds": list(plan.seeds),
        "test_fraction": plan.test_fraction,
        "test_percent": round(plan.test_fraction * 100),
        "reasons": list(plan.reasons),
        "budget": {
            "max_experiments": budget.max_experiments,
            "max_wall_seconds": budget.max_wall_seconds,
            "max_tokens": budget.max_tokens,
            "max_cost_usd": budget.max_cost_usd,
        },
    }


def related_work_view(loop: loop_pb2.ResearchLoop) -> dict[str, Any]:
    """The research's related work (numbered as ideas cite it) and what became of its search."""
    papers = [
        {
            "number": number,
            "title": paper.title,
            "year": paper.year or None,
            "authors": list(paper.authors),
            "venue": paper.venue,
            "abstract": paper.abstract,
            "doi": paper.doi,
            "arxiv_id": paper.arxiv_id,
            "url": _web(paper.url) or (f"https://doi.org/{paper.doi}" if paper.doi else ""),
        }
        for number, paper in enumerate(loop.related_work, start=1)
    ]
    return {"status": loop.related_work_status or "not searched", "papers": papers}


def _web(url: str) -> str:
    """An http(s) address from a literature API, or "" (a report links nothing else)."""
    return url if url.startswith(("https://", "http://")) else ""


def idea_row(
    idea: loop_pb2.LoopIdea,
    status: str,
    evaluation: dict[str, Any] | None,
    params: dict[str, Any] | None,
    titles: dict[str, str],
) -> dict[str, Any]:
    """An idea as the report's ideas table and sections show it (`titles`: the research's ideas by id)."""
    return {
        "id": idea.idea.id,
        "title": idea.idea.title,
        "change": idea.idea.change,
        "approved": idea.review.approved,
        "status": status,
        "origin": IDEA_ORIGIN_WORDS.get(idea.origin, "-"),
        "code_origin": code_origin_words(idea),
        "code_attempts": idea.code_attempts,
        "code_repairs": list(idea.code_repairs),
        "trials": len(idea.trials),
        "evaluation": evaluation,
        "params": params,
        "code_ref": idea.code_ref,
        # A feature idea: its steps of the technique catalog, its family and what motivated it.
        "steps": [techniques.Step.from_proto(s).described() for s in idea.idea.steps],
        "family": idea.idea.family if idea.idea.steps else "",
        "evidence": idea.idea.evidence,
        # The best feature idea whose steps its own were added to (research.build_on_best).
        "built_on": titles.get(idea.built_on, ""),
        # What the lab changed in the idea (a hyperparameter its code does not read, left out).
        "notes": list(idea.idea.notes),
        # The related-work papers it follows (by place), and the review's word on it.
        "cites": list(idea.idea.cites),
        "literature": idea.review.literature,
    }


def verdict_words(
    best: dict[str, Any] | None,
    evaluated: list[dict[str, Any]],
    baseline: dict[str, Any] | None,
    chance: dict[str, Any] | None,
    metric: str,
) -> str:
    """The research's outcome in one sentence: the significant `best` idea's claim, else a suggestive
    one's, else none; the best mean too where it is not the claim's, and a baseline below chance."""
    suggested = max(
        (i for i in evaluated if i["evaluation"]["suggestive"]),
        key=lambda i: i["evaluation"]["gain"],
        default=None,
    )
    if best is not None:
        e = best["evaluation"]
        verdict = (
            f"'{best['title']}' beat the baseline significantly: {fmt(e['mean'])} ± {fmt(e['std'])} "
            f"against {fmt(e['baseline_mean'])} ± {fmt(e['baseline_std'])} ({metric}; adjusted p = "
            f"{e['adjusted_p']:.4f} below {e['level']:g}, Holm over {e['family_size']} planned "
            "comparisons)"
        )
    elif baseline is None:
        verdict = "no result: the baseline did not run"
    elif suggested is not None:
        e = suggested["evaluation"]
        verdict = (
            f"suggestive, not significant: '{suggested['title']}' {fmt(e['mean'])} ± {fmt(e['std'])} "
            f"against {fmt(e['baseline_mean'])} ± {fmt(e['baseline_std'])} ({metric}; adjusted p = "
            f"{e['adjusted_p']:.4f}, under 0.05 but not under {e['level']:g}, and no budget was left "
            "for more seeds)"
        )
    else:
        verdict = (
            f"no significant gain over the baseline ({metric} {fmt(baseline['mean'])} "
            f"± {fmt(baseline['std'])})"
        )
    # The best mean is said too when it is not the claim's: a goal for the best the budget can buy
    # may prefer it, knowing it missed significance (the claim stays the significant one's).
    bar = best["evaluation"]["gain"] if best is not None else float("inf")
    ahead = max(
        (i for i in evaluated if i["evaluation"]["gain"] > bar),
        key=lambda i: i["evaluation"]["gain"],
        default=None,
    )
    if ahead is not None:
        e = ahead["evaluation"]
        adjusted = f" (adjusted p = {e['adjusted_p']:.4f})" if "adjusted_p" in e else ""
        verdict += (
            f"; the best mean, '{ahead['title']}' {fmt(e['mean'])} ± {fmt(e['std'])}, is not significant"
            + adjusted
        )
    if chance is not None and not chance["baseline_beats_chance"]:
        verdict += f"; the baseline does not beat chance ({chance['model']}: {fmt(chance['mean'])})"
    return verdict
