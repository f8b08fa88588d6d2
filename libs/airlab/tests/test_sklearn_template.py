"""The scikit-learn job template on a user's table, run as a job would run it (in a work dir, settings
from JOB_CONFIG): dates and free text are data, identifiers are dropped, and each is said."""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
import runpy
from pathlib import Path

import pytest

from airlab.job_templates import template_source
from airlab.results import RunResult

WORDS = ["refund", "late", "broken", "thanks", "great", "slow", "invoice", "login", "password", "upgrade"]


def customers(path: Path, rows: int = 600) -> None:
    """An id, a signup date and a support ticket's text; whether the customer left depends on the ticket's
    words (an angry one) and the signup's weekday (weekend signups were a promotion)."""
    rng = random.Random(3)
    start = dt.date(2023, 1, 1)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "signed_up", "ticket", "plan", "left"])
        for n in range(rows):
            day = start + dt.timedelta(days=rng.randrange(400))
            angry = rng.random() < 0.4
            words = rng.sample(WORDS[:4] if angry else WORDS[4:], 3) + rng.sample(WORDS, 2)
            ticket = " ".join(words) if rng.random() > 0.05 else ""
            left = angry or day.weekday() >= 5
            writer.writerow([f"C{100000 + n}", day.isoformat(), ticket, rng.choice(["a", "b"]),
                             "yes" if left != (rng.random() < 0.05) else "no"])  # fmt: skip


def run_template(work: Path, monkeypatch, config: dict) -> dict:
    monkeypatch.chdir(work)
    monkeypatch.setenv("JOB_CONFIG", json.dumps(config))
    (work / "train.py").write_text(template_source("sklearn_train_template.py"))
    runpy.run_path(str(work / "train.py"), run_name="__main__")
    result = json.loads((work / "result.json").read_text())
    RunResult.model_validate(result)
    return result


def test_a_table_with_an_id_a_date_and_free_text_trains_on_the_date_and_the_text(tmp_path, monkeypatch):
    table = tmp_path / "customers.csv"
    customers(table)
    config = {"dataset": "csv", "csv_path": str(table), "target": "left", "task": "classification",
              "metric": "accuracy", "model": "logistic_regression", "save_model": False}  # fmt: skip
    result = run_template(tmp_path, monkeypatch, config)
    notes = result["column_notes"]
    assert "column 'customer_id' dropped: an identifier (each of its values is distinct)" in notes
    assert any(n.startswith("column 'signed_up' is a date: used as its year, month, weekday") for n in notes)
    assert any(n.startswith("column 'ticket' is free text") for n in notes)
    # The words carry most of the signal: far above the majority class (about 0.54 here).
    assert result["metrics"]["accuracy"] > 0.8


def test_date_parts_and_identifiers_by_name(tmp_path):
    module = runpy.run_path(
        str(Path(__file__).parents[1] / "src/airlab/job_templates/sklearn_train_template.py")
    )
    parts = module["date_parts"](["2024-03-02", "", "2024-03-04T12:00:00+02:00"])
    year, month, weekday, day_of_year, days = parts
    assert year[0] == 2024 and month[0] == 3 and weekday[0] == 5 and day_of_year[0] == 62
    assert days[0] == pytest.approx(19784.0) and days[2] == pytest.approx(19786.4167, abs=1e-3)
    assert all(value != value for value in (year[1], days[1]))  # a missing cell stays missing (NaN)
    # A numeric column named like an identifier, every value distinct: dropped; a measurement is kept.
    table = tmp_path / "t.csv"
    table.write_text("row_id,size,label\n" + "".join(f"{n},{n % 7},{n % 2}\n" for n in range(40)))
    x, _, columns = module["load"]({"dataset": "csv", "csv_path": str(table), "target": "label",
                                    "task": "classification"})  # fmt: skip
    assert x.shape == (40, 1) and columns.notes == [
        "column 'row_id' dropped: an identifier (each of its values is distinct)"
    ]


def test_a_group_mean_step_gives_the_mean_the_gap_and_the_share_with_missing_numbers_at_the_mean():
    module = runpy.run_path(
        str(Path(__file__).parents[1] / "src/airlab/job_templates/sklearn_train_template.py")
    )
    import numpy as np

    train = np.array([[10.0, "rich"], [30.0, "rich"], [1.0, "poor"], [3.0, "poor"]], dtype=object)
    step = module["GroupMean"]().fit(train)
    made = step.transform(np.array([[40.0, "rich"], [1.0, "poor"], [float("nan"), "poor"], [6.0, "new"]],
                                   dtype=object))  # fmt: skip
    # An income in a rich region and one in a poor region, each twice its region's mean: the same share.
    assert made[:, 0].tolist() == [20.0, 2.0, 2.0, 11.0]  # an unseen group: the overall mean
    assert made[:, 1].tolist() == [20.0, -1.0, 0.0, -5.0]
    assert made[:, 2].tolist() == pytest.approx([2.0, 0.5, 1.0, 6.0 / 11.0])
    assert np.isfinite(step.transform(np.array([[5.0, "zero"]], dtype=object))).all()


def with_steps(steps: list[dict]) -> str:
    from airlab import techniques
    from airlab.v1 import idea_pb2

    protos = [
        idea_pb2.FeatureStep(
            technique=techniques.technique_of(s["kind"]),
            columns=s.get("columns", []),
            words=s.get("words", []),
        )
        for s in steps
    ]
    return techniques.with_features(template_source("sklearn_train_template.py"), protos)


def run_source(work: Path, monkeypatch, source: str, config: dict) -> dict:
    monkeypatch.chdir(work)
    monkeypatch.setenv("JOB_CONFIG", json.dumps(config))
    (work / "train.py").write_text(source)
    runpy.run_path(str(work / "train.py"), run_name="__main__")
    return json.loads((work / "result.json").read_text())


LOANS = {"dataset": "loans", "target": "defaulted", "task": "classification", "metric": "roc_auc",
         "model": "hist_gradient_boosting_classifier", "save_model": False}  # fmt: skip


def test_the_catalog_steps_compiled_into_the_template_run_and_the_meaning_of_columns_pays(
    tmp_path, monkeypatch
):
    raw = run_source(tmp_path, monkeypatch, template_source("sklearn_train_template.py"), LOANS)
    steps = [
        {"kind": "ratio", "columns": ["debt", "income"]},
        {"kind": "date_difference", "columns": ["applied_on", "employed_since"]},
        {"kind": "group_mean", "columns": ["income", "region"]},
        {"kind": "keywords", "columns": ["officer_note"], "words": ["bills", "rent"]},
        {"kind": "target_encoding", "columns": ["region"]},
        {"kind": "frequency_encoding", "columns": ["region"]},
        {"kind": "bins", "columns": ["age"]},
        {"kind": "log", "columns": ["income"]},
        {"kind": "class_weights"},
    ]
    featured = run_source(tmp_path, monkeypatch, with_steps(steps), LOANS)
    notes = featured["column_notes"]
    assert "feature step 1: added 'debt/income'" in notes
    assert "feature step 3: group_mean of income by region (fitted on train)" in notes
    assert not any("not applied" in n for n in notes)
    # The generator's ratio, tenure and regional income: written as features, they beat the raw columns.
    assert featured["metrics"]["roc_auc"] > raw["metrics"]["roc_auc"] + 0.02


SUBSCRIPTIONS = {**LOANS, "dataset": "subscriptions", "target": "churned"}


def test_the_subscriptions_table_profiles_its_kinds_and_its_generators_features_pay(tmp_path, monkeypatch):
    from airlab import techniques

    template = template_source("sklearn_train_template.py")
    raw = run_source(tmp_path, monkeypatch, template, {**SUBSCRIPTIONS, "profile": True})
    profile = techniques.DataProfile.model_validate(raw["profile"])
    assert profile.kinds() == {
        "plan": "category", "industry": "category", "seats": "number", "price_per_seat": "number",
        "sessions_30d": "number", "signed_up": "date", "last_login": "date", "exported_on": "date",
        "last_ticket": "text",
    }  # fmt: skip
    # Sessions per seat tells far more than sessions or seats alone, and the profile says so first.
    first = profile.candidates[0]
    assert (first.kind, first.columns) == ("ratio", ["sessions_30d", "seats"]), profile.candidates
    assert first.association > 3 * first.columns_alone
    steps = [
        {"kind": "ratio", "columns": ["sessions_30d", "seats"]},
        {"kind": "date_difference", "columns": ["exported_on", "last_login"]},
        {"kind": "group_mean", "columns": ["price_per_seat", "plan"]},
    ]
    featured = run_source(tmp_path, monkeypatch, with_steps(steps), SUBSCRIPTIONS)
    assert featured["metrics"]["roc_auc"] > raw["metrics"]["roc_auc"] + 0.02


def test_a_step_on_a_missing_or_wrong_column_stops_the_run_with_a_message(tmp_path, monkeypatch):
    with pytest.raises(
        SystemExit, match="feature step 1 \\(ratio\\): column 'region' is category, not number"
    ):
        run_source(
            tmp_path, monkeypatch, with_steps([{"kind": "ratio", "columns": ["debt", "region"]}]), LOANS
        )
    with pytest.raises(SystemExit, match="no column 'salary'"):
        run_source(tmp_path, monkeypatch, with_steps([{"kind": "log", "columns": ["salary"]}]), LOANS)


def test_a_steps_names_and_words_stay_data_in_the_compiled_code():
    from airlab import techniques

    odd = 'x"]\nimport os; os.system("id")  # '
    source = with_steps([{"kind": "keywords", "columns": [odd], "words": [odd]}])
    region = source[source.index(techniques.FEATURES_BEGIN) : source.index(techniques.FEATURES_END)]
    (assignment,) = [line for line in region.splitlines() if line.startswith("FEATURES")]
    import ast

    assert ast.literal_eval(assignment.split("=", 1)[1].strip()) == [
        {"kind": "keywords", "columns": [odd], "words": [odd.strip()]}
    ]


def test_the_baselines_run_profiles_the_table_from_its_training_part(tmp_path, monkeypatch):
    from airlab import techniques

    result = run_source(
        tmp_path, monkeypatch, template_source("sklearn_train_template.py"), {**LOANS, "profile": True}
    )
    profile = techniques.DataProfile.model_validate(result["profile"])
    kinds = {c.name: c.kind for c in profile.columns}
    assert kinds == {
        "applicant_id": "identifier", "region": "category", "age": "number", "income": "number",
        "debt": "number", "employed_since": "date", "applied_on": "date", "officer_note": "text",
    }  # fmt: skip
    assert profile.rows == result["split"]["train"] and profile.named  # the test part is not described
    debt = next(c for c in profile.columns if c.name == "debt")
    assert debt.importance is not None and debt.association is not None
    applied = next(c for c in profile.columns if c.name == "applied_on")
    assert str(applied.low).startswith("200") and set(profile.label["balance"]) == {"0", "1"}
    assert "label 'defaulted'" in profile.prompt_lines()[0]
    # Derived features measured on the training part: the loans generator's debt-to-income ratio tells the
    # label far more than either column alone, and comes first.
    first = profile.candidates[0]
    assert (first.kind, first.columns) == ("ratio", ["debt", "income"]), profile.candidates
    assert first.association > 3 * first.columns_alone
    assert {m.kind for m in profile.candidates} == {"ratio", "date_difference", "group_mean"}
    # Income against its region's mean, as a share (the generator's regional effect), ranks above debt's.
    group_means = [m.columns[0] for m in profile.candidates if m.kind == "group_mean"]
    assert group_means.index("income") < group_means.index("debt"), profile.candidates
    assert [m.added for m in profile.candidates] == sorted(
        (m.added for m in profile.candidates), reverse=True
    )
