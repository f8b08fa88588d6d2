"""result.json, the one file every experiment must write: its schema, in one place. The runner checks a
job's file against it before storing the outcome; the reviewer reads stored results with it. The JSON
Schema is written to docs/result.schema.json (`python -m airlab.results > docs/result.schema.json`)."""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StringConstraints

MAX_METRIC_NAME = 128


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return float(value)


# A finite number; true/false and numeric strings are not numbers.
Number = Annotated[StrictInt | StrictFloat, AfterValidator(_finite)]
MetricName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_METRIC_NAME)]


class RunResult(BaseModel):
    """What one run reports. Other keys are kept as they are (e.g. the template's `device`, `params`)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    metrics: dict[MetricName, Number] = Field(
        min_length=1, description="Held-out test and validation metrics, e.g. accuracy and val_accuracy."
    )
    seed: StrictInt = Field(description="The seed the run used.")
    duration_seconds: Annotated[Number, Field(ge=0)] = Field(description="Training and evaluation time.")
    validation_curve: list[Number] | None = Field(
        default=None,
        max_length=10_000,
        description="The validation metric after each epoch: what a search's early stopping compares.",
    )
    stopped_at_epoch: StrictInt | None = Field(
        default=None,
        ge=1,
        description="The epoch training ended at under the search's stop rule; absent when it ran them all.",
    )
    test_targets: list[Any] | None = Field(
        default=None, description="The test split's labels, for the reviewer's bootstrap over test examples."
    )
    test_predictions: list[Any] | None = Field(
        default=None, description="The run's predictions (or scores) for the same examples."
    )

    @property
    def extra(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def problem(error: Exception) -> str:
    """One line naming what is wrong, for a person reading a failed job's reason."""
    errors = getattr(error, "errors", None)
    if not callable(errors):
        return str(error)
    found = []
    for item in errors()[:3]:
        where = ".".join(str(part) for part in item["loc"]) or "the file"
        message = item["msg"]
        if item["type"] in ("float_type", "int_type", "finite_number", "value_error") and "metrics" in where:
            message = f"{message} (a metric must be a finite number)"
        if item["type"] == "too_short" and where == "metrics":
            message = "must be a non-empty object of numbers"
        found.append(f"'{where}' {message}")
    return "; ".join(found)


def schema() -> dict[str, Any]:
    return RunResult.model_json_schema()


if __name__ == "__main__":
    print(json.dumps(schema(), indent=2))
