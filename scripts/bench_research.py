"""The lab against plain Optuna TPE and random search at the same experiment budget, side by side in one run.

For each built-in goal ("beat the <baseline> on <dataset>") and each repeat:
  - the lab: the embedded stack with the local LLM, a research with --budget experiments (baseline
    included), fresh memory each time;
  - TPE and random search: Optuna over a generic space of scikit-learn models (family + 1-2 numbers), as
    many search trials as the lab had after its baseline and evaluation runs, each trial the same job
    template on the same fixed held-out split, picked by validation score, then evaluated over the plan's
    seeds like the lab's best idea.
Every method's held-out score is compared with the baseline by the reviewer's significance rule.

Usage: make bench-research  (or: .venv/bin/python scripts/bench_research.py [--datasets digits,wine]
       [--repeats 2] [--budget 12])"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import optuna

from airlab import stack
from airlab.job_templates import template_source
from airlab.settings import Settings
from airlab.v1 import lab_pb2, lab_pb2_grpc, research_pb2
from airlab_reviewer.stats import RunResult, compare

optuna.logging.set_verbosity(optuna.logging.WARNING)
GOALS = {
    "digits": "beat the logistic-regression baseline on digits",
    "breast_cancer": "beat the logistic-regression baseline on breast cancer",
    "wine": "beat the logistic-regression baseline on wine",
    "diabetes": "beat the linear-regression baseline on diabetes",
}
TASKS = {
    "digits": ("classification", "accuracy", "logistic_regression"),
    "breast_cancer": ("classification", "roc_auc", "logistic_regression"),
    "wine": ("classification", "accuracy", "logistic_regression"),
    "diabetes": ("regression", "rmse", "linear_regression"),
}
SEEDS = (0, 1, 2)


def space(task: str, trial: optuna.Trial) -> tuple[str, dict[str, Any]]:
    """A generic model space: what a person would hand Optuna without any idea of their own."""
    suffix = "classifier" if task == "classification" else "regressor"
    linear = "logistic_regression" if task == "classification" else "ridge"
    family = trial.suggest_categorical("family", [linear, "random_forest", "knn", "gradient_boosting"])
    if family == linear:
        name = "C" if task == "classification" else "alpha"
        return linear, {name: trial.suggest_float(name, 1e-3, 1e2, log=True)}
    if family == "random_forest":
        return f"random_forest_{suffix}", {
            "n_estimators": trial.suggest_int("rf_n_estimators", 10, 300, log=True),
            "max_depth": trial.suggest_int("rf_max_depth", 2, 30),
        }
    if family == "knn":
        return f"knn_{suffix}", {"n_neighbors": trial.suggest_int("n_neighbors", 1, 30)}
    return f"gradient_boosting_{suffix}", {
        "n_estimators": trial.suggest_int("gb_n_estimators", 20, 200, log=True),
        "learning_rate": trial.suggest_float("gb_learning_rate", 0.01, 0.5, log=True),
    }


def run_job(script: Path, config: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as work:
        env = {**os.environ, "JOB_CONFIG": json.dumps(config)}
        subprocess.run([sys.executable, str(script)], cwd=work, env=env, check=True, capture_output=True)
        return json.loads((Path(work) / "result.json").read_text())


def plain_search(
    dataset: str, trials: int, sampler: optuna.samplers.BaseSampler, script: Path
) -> dict[str, Any]:
    task, metric, baseline_model = TASKS[dataset]
    base = {"dataset": dataset, "task": task, "metric": metric, "split_seed": SEEDS[0], "test_fraction": 0.25}
    maximize = metric != "rmse"
    study = optuna.create_study(direction="maximize" if maximize else "minimize", sampler=sampler)
    results: dict[int, dict[str, Any]] = {}
    began = time.perf_counter()
    for _ in range(trials):
        trial = study.ask()
        model, params = space(task, trial)
        result = run_job(
            script, {**base, "model": model, "params": params, "seed": SEEDS[0], "save_model": False}
        )
        results[trial.number] = {"model": model, "params": params, "result": result}
        study.tell(trial, result["metrics"][f"val_{metric}"])
    best = results[study.best_trial.number]
    runs = {SEEDS[0]: RunResult.of(best["result"])}
    for seed in SEEDS[1:]:
        config = {**base, "model": best["model"], "params": best["params"], "seed": seed, "save_model": False}
        runs[seed] = RunResult.of(run_job(script, config))
    baseline = {
        s: RunResult.of(
            run_job(script, {**base, "model": baseline_model, "params": {}, "seed": s, "save_model": False})
        )
        for s in SEEDS
    }
    comparison = compare(metric, baseline, runs, maximize=maximize)
    return {"comparison": comparison, "seconds": time.perf_counter() - began, "tokens": 0, "trials": trials}


def lab_run(dataset: str, budget: int, workdir: Path) -> dict[str, Any]:
    settings = Settings(workspace=workdir)
    began = time.perf_counter()
    stack.up(settings, report=lambda line: None)
    try:
        state = stack.load_state(workdir.resolve())
        assert state is not None
        with grpc.insecure_channel(state.address_of("manager")) as channel:
            lab = lab_pb2_grpc.LabServiceStub(channel)
            research = lab.StartResearch(
                lab_pb2.StartResearchRequest(
                    goal=GOALS[dataset], budget=research_pb2.Budget(max_experiments=budget)
                )
            )
            while True:
                done = lab.GetResearch(lab_pb2.GetResearchRequest(id=research.id))
                if done.state in (research_pb2.RESEARCH_STATE_COMPLETED, research_pb2.RESEARCH_STATE_FAILED):
                    break
                time.sleep(1)
    finally:
        stack.down(settings)
    summary = json.loads(
        (workdir / "artifacts" / done.report_markdown_key).with_name("summary.json").read_text()
    )
    trials = sum(i["trials"] for i in summary["ideas"])
    best = next((i for i in summary["ideas"] if i["id"] == summary["best_idea_id"]), None)
    if best is None:  # nothing significant: the best evaluated idea by gain, if any
        evaluated = [i for i in summary["ideas"] if i["evaluation"]]
        best = max(evaluated, key=lambda i: i["evaluation"]["gain"], default=None)
    return {
        "evaluation": best["evaluation"] if best else None,
        "baseline": summary["baseline"],
        "seconds": time.perf_counter() - began,
        "tokens": done.progress.tokens,
        "trials": trials,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", default=",".join(GOALS))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--budget", type=int, default=12)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        script = Path(scratch) / "train.py"
        script.write_text(template_source("sklearn_train_template.py"))
        for dataset in args.datasets.split(","):
            for repeat in range(args.repeats):
                lab = lab_run(dataset, args.budget, Path(scratch) / f"lab-{dataset}-{repeat}")
                trials = max(lab["trials"], 1)
                # TPE's start-up shortened as the lab's own search does; at a default of 10 random start-up
                # trials, TPE at a budget this small would be random search under another name.
                tpe_sampler = optuna.samplers.TPESampler(seed=repeat, n_startup_trials=2)
                tpe = plain_search(dataset, trials, tpe_sampler, script)
                rnd = plain_search(dataset, trials, optuna.samplers.RandomSampler(seed=1000 + repeat), script)
                rows.append((dataset, repeat, lab, tpe, rnd))
                print(f"{dataset} repeat {repeat}: done", flush=True)
    header = (
        f"{'goal':<14}{'rep':>4}{'baseline':>10}  {'method':<7}{'score':>9}{'gain':>9}{'signif':>8}"
        f"{'gap closed':>12}{'trials':>8}{'wall s':>8}{'tokens':>8}"
    )
    print(header)
    print("-" * len(header))
    for dataset, repeat, lab, tpe, rnd in rows:
        baseline = lab["baseline"]["mean"] if lab["baseline"] else float("nan")
        tpe_gain = tpe["comparison"].gain
        lines = []
        if lab["evaluation"]:
            e = lab["evaluation"]
            lines.append(("lab", e["mean"], e["gain"], e["significant"], lab))
        else:
            lines.append(("lab", float("nan"), 0.0, False, lab))
        for name, result in (("tpe", tpe), ("random", rnd)):
            c = result["comparison"]
            lines.append((name, c.mean, c.gain, c.significant, result))
        for name, score, gain, significant, result in lines:
            closed = gain / tpe_gain if tpe_gain > 0 else float("nan")
            print(
                f"{dataset:<14}{repeat:>4}{baseline:>10.4f}  {name:<7}{score:>9.4f}{gain:>+9.4f}"
                f"{'yes' if significant else 'no':>8}{closed:>12.2f}{result['trials']:>8}"
                f"{result['seconds']:>8.0f}{result['tokens']:>8}"
            )
    print(
        "gain: held-out test score minus the baseline's, in the better direction, mean over seeds "
        f"{list(SEEDS)}; gap closed: gain / TPE's gain"
    )


if __name__ == "__main__":
    main()
