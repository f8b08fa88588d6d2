"""Null goals: researches on data whose labels were shuffled, so no model can beat chance; every claimed win
is a false one. Runs N researches through the embedded stack (the default local model) and prints the
false claims, the comparisons made and, side by side on the same researches, what the old rule (each
comparison alone at 5%) would have claimed.

The goals are made here from built-in datasets with their labels permuted by a seed of their own, cycling
through classification and regression and through the lab's metrics:
  digits (accuracy), diabetes (RMSE), wine (macro F1), breast cancer (ROC AUC), Friedman 1 (MAE).

Usage: make bench-null   (or: .venv/bin/python scripts/bench_null.py [--goals 20] [--budget 16]
       [--json FILE] [--keep DIR]); exits 1 when any research claimed a win."""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from airlab import stack
from airlab.grpc_client import channel, client_token
from airlab.settings import Settings
from airlab.v1 import lab_pb2, lab_pb2_grpc, research_pb2

# (dataset, task, metric): the null goals cycle through these.
SOURCES = [
    ("digits", "classification", "accuracy"),
    ("diabetes", "regression", "rmse"),
    ("wine", "classification", "f1_macro"),
    ("breast_cancer", "classification", "roc_auc"),
    ("friedman1", "regression", "mae"),
]
DONE = (research_pb2.RESEARCH_STATE_COMPLETED, research_pb2.RESEARCH_STATE_FAILED)


@dataclass(frozen=True)
class NullGoal:
    name: str
    task: str
    metric: str
    path: Path

    @property
    def goal(self) -> str:
        model = "logistic-regression" if self.task == "classification" else "linear-regression"
        return f"beat the {model} baseline on my {self.name} table"


def load(dataset: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    if dataset == "friedman1":
        return datasets.make_friedman1(n_samples=600, noise=1.0, random_state=0)
    loader = getattr(datasets, f"load_{dataset}")
    data = loader()
    return data.data, data.target


def write_null_goals(count: int, folder: Path) -> list[NullGoal]:
    """`count` CSV files of built-in datasets with shuffled labels, readable by the runner's sandbox."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    goals = []
    for number in range(count):
        dataset, task, metric = SOURCES[number % len(SOURCES)]
        x, y = load(dataset)
        y = np.random.default_rng(1000 + number).permutation(y)
        name = f"shuffled_{dataset}_{number}"
        path = folder / f"{name}.csv"
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([*(f"x{i}" for i in range(x.shape[1])), "label"])
            for row, label in zip(x, y, strict=True):
                writer.writerow(
                    [*(f"{v:.6g}" for v in row), int(label) if task == "classification" else label]
                )
        path.chmod(0o644)
        goals.append(NullGoal(name, task, metric, path))
    return goals


def old_rule_claims(evaluation: dict[str, Any]) -> bool:
    """The rule before family-wise control: each comparison alone, a t-test at 5%, the gain above the
    seeds' noise and the 95% bootstrap interval above zero (its p below 0.05), no chance check."""
    if evaluation["gain"] <= 0 or not evaluation["clears_noise"] or len(evaluation["seeds"]) < 2:
        return False
    t_passes = evaluation.get("p_value", 0.0) < 0.05
    return t_passes and evaluation.get("bootstrap_p", 0.0) < 0.05


def run_research(
    lab: lab_pb2_grpc.LabServiceStub, goal: NullGoal, budget: int, workdir: Path
) -> dict[str, Any]:
    request = lab_pb2.StartResearchRequest(
        goal=goal.goal,
        budget=research_pb2.Budget(max_experiments=budget),
        allow_defaults=True,
        metric=goal.metric,
        user_dataset=research_pb2.UserDataset(source=str(goal.path), target="label", task=goal.task),
    )
    began = time.perf_counter()
    research = lab.StartResearch(request)
    while (done := lab.GetResearch(lab_pb2.GetResearchRequest(id=research.id))).state not in DONE:
        time.sleep(0.5)
    seconds = time.perf_counter() - began
    if not done.report_markdown_key:
        return {
            "goal": goal.name,
            "research_id": research.id,
            "failed": done.state_reason,
            "seconds": seconds,
        }
    summary = json.loads(
        (workdir / "artifacts" / done.report_markdown_key).with_name("summary.json").read_text()
    )
    evaluations = [i["evaluation"] for i in summary["ideas"] if i["evaluation"]]
    chance = summary.get("chance") or {}
    return {
        "goal": goal.name,
        "metric": goal.metric,
        "research_id": research.id,
        "claimed": summary["best_idea_id"] is not None,
        "verdict": summary["verdict"],
        "comparisons": len(evaluations),
        "old_rule_claimed": any(old_rule_claims(e) for e in evaluations),
        "old_rule_comparisons": sum(old_rule_claims(e) for e in evaluations),
        "suggestive": sum(1 for e in evaluations if e["suggestive"]),
        "smallest_adjusted_p": min((e["adjusted_p"] for e in evaluations), default=None),
        "baseline_at_chance": bool(chance) and not chance["baseline_beats_chance"],
        "extra_seed_runs": summary["verdict_rule"]["extra_seed_runs"],
        "used": summary["counts"]["requested"],
        "seconds": seconds,
    }


def bench(goals: list[NullGoal], budget: int, workdir: Path) -> list[dict[str, Any]]:
    """Every null goal through one embedded stack, one research after another."""
    settings = Settings(workspace=workdir)
    results = []
    try:
        stack.up(settings, report=lambda line: None)
        state = stack.load_state(workdir.resolve())
        assert state is not None
        with channel(
            state.address_of("manager"), token=client_token(settings), tls=state.client_tls()
        ) as lab_channel:
            lab = lab_pb2_grpc.LabServiceStub(lab_channel)
            for goal in goals:
                result = run_research(lab, goal, budget, workdir)
                results.append(result)
                print(f"{goal.name} ({goal.metric}): {outcome(result)}", flush=True)
    finally:
        stack.down(settings)
    return results


def outcome(result: dict[str, Any]) -> str:
    if "failed" in result:
        return f"failed: {result['failed']}"
    return (
        f"{'CLAIMED' if result['claimed'] else 'no claim'}, {result['comparisons']} comparisons, "
        f"{result['used']} experiments, {result['seconds']:.0f} s: {result['verdict']}"
    )


def table(results: list[dict[str, Any]], budget: int) -> str:
    ran = [r for r in results if "failed" not in r]
    claims = sum(r["claimed"] for r in ran)
    old = sum(r["old_rule_claimed"] for r in ran)
    comparisons = sum(r["comparisons"] for r in ran)
    suggestive = sum(r["suggestive"] for r in ran)
    at_chance = sum(r["baseline_at_chance"] for r in ran)
    extra = sum(r["extra_seed_runs"] for r in ran)
    rows = [
        "| rule | researches | comparisons | false claims | suggestive | baseline at chance "
        "| extra-seed runs |",
        "|---|---|---|---|---|---|---|",
        f"| family-wise (Holm over the planned family, two looks, chance) | {len(ran)} | {comparisons} | "
        f"**{claims}** | {suggestive} | {at_chance} | {extra} |",
        f"| each comparison alone at 5% (the old rule) | {len(ran)} | {comparisons} | {old} | - | - | - |",
    ]
    seconds = statistics.fmean(r["seconds"] for r in ran) if ran else 0.0
    failed = len(results) - len(ran)
    rows.append(
        f"\nbudget {budget} experiments; {seconds:.0f} s a research on average"
        + (f"; {failed} research(es) failed before a report" if failed else "")
    )
    return "\n".join(rows)


def main() -> None:
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    parser = argparse.ArgumentParser()
    parser.add_argument("--goals", type=int, default=20, help="how many null goals (cycling the datasets)")
    parser.add_argument("--budget", type=int, default=16)
    parser.add_argument("--json", type=Path, help="write every research's result here")
    parser.add_argument(
        "--keep", type=Path, help="keep the workspace (and the goals' files) under this folder"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o755)  # the sandbox's user reads the goals' files under it
        goals = write_null_goals(args.goals, root / "goals")
        results = bench(goals, args.budget, root / "workspace")
    print()
    print(table(results, args.budget))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "budget": args.budget,
                    "goals": [asdict(g) | {"path": str(g.path)} for g in goals],
                    "results": results,
                },
                indent=2,
            )
        )
    if any(r.get("claimed") for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
