"""What the manager knows how to measure: datasets (from datasets.yaml), metrics and baselines."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from airlab.domain import METRICS, MODEL_FAMILIES, Task, Template
from airlab.settings import load_yaml

# The metrics and model families live in the shared domain catalog; the planner calls families baselines.
BASELINES = MODEL_FAMILIES


class DatasetSpec(BaseModel):
    name: str
    task: Task
    metric: str
    baseline: str
    aliases: list[str] = Field(default_factory=list)
    description: str = ""
    # The baseline when the research trains PyTorch networks on it; None: only the baseline's template.
    pytorch_baseline: str | None = None
    # User datasets: a local path or s3:// URI of a CSV (or .npz) file, and a CSV's label column.
    source: str | None = None
    target: str | None = None

    @property
    def templates(self) -> list[Template]:
        """The job templates that can load this dataset, its default (its baseline's) first."""
        default = BASELINES[self.baseline].template
        return [default] + (["pytorch"] if self.pytorch_baseline and default != "pytorch" else [])

    def baseline_for(self, template: str) -> str:
        if template == BASELINES[self.baseline].template:
            return self.baseline
        if template == "pytorch" and self.pytorch_baseline:
            return self.pytorch_baseline
        raise KeyError(f"dataset {self.name!r} has no {template} baseline")


class DatasetCatalog:
    def __init__(self, datasets: dict[str, DatasetSpec], default: str) -> None:
        if default not in datasets:
            raise ValueError(f"default dataset {default!r} is not in the catalog")
        for spec in datasets.values():
            if spec.metric not in METRICS or spec.task not in METRICS[spec.metric].tasks:
                raise ValueError(
                    f"dataset {spec.name!r}: metric {spec.metric!r} does not fit task {spec.task}"
                )
            for baseline in (spec.baseline, spec.pytorch_baseline):
                if baseline is not None and (
                    baseline not in BASELINES or spec.task not in BASELINES[baseline].tasks
                ):
                    raise ValueError(f"dataset {spec.name!r}: unknown baseline {baseline!r} for {spec.task}")
            if spec.pytorch_baseline and BASELINES[spec.pytorch_baseline].template != "pytorch":
                raise ValueError(f"dataset {spec.name!r}: {spec.pytorch_baseline!r} is not a PyTorch family")
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


# Words that ask for neural networks trained with PyTorch (the families' own names are matched too).
# ("neural network" alone is not one: scikit-learn's MLP answers to it.)
PYTORCH_WORDS = ("pytorch", "torch", "deep learning", "deep network", "deep neural network", "convolutional")


def baselines_mentioned(text: str) -> list[str]:
    return [b.name for b in BASELINES.values() if mentions(text, (b.name, *b.aliases))]
