"""The reviewer agent: evaluates a candidate against the baseline from the stored results of their runs,
and writes the research's report (Markdown, and self-contained HTML with the plots inline).

Every number in the report is computed here from the runs' stored result.json files; the same numbers go
to reports/summary.json, so anyone can check the report against the results."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import io
import json
from collections.abc import Mapping
from typing import Any

import jinja2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from airlab.blobs import ArtifactStore, experiment_key, report_key, research_prefix
from airlab.llm.accounting import ResearchUsage
from airlab_reviewer.stats import MINIMIZED, Comparison, RunResult, compare, mean_std

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("airlab_reviewer", "templates"),
    autoescape=jinja2.select_autoescape(["html.j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)
_templates.filters["e_md"] = lambda text: str(text).replace("|", "\\|").replace("\n", " ")


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


class Reviewer:
    def __init__(self, artifacts: ArtifactStore) -> None:
        self.artifacts = artifacts

    # -- evaluation -----------------------------------------------------------------------------------------

    def result(self, research_id: str, experiment_id: str) -> RunResult:
        raw = self.artifacts.get(experiment_key(research_id, experiment_id, "result.json"))
        return RunResult.of(json.loads(raw))

    def evaluate(
        self,
        research_id: str,
        name: str,
        metric: str,
        candidate: Mapping[str, str],
        baseline: Mapping[str, str],
        *,
        maximize: bool | None = None,
    ) -> Comparison:
        """The candidate's runs (seed -> experiment id) against the baseline's, from their stored results."""
        candidate_runs = {int(s): self.result(research_id, x) for s, x in candidate.items()}
        baseline_runs = {int(s): self.result(research_id, x) for s, x in baseline.items()}
        comparison = compare(metric, baseline_runs, candidate_runs, maximize=maximize)
        self.artifacts.put(
            f"{research_prefix(research_id)}reviews/{name}.json",
            json.dumps(comparison.to_dict(), indent=2).encode(),
            content_type="application/json",
        )
        return comparison

    async def evaluate_async(self, *args: Any, **kwargs: Any) -> Comparison:
        return await asyncio.to_thread(self.evaluate, *args, **kwargs)

    # -- the report -----------------------------------------------------------------------------------------

    def _metrics_curve(self, research_id: str, experiment_id: str, metric: str) -> list[tuple[int, float]]:
        try:
            raw = self.artifacts.get(experiment_key(research_id, experiment_id, "metrics.jsonl")).decode()
        except Exception:
            return []
        points = []
        for line in raw.splitlines():
            row = json.loads(line) if line.strip() else {}
            if "train_samples" in row and f"val_{metric}" in row:
                points.append((int(row["train_samples"]), float(row[f"val_{metric}"])))
        return points

    def write_report(
        self, research: Mapping[str, Any], usage: ResearchUsage, *, written_at: dt.datetime | None = None
    ) -> tuple[str, str, dict[str, Any]]:
        """Write reports/report.md, report.html, summary.json and the plots; returns the two report keys and
        the summary."""
        research_id = research["id"]
        loop = research.get("loop") or {}
        plan = research.get("plan") or {}
        metric = plan.get("metric", "")
        maximize = plan.get("direction", "METRIC_DIRECTION_MAXIMIZE") != "METRIC_DIRECTION_MINIMIZE"
        if not plan.get("direction"):
            maximize = metric not in MINIMIZED
        runs = loop.get("experiments", {})
        # The baseline, recomputed from its stored results.
        baseline_ids = (loop.get("baseline") or {}).get("experiments", {})
        baseline_results = {s: self.result(research_id, x) for s, x in baseline_ids.items()}
        baseline = None
        if baseline_results:
            mean, std = mean_std([r.metrics[metric] for r in baseline_results.values()])
            baseline = {"mean": mean, "std": std, "seeds": len(baseline_results)}
        ideas, worked, not_worked = [], [], []
        for idea in loop.get("ideas", {}).values():
            evaluation = None
            if idea.get("status") == "evaluated" and baseline_ids:
                evaluation = self.evaluate(
                    research_id, idea["id"], metric, idea["evaluations"], baseline_ids, maximize=maximize
                ).to_dict()
                evaluation["candidate"] = {s: x for s, x in idea["evaluations"].items()}
            review = idea.get("review") or {}
            row = {
                "id": idea["id"],
                "title": idea.get("title", ""),
                "change": idea.get("change", ""),
                "approved": bool(review.get("approved")),
                "status": idea.get("status", ""),
                "trials": len(idea.get("trials", [])),
                "evaluation": evaluation,
                "params": idea.get("best_params"),
                "code_ref": idea.get("code_ref", ""),
            }
            ideas.append(row)
            if evaluation and evaluation["significant"]:
                worked.append(row)
            else:
                if evaluation:
                    why = (
                        f"{fmt(evaluation['mean'])} ± {fmt(evaluation['std'])}, "
                        f"gain {evaluation['gain']:+.4f}: "
                        f"not significant. {' '.join(evaluation['findings'])}"
                    )
                elif idea.get("status") == "rejected":
                    why = "rejected in review: " + "; ".join(review.get("reasons", []))
                else:
                    why = f"{idea.get('status', '')}: {idea.get('failure', '')}".strip(": ")
                row["why"] = why
                not_worked.append(row)
        evaluated = [i for i in ideas if i["evaluation"]]
        best = max(worked, key=lambda i: i["evaluation"]["gain"], default=None)
        if best is not None:
            e = best["evaluation"]
            verdict = (
                f"'{best['title']}' beat the baseline significantly: {fmt(e['mean'])} ± {fmt(e['std'])} "
                f"against {fmt(e['baseline_mean'])} ± {fmt(e['baseline_std'])} ({metric})"
            )
        elif baseline is None:
            verdict = "no result: the baseline did not run"
        else:
            verdict = (
                f"no significant gain over the baseline ({metric} {fmt(baseline['mean'])} "
                f"± {fmt(baseline['std'])})"
            )
        plots = self._plots(research_id, loop, metric, maximize, baseline, evaluated)
        best_code = ""
        if best is not None and best["code_ref"]:
            best_code = self.artifacts.get(best["code_ref"] + "train.py").decode(errors="replace")
        failures = [
            f"{f.get('title') or f.get('what', '')}: {f.get('error', '')}" for f in loop.get("failures", [])
        ]
        failures += [
            f"experiment {x} ({e['kind']} of {e['name']}): {e.get('reason', '')}"
            for x, e in runs.items()
            if e["state"] == "failed"
        ]
        timing = {
            "llm_seconds": usage.total.latency_seconds,
            "experiment_seconds": sum(float(e.get("run_seconds", 0.0)) for e in runs.values()),
            "waiting_seconds": sum(float(e.get("queued_seconds", 0.0)) for e in runs.values()),
        }
        counts = {
            "requested": len(runs),
            "finished": sum(1 for e in runs.values() if e["state"] == "finished"),
            "failed": sum(1 for e in runs.values() if e["state"] == "failed"),
        }
        context = {
            "goal": research.get("goal", ""),
            "research_id": research_id,
            "verdict": verdict,
            "stop_reason": loop.get("stop_reason", ""),
            "written_at": (written_at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC"),
            "plan": _plan_view(plan),
            "maximize": maximize,
            "baseline": baseline,
            "ideas": ideas,
            "worked": worked,
            "not_worked": not_worked,
            "compared": len(evaluated),
            "decisions": loop.get("decisions", []),
            "plots": plots,
            "best_code": best_code,
            "best_title": best["title"] if best else "",
            "best_params": json.dumps(best["params"]) if best else "",
            "usage": {a: u.__dict__ for a, u in sorted(usage.agents.items())},
            "counts": counts,
            "timing": timing,
            "failures": failures,
            "fmt": fmt,
        }
        markdown = _templates.get_template("report.md.j2").render(context)
        html = _templates.get_template("report.html.j2").render(context)
        summary = {
            "research_id": research_id,
            "metric": metric,
            "maximize": maximize,
            "verdict": verdict,
            "stop_reason": loop.get("stop_reason", ""),
            "baseline": baseline,
            "baseline_experiments": baseline_ids,
            "ideas": [{k: v for k, v in i.items() if k not in ("why",)} for i in ideas],
            "best_idea_id": best["id"] if best else None,
            "counts": counts,
            "timing": timing,
            "usage": context["usage"],
        }
        md_key, html_key = report_key(research_id, "report.md"), report_key(research_id, "report.html")
        self.artifacts.put(md_key, markdown.encode(), content_type="text/markdown")
        self.artifacts.put(html_key, html.encode(), content_type="text/html")
        self.artifacts.put(
            report_key(research_id, "summary.json"),
            json.dumps(summary, indent=2).encode(),
            content_type="application/json",
        )
        return md_key, html_key, summary

    def _plots(
        self,
        research_id: str,
        loop: Mapping[str, Any],
        metric: str,
        maximize: bool,
        baseline: dict[str, Any] | None,
        evaluated: list[dict[str, Any]],
    ) -> list[dict[str, str]]:
        runs = list(loop.get("experiments", {}).items())
        titles = {i: idea.get("title", i) for i, idea in loop.get("ideas", {}).items()}
        plots = []

        def keep(name: str, title: str, figure: plt.Figure) -> None:
            buffer = io.BytesIO()
            figure.tight_layout()
            figure.savefig(buffer, format="png", dpi=90)
            plt.close(figure)
            png = buffer.getvalue()
            self.artifacts.put(report_key(research_id, name), png, content_type="image/png")
            plots.append({"file": name, "title": title, "base64": base64.b64encode(png).decode()})

        # Validation score of every experiment, in the order they were asked for.
        figure, axis = plt.subplots(figsize=(8, 3.6))
        names = sorted({e["name"] for _, e in runs})
        for name in names:
            points = [
                (n, e["validation"])
                for n, (_, e) in enumerate(runs)
                if e["name"] == name and e["validation"] is not None
            ]
            if points:
                axis.scatter(*zip(*points, strict=True), label=titles.get(name, name)[:40], s=22)
        if (loop.get("baseline") or {}).get("validation") is not None:
            axis.axhline(
                loop["baseline"]["validation"], color="grey", linestyle="--", label="baseline (validation)"
            )
        axis.set_xlabel("experiment")
        axis.set_ylabel(f"validation {metric}")
        axis.legend(fontsize=7, loc="best")
        keep("experiments.png", f"Validation {metric} of every experiment", figure)

        # Best validation score so far over the search trials.
        figure, axis = plt.subplots(figsize=(8, 3.2))
        best_so_far, series = None, []
        for _, e in runs:
            if e["kind"] == "trial" and e["validation"] is not None:
                value = e["validation"]
                best_so_far = value if best_so_far is None else (max if maximize else min)(best_so_far, value)
                series.append(best_so_far)
        if series:
            axis.plot(range(1, len(series) + 1), series, marker="o")
        if (loop.get("baseline") or {}).get("validation") is not None:
            axis.axhline(loop["baseline"]["validation"], color="grey", linestyle="--", label="baseline")
            axis.legend(fontsize=7)
        axis.set_xlabel("search trial")
        axis.set_ylabel(f"best validation {metric}")
        keep("best_so_far.png", "Best validation score so far", figure)

        # Learning curves (validation score against training samples) of the baseline and evaluated ideas.
        figure, axis = plt.subplots(figsize=(8, 3.6))
        curves = [("baseline", (loop.get("baseline") or {}).get("experiments", {}))]
        curves += [(i["title"][:40], i["evaluation"]["candidate"]) for i in evaluated]
        for label, ids in curves:
            by_size: dict[int, list[float]] = {}
            for experiment_id in ids.values():
                for size, value in self._metrics_curve(research_id, experiment_id, metric):
                    by_size.setdefault(size, []).append(value)
            if by_size:
                sizes = sorted(by_size)
                axis.plot(sizes, [sum(by_size[s]) / len(by_size[s]) for s in sizes], marker="o", label=label)
        axis.set_xlabel("training samples")
        axis.set_ylabel(f"validation {metric}")
        axis.legend(fontsize=7, loc="best")
        keep("learning_curves.png", "Learning curves (mean over seeds)", figure)

        # Test score of the baseline and each evaluated idea, mean ± std over seeds.
        if baseline is not None:
            figure, axis = plt.subplots(figsize=(8, 3.2))
            labels = ["baseline"] + [i["title"][:30] for i in evaluated]
            means = [baseline["mean"]] + [i["evaluation"]["mean"] for i in evaluated]
            stds = [baseline["std"]] + [i["evaluation"]["std"] for i in evaluated]
            colors = ["grey"] + [
                "tab:green" if i["evaluation"]["significant"] else "tab:orange" for i in evaluated
            ]
            axis.bar(range(len(labels)), means, yerr=stds, color=colors, capsize=4)
            axis.set_xticks(range(len(labels)), labels, rotation=15, fontsize=7)
            low = min(m - s for m, s in zip(means, stds, strict=True))
            high = max(m + s for m, s in zip(means, stds, strict=True))
            axis.set_ylim(low - (high - low) * 0.5 - 1e-6, high + (high - low) * 0.3 + 1e-6)
            axis.set_ylabel(f"test {metric}")
            keep(
                "comparison.png",
                f"Held-out test {metric}: baseline and evaluated ideas (green: significant)",
                figure,
            )
        return plots


def _plan_view(plan: Mapping[str, Any]) -> dict[str, Any]:
    budget = plan.get("budget") or {}
    return {
        "dataset": plan.get("dataset", ""),
        "task": plan.get("task", ""),
        "metric": plan.get("metric", ""),
        "baseline": plan.get("baseline", ""),
        "seeds": plan.get("seeds", []),
        "test_fraction": float(plan.get("test_fraction", 0.0)),
        "reasons": plan.get("reasons", []),
        "budget": {
            "max_experiments": int(budget.get("max_experiments", 0)),
            "max_wall_seconds": int(budget.get("max_wall_seconds", 0)),
            "max_tokens": int(budget.get("max_tokens", 0)),
            "max_cost_usd": float(budget.get("max_cost_usd", 0.0)),
        },
    }
