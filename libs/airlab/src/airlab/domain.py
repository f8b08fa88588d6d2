"""The lab's domain facts, each in one place: the metrics it measures (name, task, direction, how
scikit-learn computes it), the model families it knows (the planner's baselines and the job template's
registry names), and how idea titles are compared. Planner, coder, template settings and reviewer read
them from here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from airlab.v1 import research_pb2

Task = Literal["classification", "regression"]
MAXIMIZE = research_pb2.METRIC_DIRECTION_MAXIMIZE
MINIMIZE = research_pb2.METRIC_DIRECTION_MINIMIZE


@dataclass(frozen=True)
class MetricSpec:
    name: str
    tasks: tuple[Task, ...]
    direction: research_pb2.MetricDirection
    aliases: tuple[str, ...]

    @property
    def maximize(self) -> bool:
        return self.direction == MAXIMIZE


@dataclass(frozen=True)
class ModelFamily:
    """A family of models: the planner's name for it, and the job template's registry entry per task."""

    name: str
    aliases: tuple[str, ...]
    template_models: tuple[tuple[Task, str], ...]

    @property
    def tasks(self) -> tuple[Task, ...]:
        return tuple(task for task, _ in self.template_models)

    def template_model(self, task: str) -> str:
        for known, model in self.template_models:
            if known == task:
                return model
        raise KeyError(f"model family {self.name!r} has no {task} model")


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

MODEL_FAMILIES = {
    f.name: f
    for f in (
        ModelFamily(
            "logistic_regression",
            ("logistic regression", "logreg", "logistic"),
            (("classification", "logistic_regression"),),
        ),
        ModelFamily(
            "linear_regression", ("linear regression", "ols"), (("regression", "linear_regression"),)
        ),
        ModelFamily("ridge", ("ridge", "ridge regression"), (("regression", "ridge"),)),
        ModelFamily(
            "mlp",
            ("mlp", "multilayer perceptron", "neural network"),
            (("classification", "mlp_classifier"), ("regression", "mlp_regressor")),
        ),
        ModelFamily(
            "random_forest",
            ("random forest",),
            (("classification", "random_forest_classifier"), ("regression", "random_forest_regressor")),
        ),
        ModelFamily(
            "gradient_boosting",
            ("gradient boosting", "gbm"),
            (
                ("classification", "gradient_boosting_classifier"),
                ("regression", "gradient_boosting_regressor"),
            ),
        ),
        ModelFamily("svm", ("svm", "svc", "support vector machine"), (("classification", "svm_classifier"),)),
        ModelFamily(
            "knn",
            ("knn", "k nearest neighbors", "nearest neighbors"),
            (("classification", "knn_classifier"), ("regression", "knn_regressor")),
        ),
    )
}


def maximize(metric: str) -> bool:
    """Whether `metric` is better higher. KeyError for a metric the lab does not know."""
    return METRICS[metric].maximize


def title_key(title: str) -> str:
    """What two idea titles are compared by: lowercase words, punctuation and spacing ignored."""
    return re.sub(r"[^a-z0-9]+", " ", title.lower()).strip()
