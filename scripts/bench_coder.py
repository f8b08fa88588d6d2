"""How often the coder turns an idea into working code, per local model: a fixed, versioned set of ideas
(scikit-learn on tables; PyTorch on tables, images and segmentation; easy to hard), each drafted by the
coder agent against its job template, then checked and smoke-run through a real runner (the sandbox, the
bus) exactly as in the research loop, with up to 3 attempts.

It prints, per model: the share of ideas whose LLM code passed at the first attempt and within 3, the
share saved only by the template's registry fallback, tokens and seconds per LLM attempt, and the classes
of the failures. Per-idea rows go to --out (JSON).

Usage: make bench-coder   (or: .venv/bin/python scripts/bench_coder.py [--models qwen2.5-coder-0.5b-instruct,
       qwen2.5-coder-1.5b-instruct] [--ideas 24] [--out bench-coder.json])"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airlab.blobs import LocalArtifactStore
from airlab.bus import EventBus
from airlab.ids import new_id
from airlab.llm.client import LLMClient
from airlab.llm.config import LLMConfig
from airlab.llm.local import MODELS, start_llama_server
from airlab.natsd import start_nats
from airlab.testing import ServiceLauncher
from airlab.v1 import events_pb2, idea_pb2, loop_pb2
from airlab_coder.agent import CoderAgent
from airlab_coder.main import BusSmokeRunner
from airlab_coder.tasks import CodeTask, succeeded
from airlab_coder.templates import network_examples_for

IDEAS_VERSION = 1


@dataclass(frozen=True)
class BenchIdea:
    template: str
    dataset: str
    task: str
    metric: str
    baseline: str
    title: str
    change: str
    space: dict[str, tuple[float, float, bool, bool]] = field(default_factory=dict)  # low, high, log, integer


def tabular(dataset: str, task: str, metric: str, title: str, change: str, **space: Any) -> BenchIdea:
    baseline = "logistic_regression" if task == "classification" else "linear_regression"
    return BenchIdea("sklearn", dataset, task, metric, baseline, title, change, space)


def network(dataset: str, task: str, metric: str, title: str, change: str, **space: Any) -> BenchIdea:
    baseline = {"segmentation": "unet"}.get(task, "mlp")
    return BenchIdea("pytorch", dataset, task, metric, baseline, title, change, space)


# Version 1: 14 scikit-learn ideas, 10 PyTorch ones, roughly easy to hard within each group.
IDEAS = (
    tabular("digits", "classification", "accuracy", "Random forest", "replace the logistic regression with "
            "a random forest", n_estimators=(50, 300, True, True)),
    tabular("breast_cancer", "classification", "roc_auc", "Gradient boosting", "gradient-boosted trees "
            "instead of the linear model", learning_rate=(0.01, 0.3, True, False)),
    tabular("wine", "classification", "accuracy", "RBF support vector machine", "an SVC with an RBF kernel "
            "on standardised features", C=(0.1, 100, True, False), gamma=(0.001, 1, True, False)),
    tabular("digits", "classification", "accuracy", "k nearest neighbours", "a k-NN classifier",
            n_neighbors=(1, 30, True, True)),
    tabular("diabetes", "regression", "rmse", "Polynomial ridge", "degree-2 polynomial features before a "
            "ridge regression", alpha=(0.01, 100, True, False)),
    tabular("digits", "classification", "accuracy", "PCA then logistic regression", "reduce the pixels "
            "with PCA before the logistic regression", n_components=(10, 50, False, True)),
    tabular("hastie", "classification", "accuracy", "Extra trees", "an extremely randomised trees "
            "ensemble", n_estimators=(100, 400, True, True), max_features=(0.2, 1.0, False, False)),
    tabular("wine", "classification", "accuracy", "Bagged decision trees", "bagging of decision trees",
            n_estimators=(10, 100, True, True)),
    tabular("breast_cancer", "classification", "roc_auc", "Naive Bayes", "Gaussian naive Bayes",
            var_smoothing=(1e-12, 1e-6, True, False)),
    tabular("friedman1", "regression", "rmse", "Histogram gradient boosting", "a histogram-based gradient "
            "boosting regressor", max_iter=(50, 400, True, True), learning_rate=(0.02, 0.3, True, False)),
    tabular("wine", "classification", "accuracy", "Soft voting ensemble", "a soft-voting ensemble of an "
            "SVC, a random forest and a logistic regression"),
    tabular("breast_cancer", "classification", "roc_auc", "Stacking", "stack a random forest and an SVC "
            "under a logistic regression", n_estimators=(50, 200, True, True)),
    tabular("friedman1", "regression", "rmse", "Quantile features with an MLP", "quantile-transform the "
            "features, then an MLP regressor", alpha=(1e-5, 1e-1, True, False)),
    tabular("diabetes", "regression", "rmse", "Kernel ridge", "kernel ridge regression with an RBF "
            "kernel", alpha=(0.01, 10, True, False), gamma=(0.001, 1, True, False)),
    network("digits", "classification", "accuracy", "A wider MLP", "a one-hidden-layer MLP with more units",
            width=(128, 512, True, True)),
    network("wine", "classification", "accuracy", "Deeper MLP with dropout", "three hidden layers with "
            "dropout", dropout=(0.0, 0.5, False, False)),
    network("digits", "classification", "accuracy", "A small CNN", "two convolution layers and a linear "
            "classifier", channels=(8, 32, True, True)),
    network("digits", "classification", "accuracy", "CNN with batch norm and dropout", "convolution blocks "
            "with batch normalisation and dropout before the classifier", dropout=(0.0, 0.5, False, False)),
    network("digits", "classification", "accuracy", "Residual CNN", "a CNN whose blocks add their input "
            "back (residual connections)", channels=(8, 32, True, True)),
    network("digits", "classification", "accuracy", "Depthwise separable CNN", "replace the convolutions "
            "by depthwise separable ones", channels=(16, 64, True, True)),
    network("shapes", "segmentation", "dice", "A wider U-Net", "the U-Net with more channels",
            width=(16, 32, True, True)),
    network("shapes", "segmentation", "dice", "Dilated fully convolutional network", "a fully "
            "convolutional network of dilated convolutions at full resolution", depth=(2, 5, False, True)),
    network("shapes", "segmentation", "dice", "U-Net with residual blocks", "U-Net blocks that add their "
            "input back (residual connections)"),
    network("shapes", "segmentation", "dice", "U-Net with flip augmentation", "the U-Net trained on "
            "randomly flipped images and masks"),
)  # fmt: skip


def failure_class(problem: str) -> str:
    """A short name for what went wrong with one draft."""
    text = problem.split(":", 1)[1] if problem.startswith("attempt") else problem
    if "registry" in problem:
        return "registry fallback"
    for pattern, name in (
        (r"syntax error", "syntax error"),
        (r"must define", "no build_model"),
        (r"must take", "wrong signature"),
        (r"build_model calls", "forbidden call"),
        (r"does not exist|import .* would fail|has no \w+$", "no such class"),
        (r"takes no keyword", "keyword not taken"),
        (r"is called without", "argument missing"),
        (r"every step but the last", "model inside a pipeline"),
        (r"F821|undefined name", "undefined name"),
        (r"smoke run failed.*?(\w+(Error|Exception))", "smoke: {}"),
        (r"smoke run failed", "smoke: other"),
    ):
        found = re.search(pattern, text, flags=re.DOTALL)
        if found:
            return name.format(found.group(1)) if "{}" in name else name
    return "other"


class MeasuredLLM:
    """The coder's LLM client, counting tokens and seconds of every call."""

    def __init__(self, inner: LLMClient) -> None:
        self.inner = inner
        self.calls: list[tuple[int, float]] = []

    async def complete(self, *args: Any, **kwargs: Any) -> Any:
        reply = await self.inner.complete(*args, **kwargs)
        self.calls.append((reply.usage.completion_tokens, reply.usage.latency_seconds))
        return reply


async def bench_model(model: str, ideas: tuple[BenchIdea, ...], workdir: Path) -> list[dict[str, Any]]:
    server = start_nats(workdir / "nats")
    launcher = ServiceLauncher(server.url, workdir / "services")
    launcher.workdir.mkdir()
    llama = start_llama_server(model, threads=2, log_file=workdir / "llama.log")
    rows: list[dict[str, Any]] = []
    try:
        launcher.start("runner")
        bus = EventBus(server.url, source="bench-coder")
        await bus.connect(timeout=10)
        config = LLMConfig.load().with_urls({"local-cpu": llama.url})
        config.servers["local-cpu"].model = model
        config.agents["coder"].servers = ["local-cpu"]
        llm = MeasuredLLM(LLMClient(config))
        artifacts = LocalArtifactStore(launcher.workdir / "artifacts")
        smoke = BusSmokeRunner(bus, artifacts, "bench-coder")
        agent = CoderAgent(llm, artifacts, smoke, network_examples_for(model))
        for number, item in enumerate(ideas, 1):
            idea = idea_pb2.Idea(
                id=new_id("i"), title=item.title, change=item.change,
                search_space={n: idea_pb2.Range(low=lo, high=hi, log_scale=log, integer=whole)
                              for n, (lo, hi, log, whole) in item.space.items()},
            )  # fmt: skip
            job = loop_pb2.JobConfig(
                dataset=item.dataset, task=item.task, metric=item.metric, model=item.baseline,
                test_fraction=0.25, template=item.template,
            )  # fmt: skip
            research = new_id("r")
            idea.research_id = research
            before, began = len(llm.calls), time.perf_counter()
            asked = events_pb2.CodeRequested(name=idea.id, job_config=job, idea=idea, max_attempts=3)
            outcome = await agent.implement(CodeTask(research, asked))
            calls = llm.calls[before:]
            llm_ok = succeeded(outcome) and outcome.origin == loop_pb2.CODE_ORIGIN_LLM
            row = {
                "idea": item.title, "template": item.template, "dataset": item.dataset,
                "passed_first": llm_ok and outcome.attempts == 1, "passed_within_3": llm_ok,
                "registry_fallback": succeeded(outcome) and not llm_ok, "attempts": len(calls),
                "repairs": outcome.repairs,
                "tokens": [t for t, _ in calls], "seconds": [s for _, s in calls],
                "wall_seconds": time.perf_counter() - began,
                "failures": [failure_class(p) for p in outcome.problems],
            }  # fmt: skip
            rows.append(row)
            verdict = "first" if row["passed_first"] else "within 3" if llm_ok else (
                "registry" if row["registry_fallback"] else "failed")  # fmt: skip
            print(f"{model} {number:>2}/{len(ideas)} {item.template:<8}{item.title[:40]:<41}{verdict:<9}"
                  f"{', '.join(row['failures'])[:80]}", flush=True)  # fmt: skip
        await bus.close()
        await llm.inner.close()
    finally:
        llama.stop()
        launcher.stop_all()
        server.stop()
    return rows


def summary(model: str, rows: list[dict[str, Any]]) -> list[str]:
    lines = []
    for template in ("all", "sklearn", "pytorch"):
        chosen = [r for r in rows if template in ("all", r["template"])]
        if not chosen:
            continue
        tokens = [t for r in chosen for t in r["tokens"]]
        seconds = [s for r in chosen for s in r["seconds"]]
        first = sum(r["passed_first"] for r in chosen) / len(chosen)
        within = sum(r["passed_within_3"] for r in chosen) / len(chosen)
        registry = sum(r["registry_fallback"] for r in chosen) / len(chosen)
        repaired = sum(r["passed_within_3"] and bool(r.get("repairs")) for r in chosen) / len(chosen)
        per_token = statistics.fmean(tokens) if tokens else 0.0
        per_second = statistics.fmean(seconds) if seconds else 0.0
        lines.append(
            f"{model:<30}{template:<9}{len(chosen):>5}{first:>8.0%}{within:>10.0%}{repaired:>10.0%}{registry:>10.0%}"
            f"{per_token:>9.0f}{per_second:>9.1f}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="qwen2.5-coder-0.5b-instruct,qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--ideas", type=int, default=len(IDEAS), help="the first N ideas of the set")
    parser.add_argument("--template", choices=("sklearn", "pytorch"), help="only the ideas of one template")
    parser.add_argument("--out", default="", help="per-idea rows as JSON")
    parser.add_argument("--keep", default="", help="keep every draft, log and LLM exchange under this folder")
    args = parser.parse_args()
    models = args.models.split(",")
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        parser.error(f"unknown local model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    results: dict[str, list[dict[str, Any]]] = {}
    chosen = tuple(i for i in IDEAS[: args.ideas] if args.template in (None, i.template))
    for model in models:
        if args.keep:
            kept = Path(args.keep) / model
            kept.mkdir(parents=True, exist_ok=False)
            results[model] = asyncio.run(bench_model(model, chosen, kept))
            continue
        with tempfile.TemporaryDirectory(prefix="airlab-bench-coder-") as scratch:
            results[model] = asyncio.run(bench_model(model, chosen, Path(scratch)))
    header = (f"{'model':<30}{'ideas':<9}{'n':>5}{'first':>8}{'within 3':>10}{'repaired':>10}{'registry':>10}"
              f"{'tok/att':>9}{'s/att':>9}")  # fmt: skip
    print(f"\nbench-coder, idea set v{IDEAS_VERSION}: LLM code that passed its checks and smoke run")
    print(header)
    print("-" * len(header))
    for model, rows in results.items():
        print("\n".join(summary(model, rows)))
    print("repaired: passed within 3 with at least one repair by the coder (in the share 'within 3'); "
          "registry: saved only by the template's registry fallback (not the LLM's code); tok/att, s/att: "
          "completion tokens and seconds per LLM call")  # fmt: skip
    for model, rows in results.items():
        classes = Counter(f for r in rows for f in r["failures"])
        print(f"failure classes, {model}: " + ", ".join(f"{n} x{c}" for n, c in classes.most_common()))
    if args.out:
        Path(args.out).write_text(json.dumps({"version": IDEAS_VERSION, "results": results}, indent=2))


if __name__ == "__main__":
    main()
