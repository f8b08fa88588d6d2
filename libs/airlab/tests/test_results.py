"""The one model of result.json: what it accepts, what it refuses, and its published JSON Schema."""

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from airlab.results import RunResult, problem, schema

SCHEMA_FILE = Path(__file__).resolve().parents[3] / "docs" / "result.schema.json"


def test_a_result_keeps_its_extra_keys_and_whole_seeds():
    result = RunResult.model_validate_json(
        '{"metrics": {"accuracy": 0.9, "val_accuracy": 1}, "seed": 3, "duration_seconds": 2, "device": "cpu"}'
    )
    assert result.seed == 3 and result.metrics == {"accuracy": 0.9, "val_accuracy": 1.0}
    assert result.extra == {"device": "cpu"} and result.test_predictions is None


@pytest.mark.parametrize(
    ("doc", "named"),
    [
        ('{"metrics": {}, "seed": 0, "duration_seconds": 1}', "non-empty"),
        ('{"metrics": {"acc": true}, "seed": 0, "duration_seconds": 1}', "finite number"),
        ('{"metrics": {"acc": NaN}, "seed": 0, "duration_seconds": 1}', "metrics.acc"),
        ('{"metrics": {"acc": 1}, "seed": 1.5, "duration_seconds": 1}', "'seed'"),
        ('{"metrics": {"acc": 1}, "seed": 0, "duration_seconds": -1}', "'duration_seconds'"),
    ],
)
def test_a_broken_result_is_refused_naming_the_field(doc, named):
    with pytest.raises(ValidationError) as caught:
        RunResult.model_validate_json(doc)
    assert named in problem(caught.value)


def test_the_published_schema_is_the_models():
    """docs/result.schema.json is what `python -m airlab.results` prints: regenerate it when this fails."""
    assert json.loads(SCHEMA_FILE.read_text()) == schema()
