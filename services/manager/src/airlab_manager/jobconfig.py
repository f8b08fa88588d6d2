"""What every experiment of a research runs with: the job template's settings that follow from the plan,
and the read-only dataset mounts of a user dataset."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from airlab.v1 import research_pb2
from airlab_manager.catalog import DatasetCatalog

DATA_DIR = "/airlab/data"
# Baselines of the planner -> models of the scikit-learn job template, by task.
TEMPLATE_MODELS = {
    ("logistic_regression", "classification"): "logistic_regression",
    ("linear_regression", "regression"): "linear_regression",
    ("ridge", "regression"): "ridge",
    ("random_forest", "classification"): "random_forest_classifier",
    ("random_forest", "regression"): "random_forest_regressor",
    ("gradient_boosting", "classification"): "gradient_boosting_classifier",
    ("gradient_boosting", "regression"): "gradient_boosting_regressor",
    ("mlp", "classification"): "mlp_classifier",
    ("mlp", "regression"): "mlp_regressor",
    ("svm", "classification"): "svm_classifier",
    ("knn", "classification"): "knn_classifier",
    ("knn", "regression"): "knn_regressor",
}


def job_config(plan: research_pb2.Plan, catalog: DatasetCatalog) -> dict[str, Any]:
    """The template settings shared by every run: the held-out split is fixed by the plan's first seed."""
    config: dict[str, Any] = {
        "dataset": plan.dataset,
        "task": plan.task,
        "metric": plan.metric,
        "model": TEMPLATE_MODELS[(plan.baseline, plan.task)],
        "split_seed": int(plan.seeds[0]) if plan.seeds else 0,
        "test_fraction": plan.test_fraction,
    }
    source, target = _source_of(plan, catalog)
    if source:
        config |= {"dataset": "csv", "csv_path": f"{DATA_DIR}/{PurePosixPath(source).name}", "target": target}
    return config


def _source_of(plan: research_pb2.Plan, catalog: DatasetCatalog) -> tuple[str, str]:
    """A user dataset's file and label column: from the plan, or from the catalog entry it names."""
    if plan.dataset_source:
        return plan.dataset_source, plan.dataset_target
    spec = catalog.datasets.get(plan.dataset)
    if spec is not None and spec.source:
        return spec.source, spec.target or ""
    return "", ""


def dataset_mounts(plan: research_pb2.Plan, catalog: DatasetCatalog) -> list[dict[str, str]]:
    source, _ = _source_of(plan, catalog)
    if not source:
        return []
    return [{"source": source, "target": f"{DATA_DIR}/{PurePosixPath(source).name}"}]
