"""What every experiment of a research runs with: the job template's settings that follow from the plan,
and the read-only dataset mounts of a user dataset."""

from __future__ import annotations

from pathlib import PurePosixPath

from airlab import domain
from airlab.domain import MODEL_FAMILIES
from airlab.v1 import loop_pb2, research_pb2, runner_pb2
from airlab_manager.catalog import DatasetCatalog

DATA_DIR = "/airlab/data"


def job_config(plan: research_pb2.Plan, catalog: DatasetCatalog) -> loop_pb2.JobConfig:
    """The template settings shared by every run: the held-out split is fixed by the plan's first seed."""
    config = loop_pb2.JobConfig(
        dataset=plan.dataset,
        task=plan.task,
        metric=plan.metric,
        model=MODEL_FAMILIES[plan.baseline].template_model(plan.task),
        split_seed=plan.seeds[0] if plan.seeds else 0,
        test_fraction=plan.test_fraction,
        template=domain.template_of(plan.template),
    )
    source, target = _source_of(plan, catalog)
    inside = f"{DATA_DIR}/{PurePosixPath(source).name}"
    if source.lower().endswith(".npz"):
        config.dataset, config.data_path = "npz", inside
    elif source and not PurePosixPath(source).suffix:  # an image folder
        config.dataset, config.data_path = "folder", inside
    elif source:
        config.dataset, config.csv_path, config.target = "csv", inside, target
    return config


def _source_of(plan: research_pb2.Plan, catalog: DatasetCatalog) -> tuple[str, str]:
    """A user dataset's file and label column: from the plan, or from the catalog entry it names."""
    if plan.dataset_source:
        return plan.dataset_source, plan.dataset_target
    spec = catalog.datasets.get(plan.dataset)
    if spec is not None and spec.source:
        return spec.source, spec.target or ""
    return "", ""


def dataset_mounts(
    plan: research_pb2.Plan, catalog: DatasetCatalog, owner: str
) -> list[runner_pb2.DatasetMount]:
    """The plan's dataset as the runner mounts it, for the research's `owner` (whose uploads it may be)."""
    source, _ = _source_of(plan, catalog)
    if not source:
        return []
    target = f"{DATA_DIR}/{PurePosixPath(source).name}"
    return [runner_pb2.DatasetMount(source=source, target=target, owner=owner)]
