"""The technique catalog's checks on plain data: what a step takes, the one repair it makes, and the
reply forms the idea agent's decoding follows."""

import json

from pydantic import TypeAdapter

from airlab import techniques

PROFILE = techniques.DataProfile(
    columns=[
        {"name": "id", "kind": "identifier"},
        {"name": "income", "kind": "number", "distinct": 900},
        {"name": "rooms", "kind": "number", "distinct": 6},
        {"name": "debt", "kind": "number", "distinct": 900},
        {"name": "applied_on", "kind": "date", "distinct": 800},
        {"name": "employed_since", "kind": "date", "distinct": 700},
        {"name": "region", "kind": "category", "distinct": 8},
    ]
)


def written(**step):
    return TypeAdapter(techniques.proposal_step_model(PROFILE, "classification")).validate_python(step)


def test_a_step_naming_one_of_exactly_two_choices_twice_takes_the_other():
    found = techniques.checked(written(kind="date_difference", columns=["applied_on", "applied_on"]), PROFILE)
    assert found.step.columns == ["applied_on", "employed_since"] and not found.problem
    assert (
        found.repair == "it named 'applied_on' twice; the table's other date column, 'employed_since', taken"
    )
    # Among more than two choices there is no one right answer: refused, with the reason.
    same = techniques.checked(written(kind="ratio", columns=["debt", "debt"]), PROFILE)
    assert same.problem == "ratio of 'debt' with itself" and not same.repair


def test_each_technique_takes_only_columns_of_its_kinds_and_only_those_of_the_task():
    available = techniques.available_steps(PROFILE, "classification")
    assert "class_weights" in available and "target_log" not in available and "keywords" not in available
    schema = json.dumps(TypeAdapter(techniques.proposal_step_model(PROFILE, "classification")).json_schema())
    # A number with few values may be a category (rooms), one with many may not (income); no identifier.
    assert '"CategoryColumn": {"enum": ["rooms", "region"]' in schema and '"id"' not in schema
    assert techniques.step_problem("group_mean", ["region", "income"], PROFILE.kinds()) == (
        "group_mean: column 'region' is category, the step needs number"
    )


def test_a_model_outside_the_lab_sees_the_columns_but_no_cell_of_the_data():
    profile = techniques.DataProfile(
        columns=[
            {"name": "region", "kind": "category", "distinct": 3, "examples": ["Oslo-north", "Bergen"]},
            {"name": "income", "kind": "number", "distinct": 90, "low": 1234.5, "high": 98765.0},
        ],
        label={"name": "outcome", "balance": {"approved": 0.7, "refused": 0.3}, "recall": {"refused": 0.4}},
    )
    shared = "\n".join(profile.prompt_lines())
    assert "Oslo-north" in shared and "1234" in shared and "class refused: 30%" in shared
    withheld = "\n".join(profile.prompt_lines(values=False))
    for value in ("Oslo-north", "Bergen", "1234", "98765", "approved", "refused"):
        assert value not in withheld, value
    assert "'region': category" in withheld and "class #2: 30%" in withheld and "#2: 0.40" in withheld
    assert "values are withheld" in withheld


def test_only_servers_the_lab_runs_see_data_values_unless_configured():
    from airlab.llm.config import LLMConfig

    config = LLMConfig(
        servers={
            "local": {"kind": "llamacpp", "model": "m"},
            "hosted": {"kind": "openai", "model": "m"},
            "trusted": {"kind": "openai", "model": "m", "sees_data": True},
        },
        agents={"idea": {"servers": ["local"]}, "coder": {"servers": ["local", "hosted"]},
                "reviewer": {"servers": ["trusted"]}},
    )  # fmt: skip
    assert config.sees_data("idea") and config.sees_data("reviewer")
    assert not config.sees_data("coder")  # its fallback is a hosted API


def test_the_candidate_steps_are_what_the_table_affords_the_most_telling_columns_first():
    profile = PROFILE.model_copy(deep=True)
    for column in profile.columns:
        column.importance = {"debt": 0.12, "income": 0.09, "rooms": 0.01}.get(column.name)
    found = [(s.kind, s.columns) for s in techniques.candidate_steps(profile)]
    assert found == [
        ("date_difference", ["applied_on", "employed_since"]),
        ("group_mean", ["debt", "region"]),
        ("group_mean", ["income", "region"]),
        ("ratio", ["debt", "income"]),
        ("ratio", ["debt", "rooms"]),
        ("ratio", ["income", "rooms"]),
    ]
    assert len(techniques.candidate_steps(profile, limit=2)) == 2
    # Each is a step the table can run.
    assert all(not techniques.step_problem(k, c, profile.kinds()) for k, c in found)


def test_candidate_steps_the_profile_measured_come_first_the_most_telling_beyond_their_columns_first():
    profile = PROFILE.model_copy(deep=True)
    measured = techniques.MeasuredStep
    profile.candidates = [
        measured(kind="group_mean", columns=["debt", "region"], association=0.05, columns_alone=0.04),
        measured(kind="ratio", columns=["debt", "income"], association=0.11, columns_alone=0.01),
        # A step the table cannot run (no such column): never listed.
        measured(kind="ratio", columns=["debt", "salary"], association=0.5, columns_alone=0.0),
    ]
    found = techniques.candidate_steps(profile)
    assert [(s.kind, s.columns) for s in found[:2]] == [
        ("ratio", ["debt", "income"]),
        ("group_mean", ["debt", "region"]),
    ]
    # Each once: the heuristic's own steps follow, without repeating a measured one.
    assert len({(s.kind, frozenset(s.columns)) for s in found}) == len(found)
    line = techniques.candidate_line(found[0], profile)
    assert line == (
        '{"kind": "ratio", "columns": ["debt", "income"]}: mutual information with the label 0.110 (its '
        "columns alone at most 0.010)"
    )
    assert techniques.candidate_line(found[-1], profile).endswith("]}")  # not measured: as written
    assert techniques.measured_lines(profile)[0] == (
        "derived ratio of debt and income: mutual information 0.110 (its columns alone at most 0.010)"
    )


def test_a_feature_ideas_title_says_its_steps_within_a_bound():
    steps = [
        techniques.Step(kind="ratio", columns=["debt", "income"]),
        techniques.Step(kind="date_difference", columns=["applied_on", "employed_since"]),
        techniques.Step(kind="group_mean", columns=["debt", "region"]),
        techniques.Step(kind="class_weights", columns=[]),
    ]
    assert techniques.steps_title(steps) == (
        "Features debt/income, days applied_on-employed_since, debt vs region mean, class weights"
    )
    short = techniques.steps_title(steps, limit=40)
    assert len(short) <= 40 and short.endswith("...") and short.startswith("Features debt/income")
