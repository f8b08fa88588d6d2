"""What the manager knows how to measure: datasets (from datasets.yaml), metrics and baselines."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from airlab.settings import load_yaml
from airlab.v1 import research_pb2

Task = Literal["classification", "regression"]
MAXIMIZE = research_pb2.METRIC_DIRECTION_MAXIMIZE
MINIMIZE = research_pb2.METRIC_DIRECTION_MINIMIZE


@dataclass(frozen=True)
class MetricSpec:
    name: str
    tasks: tuple[Task, ...]
    direction: research_pb2.MetricDirection.ValueType
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class BaselineSpec:
    name: str
    tasks: tuple[Task, ...]
    aliases: tuple[str, ...]


METRICS = {
    m.name: m
    for m in (
        MetricSpec("accuracy", ("classification",), MAXIMIZE, ("accuracy", "acc")),
        MetricSpec("roc_auc", ("classification",), MAXIMIZE, ("roc auc", "roc_auc", "auroc", "auc")),
        MetricSpec("f1_macro", ("classification",), MAXIMIZE, ("f1", "f1 score", "macro f1")),
        MetricSpec("rmse", ("regression",), MINIMIZE, ("rmse", "root mean squared error")),
        MetricSpec("mae", ("regression",), MINIMIZE, ("mae", "mean absolute error")),
        MetricSpec("r2", ("regression",), MAXIMIZE, ("r2", "r squared", "coefficient of determination")),
    )
}

BASELINES = {
    b.name: b
    for b in (
        BaselineSpec(
            "logistic_regression", ("classification",), ("logistic regression", "logreg", "logistic")
        ),
        BaselineSpec("linear_regression", ("regression",), ("linear regression", "ols")),
        BaselineSpec("ridge", ("regression",), ("ridge", "ridge regression")),
        BaselineSpec(
            "mlp", ("classification", "regression"), ("mlp", "multilayer perceptron", "neural network")
        ),
        BaselineSpec("random_forest", ("classification", "regression"), ("random forest",)),
        BaselineSpec("gradient_boosting", ("classification", "regression"), ("gradient boosting", "gbm")),
        BaselineSpec("svm", ("classification",), ("svm", "svc", "support vector machine")),
        BaselineSpec(
            "knn", ("classification", "regression"), ("knn", "k nearest neighbors", "nearest neighbors")
        ),
    )
}


class DatasetSpec(BaseModel):
    name: str
    task: Task
    metric: str
    baseline: str
    aliases: list[str] = Field(default_factory=list)
    description: str = ""
    # User datasets: a local path or s3:// URI of a CSV file, and its label column.
    source: str | None = None
    target: str | None = None


class DatasetCatalog:
    def __init__(self, datasets: dict[str, DatasetSpec], default: str) -> None:
        if default not in datasets:
            raise ValueError(f"default dataset {default!r} is not in the catalog")
        for spec in datasets.values():
            if spec.metric not in METRICS or spec.task not in METRICS[spec.metric].tasks:
                raise ValueError(
                    f"dataset {spec.name!r}: metric {spec.metric!r} does not fit task {spec.task}"
                )
            if spec.baseline not in BASELINES or spec.task not in BASELINES[spec.baseline].tasks:
                raise ValueError(f"dataset {spec.name!r}: unknown baseline {spec.baseline!r} for {spec.task}")
        self.datasets = datasets
        self.default = default

    @classmethod
    def load(cls, filename: str = "datasets.yaml") -> DatasetCatalog:
        raw = load_yaml(filename)
        if not raw.get("datasets"):
            raise ValueError(f"{filename}: no datasets configured")
        datasets = {name: DatasetSpec(name=name, **spec) for name, spec in raw["datasets"].items()}
        return cls(datasets, raw.get("default") or next(iter(datasets)))

    def names(self) -> list[str]:
        return sorted(self.datasets)

    def mentioned_in(self, text: str) -> list[str]:
        return [name for name, spec in self.datasets.items() if mentions(text, [name, *spec.aliases])]


def normalize(text: str) -> str:
    return " " + re.sub(r"[^a-z0-9^]+", " ", text.lower()).strip() + " "


def mentions(text: str, phrases: list[str] | tuple[str, ...]) -> bool:
    """Whether any phrase occurs in text as whole words (case, '-' and '_' ignored)."""
    haystack = normalize(text)
    return any(normalize(phrase) in haystack for phrase in phrases)


def metrics_mentioned(text: str) -> list[str]:
    return [m.name for m in METRICS.values() if mentions(text, m.aliases)]


def baselines_mentioned(text: str) -> list[str]:
    return [b.name for b in BASELINES.values() if mentions(text, (b.name, *b.aliases))]
