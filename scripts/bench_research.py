"""The lab against plain Optuna TPE and random search at the same experiment budget, side by side in one run,
on goals with headroom that the repository generates itself.

Goals (--goals, comma-separated):
  - hastie: Hastie 10.2 (2000 samples, a sphere-shaped boundary): a linear baseline is at chance;
  - friedman1: Friedman 1 regression (sin and square terms, noise 1.0): a linear baseline's RMSE is twice
    the reachable one;
  - mixed_csv: a CSV written here with numeric and text columns, missing cells and an interaction in its
    label: the user's-own-data path, with imputation and encoding inside each model's pipeline;
  - shapes: U-Net segmentation of generated shapes (Dice): PyTorch networks, epochs and learning rate;
  - digits_cnn: digits as 1x8x8 images, a PyTorch MLP baseline, networks searched (CNN or MLP);
  - digits, breast_cancer, wine, diabetes: the built-in "beat the baseline" goals (little headroom);
  - loans: a table whose signal is in what its columns mean (debt to income, days employed from two
    dates, income against the region's): model search on the raw columns plateaus below features a
    person (or the idea agent) writes. Its "expert" row is TPE over the same families with the features
    the generator knows to matter: the attainable ceiling. Its "measured" row is TPE over the same
    families with the three derived features the lab's data profile measures most telling beyond their
    columns (the idea prompt's example): what the measurement alone gives, with no LLM and no loop;
  - subscriptions: the same kind of table for a software subscription (sessions per seat, days since the
    last login at export, a price against its plan's usual, words in the last support ticket), with its
    expert and measured rows.
Each goal runs `--repeats` times; repeat r uses seeds (3r, 3r+1, 3r+2) for every method, so the held-out
split and the evaluation seeds differ between repeats and agree between methods.

Methods, each with the same number of experiments (--budget, the baseline's runs included):
  - the lab: the embedded stack with the local LLM, fresh workspace and memory each time;
  - TPE and random search: Optuna over a fixed broad space of scikit-learn families, or for the PyTorch
    goals of the template's networks with their width, learning rate and epochs (the same job template,
    the same split), budget - 2*seeds + 1 search trials, the best by validation then run over
    the seeds, judged by the reviewer's significance rule.
Ablations of the lab (--ablation): floor-off (no portfolio), exploit-off, improve-off (no LLM changes of
the best code), code-ahead-off (an idea's code asked for only at its turn), serial (1 trial at a time),
stopping-off (every search trial trains for all its epochs), evaluate-all (every idea's best point runs
over the seeds, also when it is behind the best idea's on validation), race-off (an LLM idea searches
its whole trial budget even when its first two trials are behind the best idea's), bar-trial ("ahead of
the best" is judged against the best idea's best search trial alone, not the mean of its runs over the
seeds when that is lower), build-off (each feature idea runs its own steps alone, not added to the best
feature idea's), wait-off (the slots wait while the idea agent works, no more search on the best idea
meanwhile), one-at-a-time (the next queued idea starts only once the current one ended, never in the
slots its last runs leave free), epochs-middle (a portfolio network's first trial at the middle of its
epochs range, not the top), llm-off (no LLM: the portfolio and more search on its best only); and
warm-start (a feature idea's first trial at the best point found so far for its model, not the middle of
each range).

TPE and random search run on the whole machine (--plain-cores machine), or only on the cores the lab's
runner gives its experiments (--plain-cores experiments): the lab keeps the others for its local LLM
server, so this compares the two on the same cores, the LLM's share set aside.

Usage: make bench-research   (or: .venv/bin/python scripts/bench_research.py [--goals hastie,friedman1]
       [--repeats 3] [--first-repeat 0] [--budget 30] [--ablation floor-off] [--keep DIR] [--no-lab]
       [--plain-cores experiments])"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from bench_null import old_rule_claims

from airlab import domain, stack, strategy, techniques
from airlab.cpus import SlotCpus, pin_command, plan_cpus
from airlab.enums import IDEA_ORIGIN_WORDS
from airlab.grpc_client import channel, client_token
from airlab.job_templates import template_source
from airlab.results import RunResult
from airlab.settings import Settings
from airlab.v1 import idea_pb2, lab_pb2, lab_pb2_grpc, loop_pb2, research_pb2
from airlab_reviewer.stats import compare

optuna.logging.set_verbosity(optuna.logging.WARNING)
# Each ablation is a strategy preset (airlab.strategy.PRESETS): the default with one part of the policy off.
ABLATIONS = {
    ("full" if name == "default" else name): ({} if name == "default" else {"AIRLAB_RESEARCH__PRESET": name})
    for name in strategy.PRESETS
}


@dataclass(frozen=True)
class Goal:
    goal: str
    dataset: str
    task: str
    metric: str
    baseline_model: str
    csv_target: str = ""
    template: str = "sklearn"
    # Feature steps of the technique catalog the goal's generator knows to matter (the expert row).
    expert_steps: tuple[dict[str, Any], ...] = ()

    @property
    def maximize(self) -> bool:
        return domain.maximize(self.metric)


GOALS = {
    "hastie": Goal("get the best accuracy you can on hastie", "hastie", "classification", "accuracy",
                   "logistic_regression"),
    "friedman1": Goal("minimise the rmse on friedman1", "friedman1", "regression", "rmse",
                      "linear_regression"),
    "mixed_csv": Goal("get the best accuracy you can on my customer table", "csv", "classification",
                      "accuracy", "logistic_regression", csv_target="churned"),
    "shapes": Goal("get the best dice you can on shapes", "shapes", "segmentation", "dice", "unet",
                   template="pytorch"),
    "digits_cnn": Goal("get the best accuracy you can on digits with a CNN", "digits", "classification",
                       "accuracy", "mlp", template="pytorch"),
    "digits": Goal("beat the logistic-regression baseline on digits", "digits", "classification", "accuracy",
                   "logistic_regression"),
    "breast_cancer": Goal("beat the logistic-regression baseline on breast cancer", "breast_cancer",
                          "classification", "roc_auc", "logistic_regression"),
    "wine": Goal("beat the logistic-regression baseline on wine", "wine", "classification", "accuracy",
                 "logistic_regression"),
    "diabetes": Goal("beat the linear-regression baseline on diabetes", "diabetes", "regression", "rmse",
                     "linear_regression"),
    "loans": Goal("get the best ROC AUC you can on the loans table", "loans", "classification", "roc_auc",
                  "logistic_regression", expert_steps=(
                      {"kind": "ratio", "columns": ["debt", "income"]},
                      {"kind": "date_difference", "columns": ["applied_on", "employed_since"]},
                      {"kind": "group_mean", "columns": ["income", "region"]},
                  )),
    "subscriptions": Goal("get the best ROC AUC you can on the subscriptions table", "subscriptions",
                          "classification", "roc_auc", "logistic_regression", expert_steps=(
                              {"kind": "ratio", "columns": ["sessions_30d", "seats"]},
                              {"kind": "date_difference", "columns": ["exported_on", "last_login"]},
                              {"kind": "group_mean", "columns": ["price_per_seat", "plan"]},
                          )),
}  # fmt: skip


def expert_source(goal: Goal) -> str:
    """The sklearn template with the goal's known features compiled in, as a feature idea's code is."""
    steps = [
        idea_pb2.FeatureStep(technique=techniques.technique_of(s["kind"]), columns=s["columns"])
        for s in goal.expert_steps
    ]
    return techniques.with_features(template_source(domain.TEMPLATE_FILES["sklearn"]), steps)


def measured_source(goal: Goal, seeds: list[int], csv_path: Path, script: Path) -> tuple[str, list[str]]:
    """The sklearn template with the steps the lab's data profile measures most telling beyond their
    columns compiled in (the idea prompt's example, `techniques.example_steps`), and those steps in words:
    what the profile alone gives, no LLM. Profiled as the lab's baseline's first run profiles, on the same
    split; that run is not counted in the budget (the lab's profiles within its baseline's run)."""
    config = job_base(goal, seeds, csv_path) | {
        "model": goal.baseline_model, "params": {}, "seed": seeds[0], "profile": True,
    }  # fmt: skip
    found = (run_job(script, config).model_extra or {})["profile"]
    steps = [m.step() for m in techniques.example_steps(techniques.DataProfile.model_validate(found))]
    source = techniques.with_features(
        template_source(domain.TEMPLATE_FILES["sklearn"]), [step.to_proto() for step in steps]
    )
    return source, [step.described() for step in steps]


def write_mixed_csv(path: Path, rows: int = 1200) -> None:
    """Numeric and text columns, ~8% missing cells, a label from an interaction a linear model misses."""
    rng = random.Random(7)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["tenure", "monthly_fee", "support_calls", "plan", "region", "churned"])
        for _ in range(rows):
            tenure, fee, calls = rng.uniform(0, 60), rng.gauss(50, 15), rng.randint(0, 9)
            plan, region = (
                rng.choice(["basic", "plus", "pro"]),
                rng.choice(["north", "south", "east", "west"]),
            )
            risk = (calls > 4) ^ (plan == "basic") ^ (tenure < 12 and fee > 55)
            label = "yes" if (risk if rng.random() > 0.08 else not risk) else "no"
            cells = [f"{tenure:.1f}", f"{fee:.2f}", str(calls), plan, region]
            cells = ["" if rng.random() < 0.08 else c for c in cells]
            writer.writerow([*cells, label])


def network_space(task: str, trial: optuna.Trial) -> tuple[str, dict[str, Any]]:
    """The PyTorch template's networks with their size, learning rate and epochs."""
    training = {
        "learning_rate": trial.suggest_float("learning_rate", 3e-4, 2e-2, log=True),
        "epochs": trial.suggest_int("epochs", 5, 30, log=True),
    }
    if task == "segmentation":
        family = trial.suggest_categorical("family", ["unet", "fcn"])
        return family, training | {"width": trial.suggest_int(f"{family}_width", 8, 32, log=True)}
    family = trial.suggest_categorical("family", ["cnn", "mlp"])
    size = {"cnn": ("channels", 8, 64), "mlp": ("width", 32, 512)}[family]
    return family, training | {size[0]: trial.suggest_int(f"{family}_{size[0]}", size[1], size[2], log=True)}


def space(task: str, trial: optuna.Trial) -> tuple[str, dict[str, Any]]:
    """A fixed broad space of model families: what a person would hand Optuna with no idea of their own."""
    suffix = "classifier" if task == "classification" else "regressor"
    linear = "logistic_regression" if task == "classification" else "ridge"
    family = trial.suggest_categorical(
        "family", [linear, "random_forest", "knn", "hist_gradient_boosting", "svm"]
    )
    if family == linear:
        name = "C" if task == "classification" else "alpha"
        return linear, {name: trial.suggest_float(name, 1e-3, 1e2, log=True)}
    if family == "random_forest":
        return f"random_forest_{suffix}", {
            "n_estimators": trial.suggest_int("rf_n_estimators", 50, 400, log=True),
            "min_samples_leaf": trial.suggest_int("rf_min_samples_leaf", 1, 20, log=True),
        }
    if family == "knn":
        return f"knn_{suffix}", {"n_neighbors": trial.suggest_int("n_neighbors", 1, 50, log=True)}
    if family == "svm":
        return f"svm_{suffix}", {
            "C": trial.suggest_float("svm_C", 1e-2, 1e3, log=True),
            "gamma": trial.suggest_float("svm_gamma", 1e-4, 1.0, log=True),
        }
    return f"hist_gradient_boosting_{suffix}", {
        "learning_rate": trial.suggest_float("hgb_learning_rate", 0.01, 0.3, log=True),
        "max_iter": trial.suggest_int("hgb_max_iter", 50, 500, log=True),
        "max_leaf_nodes": trial.suggest_int("hgb_max_leaf_nodes", 8, 64, log=True),
    }


# The cores plain search runs on (empty: the whole machine), and its thread pools sized to them.
PLAIN_CORES: tuple[int, ...] = ()


def run_job(script: Path, config: dict[str, Any]) -> RunResult:
    with tempfile.TemporaryDirectory() as work:
        env = {**os.environ, "JOB_CONFIG": json.dumps(config)}
        command = [sys.executable, str(script)]
        if PLAIN_CORES:
            env |= SlotCpus(PLAIN_CORES, len(PLAIN_CORES)).env()
            command = pin_command(PLAIN_CORES) + command
        subprocess.run(command, cwd=work, env=env, check=True, capture_output=True)
        return RunResult.model_validate_json((Path(work) / "result.json").read_text())


def job_base(goal: Goal, seeds: list[int], csv_path: Path) -> dict[str, Any]:
    base = {"dataset": goal.dataset, "task": goal.task, "metric": goal.metric, "split_seed": seeds[0],
            "test_fraction": 0.25, "save_model": False}  # fmt: skip
    if goal.csv_target:
        base |= {"csv_path": str(csv_path), "target": goal.csv_target}
    return base


def plain_search(
    goal: Goal,
    seeds: list[int],
    budget: int,
    sampler: optuna.samplers.BaseSampler,
    script: Path,
    csv_path: Path,
    baseline_script: Path | None = None,
) -> dict[str, Any]:
    """Baseline over the seeds, search trials, the best one over the seeds: `budget` experiments in all.
    `baseline_script`: the baseline's own (the expert row's baseline is the plain template's, so its gain
    is measured from the same point as the others')."""
    trials = budget - 2 * len(seeds) + 1
    base = job_base(goal, seeds, csv_path)
    began = time.perf_counter()
    baseline = {
        s: run_job(baseline_script or script, base | {"model": goal.baseline_model, "params": {}, "seed": s})
        for s in seeds
    }
    study = optuna.create_study(direction="maximize" if goal.maximize else "minimize", sampler=sampler)
    found: dict[int, tuple[str, dict[str, Any], RunResult]] = {}
    for _ in range(trials):
        trial = study.ask()
        model, params = (network_space if goal.template == "pytorch" else space)(goal.task, trial)
        try:
            result = run_job(script, base | {"model": model, "params": params, "seed": seeds[0]})
        except subprocess.CalledProcessError:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        found[trial.number] = (model, params, result)
        study.tell(trial, result.metrics[f"val_{goal.metric}"])
    model, params, first = found[study.best_trial.number]
    runs = {seeds[0]: first}
    for seed in seeds[1:]:
        runs[seed] = run_job(script, base | {"model": model, "params": params, "seed": seed})
    comparison = compare(goal.metric, baseline, runs, maximize=goal.maximize)
    # One comparison at the end (a family of one): its verdict at the first look's level.
    return {"score": comparison.mean, "gain": comparison.gain, "baseline": comparison.baseline_mean,
            "used": budget, "seconds": time.perf_counter() - began, "llm_seconds": 0.0,
            "tokens": 0, "claimed": comparison.significant}  # fmt: skip


def lab_run(
    goal: Goal, seeds: list[int], budget: int, workdir: Path, csv_path: Path, env: dict[str, str]
) -> dict[str, Any]:
    os.environ.update(env | {"AIRLAB_RESEARCH__SEEDS": json.dumps(seeds)})
    try:
        settings = Settings(workspace=workdir)
        try:
            stack.up(settings, report=lambda line: None)
            state = stack.load_state(workdir.resolve())
            assert state is not None
            with channel(
                state.address_of("manager"), token=client_token(settings), tls=state.client_tls()
            ) as lab_channel:
                lab = lab_pb2_grpc.LabServiceStub(lab_channel)
                request = lab_pb2.StartResearchRequest(
                    goal=goal.goal, budget=research_pb2.Budget(max_experiments=budget), allow_defaults=True
                )
                if goal.csv_target:
                    request.user_dataset.CopyFrom(
                        research_pb2.UserDataset(source=str(csv_path), target=goal.csv_target, task=goal.task)
                    )
                # The research's own wall time, from its start to its report (the stack's start, about 3 s,
                # is once per machine, not per research).
                began = time.perf_counter()
                research = lab.StartResearch(request)
                # When the research's last run ended (the budget spent, or the last run before it stopped):
                # slot occupancy is measured up to it, the report's writing after it set aside.
                ended, last_run_end = 0, began
                while True:
                    done = lab.GetResearch(lab_pb2.GetResearchRequest(id=research.id))
                    if done.progress.experiments_finished + done.progress.experiments_failed > ended:
                        ended = done.progress.experiments_finished + done.progress.experiments_failed
                        last_run_end = time.perf_counter()
                    if done.state in (
                        research_pb2.RESEARCH_STATE_COMPLETED,
                        research_pb2.RESEARCH_STATE_FAILED,
                    ):
                        break
                    time.sleep(0.2)
                seconds = time.perf_counter() - began
        finally:
            stack.down(settings)
    finally:
        for name in (*env, "AIRLAB_RESEARCH__SEEDS"):
            os.environ.pop(name, None)
    summary = json.loads(
        (workdir / "artifacts" / done.report_markdown_key).with_name("summary.json").read_text()
    )
    evaluated = [i for i in summary["ideas"] if i["evaluation"]]
    best = next((i for i in evaluated if i["id"] == summary["best_idea_id"]), None)
    if best is None:  # nothing significant: the best evaluated idea by gain, if any
        best = max(evaluated, key=lambda i: i["evaluation"]["gain"], default=None)
    baseline = summary["baseline"]["mean"] if summary["baseline"] else float("nan")
    origins = sorted({i["origin"] for i in evaluated if i is best})
    # The LLM's code tasks (its ideas and improve steps that passed review, whose code the coder answered):
    # those whose code ran (passed the smoke run, and its trials did not all fail; an idea the budget ended
    # before its turn counts when its code was ready).
    by_llm = (IDEA_ORIGIN_WORDS[loop_pb2.IDEA_ORIGIN_LLM], IDEA_ORIGIN_WORDS[loop_pb2.IDEA_ORIGIN_IMPROVE])
    llm_tasks = [
        i for i in summary["ideas"] if i["origin"] in by_llm and i["approved"] and i["code_attempts"]
    ]
    ran = [i for i in llm_tasks if i["code_ref"] and not (i["status"].startswith("failed") and i["trials"])]

    # Ran / tasks by form (compiled from the catalog's steps, or code the LLM wrote) and by origin.
    def share(kept: Any) -> str:
        return f"{sum(1 for i in ran if kept(i))}/{sum(1 for i in llm_tasks if kept(i))}"

    forms = {"catalog": share(lambda i: i["steps"]), "code": share(lambda i: not i["steps"])}
    forms |= {origin: share(lambda i, o=origin: i["origin"] == o) for origin in by_llm}
    return {
        "score": best["evaluation"]["mean"] if best else baseline,
        "gain": best["evaluation"]["gain"] if best else 0.0,
        "baseline": baseline,
        "used": summary["counts"]["requested"],
        "seconds": seconds,
        "llm_seconds": done.progress.llm_seconds,
        "tokens": done.progress.tokens,
        "best": f"{best['title'][:40]} [{', '.join(origins)}]" if best else "-",
        "stop": done.state_reason[:90],
        "run_seconds": summary["timing"]["experiment_seconds"],
        # Whether the verdict claimed the win (the family-wise rule of airlab.verdicts), and its evidence.
        "claimed": summary["best_idea_id"] is not None,
        "old_rule_claimed": any(old_rule_claims(i["evaluation"]) for i in evaluated),
        "adjusted_p": best["evaluation"].get("adjusted_p") if best else None,
        "extra_seed_runs": summary.get("verdict_rule", {}).get("extra_seed_runs", 0),
        "llm_tasks": len(llm_tasks),
        "llm_ran": len(ran),
        "llm_forms": forms,
        "llm_best": bool(best) and best["origin"] in by_llm,
        # The LLM's feature ideas, and those that gave the prompt's example (the profile's steps) back as is.
        "llm_feature_ideas": sum(1 for i in summary["ideas"] if i["origin"] == by_llm[0] and i["steps"]),
        "llm_as_example": sum(
            1
            for i in summary["ideas"]
            if i["origin"] == by_llm[0] and any("prompt's example as given" in n for n in i["notes"])
        ),
        # Slot occupancy: the runs' seconds over the runner's slot-seconds while the budget lasted (from the
        # research's start to its last run's end); the LLM's idle share: the research's wall time its LLM
        # was not answering.
        "occupancy": summary["timing"]["experiment_seconds"]
        / (Settings().runner.max_concurrent * (last_run_end - began)),
        "llm_idle": 1 - done.progress.llm_seconds / seconds,
    }


def median_share(results: list[dict[str, Any]], expert_gains: list[float]) -> float:
    """The median over repeats of a method's gain over the expert row's (nan where the expert gained none)."""
    return statistics.median(
        r["gain"] / e if e > 0 else float("nan") for r, e in zip(results, expert_gains, strict=True)
    )


def claimed(results: list[dict[str, Any]]) -> str:
    return f"{sum(r['claimed'] for r in results)}/{len(results)}"


def main() -> None:
    # A stopped bench stops the lab's stack too: SIGTERM raises SystemExit, so `lab_run` takes it down.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    parser = argparse.ArgumentParser()
    parser.add_argument("--goals", default="hastie,friedman1,mixed_csv,loans,subscriptions,digits_cnn,shapes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--first-repeat", type=int, default=0, help="the first repeat's number (its seeds: 3r, 3r+1, 3r+2)"
    )
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument(
        "--ablation", action="append", choices=sorted(ABLATIONS), help="lab variants (default: full)"
    )
    parser.add_argument(
        "--no-plain", action="store_true", help="skip TPE and random search (for ablations of the lab)"
    )
    parser.add_argument("--no-lab", action="store_true", help="only the plain searches")
    parser.add_argument(
        "--plain",
        default="tpe,random",
        help="the plain searches beside the lab (comma-separated: tpe,random)",
    )
    parser.add_argument(
        "--plain-cores",
        choices=["machine", "experiments"],
        default="machine",
        help="where TPE and random search run: the whole machine, or only the cores the lab's runner gives "
        "its experiments (the others are the local LLM server's)",
    )
    parser.add_argument("--keep", type=Path, help="keep each lab run's workspace under this folder")
    args = parser.parse_args()
    if args.plain_cores == "experiments":
        global PLAIN_CORES
        PLAIN_CORES = plan_cpus(Settings().cpu, local_llm=True).experiments
        print(f"TPE and random search on cores {list(PLAIN_CORES)}, those of the lab's experiments")
    variants = [] if args.no_lab else (args.ablation or ["full"])
    plain = [] if args.no_plain else [m for m in args.plain.split(",") if m]
    if unknown := set(plain) - {"tpe", "random"}:
        parser.error(f"unknown plain search(es): {', '.join(sorted(unknown))}; known: tpe, random")
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        # The CSV goal's table is a host path the lab's jobs read as their own unprivileged identity: the
        # runner refuses a path that identity cannot read, as a temporary folder (0700) is.
        os.chmod(scratch, 0o755)
        scripts = {}
        for template in domain.TEMPLATES:
            scripts[template] = Path(scratch) / f"train_{template}.py"
            scripts[template].write_text(template_source(domain.TEMPLATE_FILES[template]))
        for name in args.goals.split(","):
            if GOALS[name].expert_steps:
                scripts[f"expert-{name}"] = Path(scratch) / f"train_expert_{name}.py"
                scripts[f"expert-{name}"].write_text(expert_source(GOALS[name]))
        csv_path = Path(scratch) / "customers.csv"
        write_mixed_csv(csv_path)
        for name in args.goals.split(","):
            goal = GOALS[name]
            for repeat in range(args.first_repeat, args.first_repeat + args.repeats):
                seeds = [3 * repeat, 3 * repeat + 1, 3 * repeat + 2]
                for variant in variants:
                    work = (args.keep or Path(scratch)) / f"lab-{name}-{variant}-{repeat}"
                    result = lab_run(goal, seeds, args.budget, work, csv_path, ABLATIONS[variant])
                    rows.setdefault((name, f"lab:{variant}"), []).append(result)
                    claim = "significant" if result["claimed"] else "NOT significant"
                    if result["adjusted_p"] is not None:
                        claim += f", adjusted p {result['adjusted_p']:.4f}"
                    if result["old_rule_claimed"] != result["claimed"]:
                        claim += f"; the old rule: {'' if result['old_rule_claimed'] else 'not '}significant"
                    if result["extra_seed_runs"]:
                        claim += f", {result['extra_seed_runs']} extra-seed runs"
                    print(
                        f"{name} r{repeat} lab:{variant}: {result['score']:.4f} ({claim}) "
                        f"({result['best']}; {result['stop']}; "
                        f"{result['run_seconds']:.0f} s in its runs, {result['seconds']:.0f} s wall; "
                        f"LLM code tasks that ran: {result['llm_ran']}/{result['llm_tasks']} "
                        f"{result['llm_forms']}; slots busy {result['occupancy']:.0%}, "
                        f"LLM idle {result['llm_idle']:.0%})",
                        flush=True,
                    )
                # TPE's start-up shortened as the lab's own search's: at its default of 10 random start-up
                # trials, TPE at a budget this small would be random search under another name.
                samplers: dict[str, optuna.samplers.BaseSampler] = {
                    "tpe": optuna.samplers.TPESampler(seed=repeat, n_startup_trials=5),
                    "random": optuna.samplers.RandomSampler(seed=1000 + repeat),
                }
                if goal.expert_steps and plain:
                    samplers["expert"] = optuna.samplers.TPESampler(seed=repeat, n_startup_trials=5)
                    samplers["measured"] = optuna.samplers.TPESampler(seed=repeat, n_startup_trials=5)
                    # The measured row's features depend on the repeat's split: profiled for each.
                    source, described = measured_source(goal, seeds, csv_path, scripts[goal.template])
                    measured = Path(scratch) / f"train_measured_{name}_{repeat}.py"
                    measured.write_text(source)
                    print(f"{name} r{repeat} measured: {'; '.join(described)}", flush=True)
                    row_scripts = {"expert": scripts[f"expert-{name}"], "measured": measured}
                for method in plain + (["expert", "measured"] if goal.expert_steps and plain else []):
                    script = (
                        row_scripts[method] if method in ("expert", "measured") else scripts[goal.template]
                    )
                    result = plain_search(
                        goal, seeds, args.budget, samplers[method], script, csv_path, scripts[goal.template]
                    )
                    rows.setdefault((name, method), []).append(result)
                    print(
                        f"{name} r{repeat} {method}: {result['score']:.4f} ({result['seconds']:.0f} s wall)",
                        flush=True,
                    )
    header = (f"{'goal':<15}{'method':<17}{'baseline':>9}{'score':>9}{'gap closed':>11}{'used':>7}"
              f"{'wall s':>8}{'wall-LLM s':>11}{'tokens':>8}{'significant':>12}")  # fmt: skip
    print(
        f"\nbudget {args.budget} experiments, {args.repeats} repeat(s); "
        "means over repeats, gap closed: median"
    )
    print(header)
    print("-" * len(header))
    for name in args.goals.split(","):
        tpe_gains = [r["gain"] for r in rows.get((name, "tpe"), [])] or [float("nan")] * args.repeats
        expert = [] if not GOALS[name].expert_steps or not plain else ["expert", "measured"]
        for method in [f"lab:{v}" for v in variants] + plain + expert:
            results = rows[(name, method)]
            closed = [
                r["gain"] / t if t > 0 else float("nan") for r, t in zip(results, tpe_gains, strict=True)
            ]

            def mean(key: str, results: list[dict[str, Any]] = results) -> float:
                return statistics.fmean(r[key] for r in results)

            print(
                f"{name:<15}{method:<17}{mean('baseline'):>9.4f}{mean('score'):>9.4f}{statistics.median(closed):>11.2f}"
                f"{mean('used'):>7.1f}{mean('seconds'):>8.0f}{mean('seconds') - mean('llm_seconds'):>11.0f}"
                f"{mean('tokens'):>8.0f}{claimed(results):>12}"
            )
    print(
        "significant: the repeats whose verdict claimed the gain (the lab: Holm over its planned family, two "
        "looks; TPE and random search: their one final comparison)"
    )
    print(
        "gap closed: a method's gain over the baseline / TPE's, on the held-out test split, mean over seeds;"
        " used: experiments (baseline included); wall-LLM: wall time less the LLM's seconds"
    )
    for name in args.goals.split(","):
        expert_gains = [r["gain"] for r in rows.get((name, "expert"), [])]
        for variant in variants:
            results = rows[(name, f"lab:{variant}")]
            tasks, ran = sum(r["llm_tasks"] for r in results), sum(r["llm_ran"] for r in results)
            occupancy = statistics.fmean(r["occupancy"] for r in results)
            line = (
                f"{name} lab:{variant}: the LLM's idea was the best in {sum(r['llm_best'] for r in results)}"
                f"/{len(results)}; its code tasks that ran: {ran}/{tasks}; slots busy {occupancy:.0%}; its "
                f"feature ideas that were the prompt's example as given: "
                f"{sum(r['llm_as_example'] for r in results)}/{sum(r['llm_feature_ideas'] for r in results)}"
            )
            if expert_gains:
                line += f"; share of the expert's gain (median): {median_share(results, expert_gains):.2f}"
            print(line)
        if expert_gains:
            share = median_share(rows[(name, "measured")], expert_gains)
            print(f"{name} measured: share of the expert's gain (median): {share:.2f}")


if __name__ == "__main__":
    main()
