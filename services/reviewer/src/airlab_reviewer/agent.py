"""The reviewer agent: evaluates a candidate against the baseline from the stored results of their runs,
and writes the research's report (Markdown, and self-contained HTML with the plots inline).

Every number in the report is computed here from the runs' stored result.json files; the same numbers go
to reports/summary.json, so anyone can check the report against the results. What it reads of the runs is
`stored`, the plots `plots`, the report's wording of records `views`, the statistics `stats`."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import difflib
import json
from collections.abc import Mapping
from typing import Any

import jinja2

import airlab
from airlab import techniques, verdicts
from airlab.blobs import ArtifactStore, report_key, research_prefix
from airlab.enums import enum_words
from airlab.experiments import plain_params
from airlab.llm.accounting import ResearchUsage
from airlab.results import RunResult
from airlab.v1 import loop_pb2, research_pb2
from airlab_reviewer.paper import write_paper
from airlab_reviewer.plots import report_plots
from airlab_reviewer.stats import CHANCE_MODELS, chance_runs, compare, mean_std
from airlab_reviewer.stored import StoredRuns
from airlab_reviewer.views import (
    collapsed_decisions,
    comparison_view,
    fmt,
    idea_row,
    plan_view,
    related_work_view,
    sentences,
    verdict_words,
)

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("airlab_reviewer", "templates"),
    autoescape=jinja2.select_autoescape(["html.j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)
_templates.filters["e_md"] = lambda text: str(text).replace("|", "\\|").replace("\n", " ")


class Reviewer:
    def __init__(self, artifacts: ArtifactStore) -> None:
        self.artifacts = artifacts
        self.runs = StoredRuns(artifacts)

    def result(self, research_id: str, experiment_id: str) -> RunResult:
        return self.runs.result(research_id, experiment_id)

    # -- evaluation -----------------------------------------------------------------------------------------

    def evaluate(
        self,
        research_id: str,
        name: str,
        metric: str,
        candidate: Mapping[int, str],
        baseline: Mapping[int, str],
        *,
        maximize: bool | None = None,
        family_size: int = 1,
        look: int = 1,
    ) -> loop_pb2.Comparison:
        """The candidate's runs (seed -> experiment id) against the baseline's, from their stored results:
        one comparison of a planned family of `family_size`, at its first or second look; kept under
        reviews/."""
        baseline_runs = {int(s): self.runs.result(research_id, x) for s, x in baseline.items()}
        comparison = self._compare_stored(
            research_id,
            metric,
            candidate,
            baseline_runs,
            maximize=maximize,
            family_size=family_size,
            look=look,
        )
        self._keep_review(research_id, name, comparison)
        return comparison

    def _compare_stored(
        self,
        research_id: str,
        metric: str,
        candidate: Mapping[int, str],
        baseline_runs: Mapping[int, RunResult],
        **judged: Any,
    ) -> loop_pb2.Comparison:
        candidate_runs = {int(s): self.runs.result(research_id, x) for s, x in candidate.items()}
        return compare(metric, baseline_runs, candidate_runs, **judged)

    def _keep_review(self, research_id: str, name: str, comparison: loop_pb2.Comparison) -> None:
        self.artifacts.put(
            f"{research_prefix(research_id)}reviews/{name}.json",
            json.dumps(comparison_view(comparison), indent=2).encode(),
            content_type="application/json",
        )

    @staticmethod
    def _chance_of_baseline(
        metric: str, runs: Mapping[int, RunResult], maximize: bool
    ) -> dict[str, Any] | None:
        """The chance model on the baseline's seeds and test examples, and whether the baseline beats it
        (its mean above chance in the metric's direction); None when there is no chance model here."""
        chance = chance_runs(metric, runs)
        if not chance:
            return None
        against = compare(metric, chance, runs, maximize=maximize)
        return {
            "model": CHANCE_MODELS[metric],
            "mean": against.baseline_mean,
            "baseline_beats_chance": against.gain > 0,
            "baseline_significantly_above_chance": against.significant,
        }

    async def evaluate_async(self, *args: Any, **kwargs: Any) -> loop_pb2.Comparison:
        return await asyncio.to_thread(self.evaluate, *args, **kwargs)

    # -- the report -----------------------------------------------------------------------------------------

    def write_report(
        self,
        research: research_pb2.Research,
        loop: loop_pb2.ResearchLoop,
        usage: ResearchUsage,
        *,
        written_at: dt.datetime | None = None,
    ) -> tuple[str, str, dict[str, Any]]:
        """Write reports/report.md, report.html, summary.json and the plots; returns the two report keys and
        the summary."""
        research_id = research.id
        plan = research.plan
        metric = plan.metric
        maximize = plan.direction != research_pb2.METRIC_DIRECTION_MINIMIZE
        runs = list(loop.experiments)
        # Search trials the early-stop rule ended before their last epoch (the table says how many).
        stopped_early = {e.id for e in runs if e.stopped_at_epoch}
        # The baseline, recomputed from its stored results.
        baseline_ids = dict(loop.baseline.experiments)
        baseline_results = {s: self.runs.result(research_id, x) for s, x in baseline_ids.items()}
        # What the job template did to the table's columns (dates, free text, identifiers), as it said.
        column_notes = next((list(r.extra.get("column_notes") or []) for r in baseline_results.values()), [])
        # The data profile the first seed's run measured on its training part (what the idea agent read).
        profile = next(
            (r.extra["profile"] for _, r in sorted(baseline_results.items()) if r.extra.get("profile")), None
        )
        try:
            table = techniques.DataProfile.model_validate(profile) if profile else None
            profile_lines = [*table.prompt_lines(), *techniques.measured_lines(table)] if table else []
        except ValueError as exc:  # a report is written whatever a run wrote; this says what went wrong
            profile_lines, profile = [f"(the data profile could not be read: {str(exc)[:200]})"], None
        baseline = None
        if baseline_results:
            mean, std = mean_std([r.metrics[metric] for r in baseline_results.values()])
            baseline = {"mean": mean, "std": std, "seeds": len(baseline_results)}
        # Every evaluated idea against the baseline, recomputed from the stored results, then judged as
        # one family (airlab.verdicts), as the manager judged it while the loop ran.
        family = verdicts.family_size(plan.budget.max_experiments, len(plan.seeds))
        comparisons: dict[str, loop_pb2.Comparison] = {}
        # An evaluation run that did not finish (its runner died twice, say) has no result: the idea was
        # judged on its finished runs, as the loop asked the reviewer to (loop/evaluation.py).
        finished = {e.id for e in runs if e.state == loop_pb2.EXPERIMENT_STATE_FINISHED}
        compared: dict[str, dict[int, str]] = {}
        for idea in loop.ideas:
            if idea.status == loop_pb2.IDEA_STATUS_EVALUATED and baseline_ids:
                # The baseline's results, read once above; each review is kept once, judged as a family.
                compared[idea.idea.id] = {seed: x for seed, x in idea.evaluations.items() if x in finished}
                comparisons[idea.idea.id] = self._compare_stored(
                    research_id, metric, compared[idea.idea.id], baseline_results, maximize=maximize,
                    family_size=family, look=2 if idea.extra_seeds else 1,
                )  # fmt: skip
                comparisons[idea.idea.id].suggestive = idea.evaluation.suggestive
        verdicts.judge(list(comparisons.values()), family)
        for idea_id, comparison in comparisons.items():
            del comparison.findings[-1]  # the verdict of the comparison alone, judged again just now
            comparison.findings.append(verdicts.explain(comparison))
            self._keep_review(research_id, idea_id, comparison)
        chance = self._chance_of_baseline(metric, baseline_results, maximize) if baseline_results else None
        ideas: list[dict[str, Any]] = []
        worked: list[dict[str, Any]] = []
        not_worked: list[dict[str, Any]] = []
        # Ideas that ran the same code with the same parameters ran one experiment, whatever their titles.
        ran: dict[tuple[str, str], str] = {}
        titles = {i.idea.id: i.idea.title for i in loop.ideas}
        for idea in loop.ideas:
            evaluation = None
            if idea.idea.id in comparisons:
                evaluation = comparison_view(comparisons[idea.idea.id]) | {
                    "candidate": compared[idea.idea.id]
                }
            review = idea.review
            status = enum_words(loop_pb2.IdeaStatus, idea.status)
            params = plain_params(idea.best_params) if idea.best_params else None
            if idea.code_sha256 and params:
                ran_as = (idea.code_sha256, json.dumps(params, sort_keys=True))
                if ran_as in ran:
                    status += f" (same code and parameters as {ran[ran_as]!r}: one experiment)"
                ran.setdefault(ran_as, idea.idea.title)
            row = idea_row(idea, status, evaluation, params, titles)
            row["stopped_early"] = sum(1 for t in idea.trials if t in stopped_early)
            ideas.append(row)
            if evaluation and evaluation["significant"]:
                worked.append(row)
            else:
                if evaluation:
                    outcome = "suggestive, not significant" if evaluation["suggestive"] else "not significant"
                    why = (
                        f"{fmt(evaluation['mean'])} ± {fmt(evaluation['std'])}, "
                        f"gain {evaluation['gain']:+.4f}: "
                        f"{outcome}. {sentences(evaluation['findings'])}"
                    )
                elif idea.status == loop_pb2.IDEA_STATUS_REJECTED:
                    why = "rejected in review: " + "; ".join(review.reasons)
                else:
                    why = f"{row['status']}: {idea.failure}".strip(": ")
                row["why"] = why
                not_worked.append(row)
        evaluated = [i for i in ideas if i["evaluation"]]
        best = max(worked, key=lambda i: i["evaluation"]["gain"], default=None)
        verdict = verdict_words(best, evaluated, baseline, chance, metric)
        plots = report_plots(self.runs, research_id, loop, metric, maximize, baseline, evaluated)
        devices = self.runs.devices(research_id, sorted(finished))
        # The best code whatever the verdict: the significant winner, else the evaluated idea with the
        # largest gain; with its difference from the baseline's code.
        shown = best or max(evaluated, key=lambda i: i["evaluation"]["gain"], default=None)
        best_code, best_diff = "", ""
        if shown is not None and shown["code_ref"]:
            best_code = self.artifacts.get(shown["code_ref"] + "train.py").decode(errors="replace")
            if loop.baseline_code:
                baseline_code = self.artifacts.get(loop.baseline_code + "train.py").decode(errors="replace")
                best_diff = "".join(
                    difflib.unified_diff(
                        baseline_code.splitlines(keepends=True),
                        best_code.splitlines(keepends=True),
                        "baseline/train.py",
                        "best/train.py",
                    )
                )
        failures = [f"{f.title or f.what}: {f.error}" for f in loop.failures]
        # Drafts that failed their checks, also when a later attempt or the registry fallback worked.
        failures += [
            f"{idea.idea.title}: code draft rejected: {problem[:300]}"
            for idea in loop.ideas
            if idea.status != loop_pb2.IDEA_STATUS_FAILED
            for problem in idea.code_problems
            if not problem.endswith("built from the template's model registry")
        ]
        failures += [
            f"experiment {e.id} ({enum_words(loop_pb2.ExperimentKind, e.kind)} of {e.name}): {e.reason}"
            for e in runs
            if e.state == loop_pb2.EXPERIMENT_STATE_FAILED
        ]
        timing = {
            "llm_seconds": usage.total.latency_seconds,
            "experiment_seconds": sum(e.run_seconds for e in runs),
            "waiting_seconds": sum(e.queued_seconds for e in runs),
        }
        # Runs the sequential rule added: borderline ideas' and the baseline's on seeds beyond the plan's.
        extra_seed_runs = sum(
            1
            for e in runs
            if e.seed not in plan.seeds
            and e.kind in (loop_pb2.EXPERIMENT_KIND_BASELINE, loop_pb2.EXPERIMENT_KIND_EVALUATION)
        )
        counts = {
            "requested": len(runs),
            "finished": sum(1 for e in runs if e.state == loop_pb2.EXPERIMENT_STATE_FINISHED),
            "failed": sum(1 for e in runs if e.state == loop_pb2.EXPERIMENT_STATE_FAILED),
        }
        written = (written_at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
        context = {
            "related_work": related_work_view(loop),
            "goal": research.goal,
            "research_id": research_id,
            "verdict": verdict,
            "stop_reason": loop.stop_reason,
            "written_at": written,
            "plan": plan_view(plan),
            "maximize": maximize,
            "baseline": baseline,
            "chance": chance,
            "column_notes": column_notes,
            "profile_lines": profile_lines,
            "family_size": family,
            "extra_seed_runs": extra_seed_runs,
            "ideas": ideas,
            "worked": worked,
            "not_worked": not_worked,
            "compared": len(evaluated),
            "decisions": collapsed_decisions(loop.decisions),
            "plots": plots,
            "best_code": best_code,
            "best_diff": best_diff,
            "best_significant": best is not None,
            "best_title": shown["title"] if shown else "",
            "best_params": json.dumps(shown["params"]) if shown else "",
            "usage": {a: u.__dict__ for a, u in sorted(usage.agents.items())},
            "counts": counts,
            "timing": timing,
            "failures": failures,
            "devices": devices,
            "fmt": fmt,
            "sentences": sentences,
        }
        summary = {
            "research_id": research_id,
            "lab_version": airlab.__version__,
            "written_at": written,
            "plan": context["plan"],
            "metric": metric,
            "maximize": maximize,
            "verdict": verdict,
            "stop_reason": loop.stop_reason,
            "baseline": baseline,
            "baseline_experiments": baseline_ids,
            "chance": chance,
            "column_notes": column_notes,
            "profile": profile,
            # The family-wise rule the verdict used (airlab.verdicts).
            "verdict_rule": {
                "family_size": family,
                "alpha": verdicts.ALPHA,
                "first_look_level": verdicts.FIRST_LOOK_LEVEL,
                "second_look_level": verdicts.SECOND_LOOK_LEVEL,
                "extra_seed_runs": extra_seed_runs,
            },
            "ideas": [{k: v for k, v in i.items() if k not in ("why",)} for i in ideas],
            "best_idea_id": best["id"] if best else None,
            "counts": counts,
            "timing": timing,
            "devices": devices,
            "usage": context["usage"],
            "failures": failures,
            "related_work": related_work_view(loop),
        }
        # The paper: typeset from summary.json's records and checked against them; published only when
        # every number in it is found there.
        images = {plot["file"]: base64.b64decode(plot["base64"]) for plot in plots}
        paper = write_paper(summary, research.goal, plots, images)
        if paper.published and paper.pdf is not None:
            pdf_key = report_key(research_id, "report.pdf")
            self.artifacts.put(pdf_key, paper.pdf, content_type="application/pdf")
        summary["paper"] = context["paper"] = paper.view()
        markdown = _templates.get_template("report.md.j2").render(context)
        html = _templates.get_template("report.html.j2").render(context)
        md_key, html_key = report_key(research_id, "report.md"), report_key(research_id, "report.html")
        self.artifacts.put(md_key, markdown.encode(), content_type="text/markdown")
        self.artifacts.put(html_key, html.encode(), content_type="text/html")
        self.artifacts.put(
            report_key(research_id, "summary.json"),
            json.dumps(summary, indent=2).encode(),
            content_type="application/json",
        )
        return md_key, html_key, summary
