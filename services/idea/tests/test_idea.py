"""The idea agent: its rules with a fake LLM server (named as such), and the idea service over gRPC with
the real local model."""

import json

import grpc
import pytest

from airlab import techniques
from airlab.blobs import LocalArtifactStore, experiment_key
from airlab.errors import FailedPrecondition, InvalidArgument
from airlab.llm.client import LLMClient
from airlab.llm.config import LLMConfig
from airlab.testing import FakeOpenAIServer, Reply, wait_until
from airlab.v1 import idea_pb2, idea_pb2_grpc, lab_pb2, lab_pb2_grpc, loop_pb2, records_pb2, research_pb2
from airlab_idea.agent import IdeaAgent
from airlab_idea.main import IdeaServicer


def planned_research() -> research_pb2.Research:
    return research_pb2.Research(
        id="r" + "1" * 26,
        goal="beat the logistic-regression baseline on digits",
        state=research_pb2.RESEARCH_STATE_PLANNED,
        plan=research_pb2.Plan(
            dataset="digits",
            task="classification",
            metric="accuracy",
            direction=research_pb2.METRIC_DIRECTION_MAXIMIZE,
            baseline="logistic_regression",
            budget=research_pb2.Budget(max_tokens=100_000),
        ),
    )


def proposal(title: str, **extra) -> dict:
    return {
        "title": title,
        "change": f"{title}, instead of the baseline",
        "expected_effect": "+1% accuracy",
        **extra,
    }


@pytest.fixture
def fake_llm():
    server = FakeOpenAIServer()
    config = LLMConfig(
        servers={"fake": {"kind": "vllm", "base_url": server.url, "model": "fake"}},
        agents={"idea": {"servers": ["fake"]}},
    )
    yield server, LLMClient(config)
    server.close()


async def test_ideas_repeating_what_was_tried_or_each_other_are_dropped(fake_llm):
    server, client = fake_llm
    ideas = [
        proposal(
            "Tune C of the logistic regression",
            search_space={"C": {"low": 0.001, "high": 100, "log_scale": True}},
        ),
        proposal("tune c of the Logistic-Regression"),
        proposal("A small MLP"),
        proposal("Gradient boosted trees"),
    ]
    server.script = [Reply(content=json.dumps({"ideas": ideas}))]
    found = await IdeaAgent(client).propose(planned_research(), 3, tried=["Gradient boosted trees"])
    assert [i.title for i in found] == ["Tune C of the logistic regression", "A small MLP"]
    assert found[0].search_space["C"].log_scale and found[0].id.startswith("i")
    assert "Gradient boosted trees" in server.requests[0]["messages"][-1]["content"]


async def test_the_related_work_is_in_the_prompt_and_ideas_cite_what_they_follow(fake_llm):
    """Numbered papers in the prompt; an idea cites by number (out-of-range numbers dropped) or by naming
    a paper's method in its title ("Random forest" follows "Random Forests")."""
    server, client = fake_llm
    related = [
        idea_pb2.Paper(title="XGBoost: A Scalable Tree Boosting System", year=2016, abstract="Boosting."),
        idea_pb2.Paper(title="Random Forests", year=2001),
    ]
    ideas = [
        proposal("Boosted trees with shrinkage", cites=[1, 7]),
        proposal("Random forest of 300 trees"),
        proposal("A small MLP"),
    ]
    server.script = [Reply(content=json.dumps({"ideas": ideas}))]
    found = await IdeaAgent(client).propose(planned_research(), 3, related=related)
    assert [list(i.cites) for i in found] == [[1], [2], []]
    prompt = server.requests[0]["messages"][-1]["content"]
    assert "[1] XGBoost: A Scalable Tree Boosting System (2016): Boosting." in prompt
    assert "[2] Random Forests (2001)" in prompt


async def test_a_broken_search_space_is_mended_or_dropped_not_the_idea(fake_llm):
    server, client = fake_llm
    bad = proposal(
        "Tune C",
        search_space={
            "C": {"low": 10, "high": 1, "log_scale": True},  # backwards: swapped
            "gamma": {"low": -1, "high": 1, "log_scale": True},  # a log scale through zero: made linear
            "degree": {"low": 3, "high": 3},  # empty: dropped
        },
    )
    server.script = [Reply(content=json.dumps({"ideas": [bad]}))]
    (found,) = await IdeaAgent(client).propose(planned_research(), 1)
    assert found.title == "Tune C" and len(server.requests) == 1
    assert (found.search_space["C"].low, found.search_space["C"].high) == (1, 10)
    assert found.search_space["gamma"].log_scale is False
    assert "degree" not in found.search_space


async def test_ideas_wait_for_a_plan_and_a_sane_count(fake_llm):
    _, client = fake_llm
    research = planned_research()
    with pytest.raises(InvalidArgument, match="count"):
        await IdeaAgent(client).propose(research, 11)
    research.state = research_pb2.RESEARCH_STATE_NEEDS_HUMAN
    with pytest.raises(FailedPrecondition, match="after its plan"):
        await IdeaAgent(client).propose(research, 2)


def test_the_idea_service_proposes_with_the_real_local_model(services, llama_server, tmp_path):
    env = {
        "AIRLAB_LLM_URLS": json.dumps({"local-cpu": llama_server.url}),
        "AIRLAB_WORKSPACE": str(tmp_path / "ws"),
    }
    manager = services.start("manager", env=env)
    idea = services.start("idea", env=env)
    with (
        grpc.insecure_channel(manager.address) as lab_channel,
        grpc.insecure_channel(idea.address) as idea_channel,
    ):
        lab = lab_pb2_grpc.LabServiceStub(lab_channel)
        ideas = idea_pb2_grpc.IdeaServiceStub(idea_channel)
        research = lab.StartResearch(
            lab_pb2.StartResearchRequest(goal="beat the logistic-regression baseline on digits")
        )
        wait_until(
            lambda: (
                lab.GetResearch(lab_pb2.GetResearchRequest(id=research.id)).state
                == research_pb2.RESEARCH_STATE_PLANNED
            )
        )
        reply = ideas.ProposeIdeas(
            idea_pb2.ProposeIdeasRequest(research_id=research.id, count=2), timeout=240
        )
        assert 1 <= len(reply.ideas) <= 2
        assert all(i.title and i.change and i.research_id == research.id for i in reply.ideas)
        exchanges = list(
            (tmp_path / "ws" / "artifacts" / "research" / research.id / "llm" / "idea").glob("*.json")
        )
        assert len(exchanges) >= 1
        with pytest.raises(grpc.RpcError) as missing:
            ideas.ProposeIdeas(idea_pb2.ProposeIdeasRequest(research_id="r" + "0" * 26))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as too_many:
            ideas.ProposeIdeas(idea_pb2.ProposeIdeasRequest(research_id=research.id, count=50))
        assert too_many.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_whole_number_settings_are_searched_as_integers_even_unsaid():
    from airlab_idea.agent import Proposal

    proposal = Proposal.model_validate(
        {
            "title": "Bigger forest",
            "change": "a random forest with more trees",
            "expected_effect": "+1% accuracy",
            "search_space": {
                "n_estimators": {"low": 50, "high": 300},
                "max_depth": {"low": 3.0, "high": 20.0},
                "learning_rate": {"low": 0.01, "high": 1.0},
                "subsample": {"low": 1, "high": 2},
            },
        }
    )
    space = proposal.search_space
    assert space["n_estimators"].integer and space["max_depth"].integer
    assert not space["learning_rate"].integer and not space["subsample"].integer


def loans_profile():
    from airlab import techniques

    return techniques.DataProfile(
        rows=1200,
        columns=[
            {"name": "applicant_id", "kind": "identifier"},
            {"name": "income", "kind": "number", "distinct": 1190, "importance": 0.09},
            {"name": "debt", "kind": "number", "distinct": 1180, "importance": 0.12},
            {"name": "region", "kind": "category", "distinct": 8, "examples": ["north", "south"]},
            {
                "name": "applied_on",
                "kind": "date",
                "distinct": 1100,
                "low": "2004-01-03",
                "high": "2023-02-28",
            },
        ],
        label={"name": "defaulted", "balance": {"0": 0.57, "1": 0.43}},
    )


async def test_a_table_gets_feature_ideas_on_its_own_columns_and_a_bad_step_is_sent_back(fake_llm):
    server, client = fake_llm
    research = planned_research()
    research.plan.dataset, research.plan.metric = "loans", "roc_auc"
    wrong = {"kind": "ratio", "columns": ["debt", "debt"]}  # well-formed, but says nothing
    right = {"kind": "ratio", "columns": ["debt", "income"]}
    idea = {**proposal("Debt to income"), "family": "hist_gradient_boosting", "evidence": "debt ranks first"}
    server.script = [
        Reply(content=json.dumps({"ideas": [{**idea, "steps": [right]}]})),
        Reply(content=json.dumps({"ideas": [{**idea, "steps": [wrong, wrong]}]})),
        Reply(content=json.dumps({"ideas": [{**idea, "steps": [right, wrong, right]}]})),
    ]
    (found,) = await IdeaAgent(client).propose(research, 1, profile=loans_profile())
    first, retry = server.requests[0]["messages"], server.requests[2]["messages"]
    assert "'debt': number" in first[-1]["content"] and "applicant_id" in first[-1]["content"]
    # The table affords several steps: an idea takes two at least (decoding follows the same bound).
    assert "steps: List should have at least 2 items" in server.requests[1]["messages"][-1]["content"]
    assert "no step can run: ratio of 'debt' with itself" in retry[-1]["content"]
    assert found.family == "hist_gradient_boosting" and found.evidence == "debt ranks first"
    assert found.change == "add ratio of debt and income, feeding a hist gradient boosting"
    assert f"the model's words: {idea['change']}" in found.rationale
    # The title says the steps too (a small model's often names the prompt example's columns); its own kept.
    assert found.title == "Features debt/income" and found.rationale.endswith(
        "the model's title: Debt to income"
    )
    assert [(s.technique, list(s.columns)) for s in found.steps] == [
        (idea_pb2.TECHNIQUE_RATIO, ["debt", "income"])
    ]
    # Once one step can run, the others are dropped (and said), not the idea.
    assert list(found.notes) == [
        "step 'ratio of debt and debt' dropped: ratio of 'debt' with itself",
        "step 'ratio of debt and income' dropped: a repeat",
    ]
    # The family's own hyperparameters are searched.
    assert {"learning_rate", "max_iter"} <= set(found.search_space)
    # Decoding follows a form per technique, its columns those of the kinds it takes (no identifier); the
    # prompt says the same in words instead of carrying the schema.
    schema = json.dumps(server.requests[0]["response_format"])
    assert (
        '"NumberColumn": {"enum": ["income", "debt", "applied_on"]' in schema and "applicant_id" not in schema
    )
    assert '"minItems": 2' in schema and "JSON schema of the reply" not in first[-1]["content"]
    assert '"maxLength": 80' in schema  # a short title: decoding stops the model running on
    assert "- ratio: number and number" in first[0]["content"] and "target_log" not in first[0]["content"]
    # The steps the table affords, from its profile, as the reply writes them.
    assert '- {"kind": "group_mean", "columns": ["debt", "region"]}' in first[-1]["content"]
    assert '- {"kind": "ratio", "columns": ["debt", "income"]}' in first[-1]["content"]


def loans_research() -> research_pb2.Research:
    research = planned_research()
    research.plan.dataset, research.plan.metric = "loans", "roc_auc"
    return research


def loans_profile_measuring(measured: list[dict]):
    """The loans profile with these derived features measured (the template's candidate_features)."""
    return type(loans_profile()).model_validate({**loans_profile().model_dump(), "candidates": measured})


async def test_the_prompts_example_is_the_tables_most_telling_measured_steps_not_yet_tried(fake_llm):
    server, client = fake_llm
    research = loans_research()
    measured = [
        {"kind": "ratio", "columns": ["debt", "income"], "association": 0.11, "columns_alone": 0.014},
        {"kind": "group_mean", "columns": ["income", "region"], "association": 0.02, "columns_alone": 0.001},
        {"kind": "group_mean", "columns": ["debt", "region"], "association": 0.026, "columns_alone": 0.014},
        {"kind": "ratio", "columns": ["income", "debt"], "association": 0.01, "columns_alone": 0.02},
    ]
    profile = loans_profile_measuring(measured)
    idea = {**proposal("Debt to income"), "family": "hist_gradient_boosting"}
    steps = [
        {"kind": "ratio", "columns": ["debt", "income"]},
        {"kind": "group_mean", "columns": ["income", "region"]},
    ]
    example = [*steps, {"kind": "group_mean", "columns": ["debt", "region"]}]
    server.script = [Reply(content=json.dumps({"ideas": [{**idea, "steps": steps}]}))] * 3 + [
        Reply(content=json.dumps({"ideas": [{**idea, "steps": example}]}))
    ]
    (own,) = await IdeaAgent(client).propose(research, 1, profile=profile)
    assert not any("example as given" in note for note in own.notes)
    system = server.requests[0]["messages"][0]["content"]
    # The three that tell most beyond their columns, as the reply writes them (the fourth tells less than
    # its columns alone); no other table's example.
    assert '"title": "Features debt/income, income vs region mean, debt vs region mean"' in system
    assert '"evidence": "the profile measured 0.110 for the ratio of debt and income against 0.014' in system
    assert "columns price, area, built_on" not in system
    # Once an idea with the ratio was tried, the example moves on; with fewer than two left, the fixed one.
    await IdeaAgent(client).propose(research, 1, profile=profile, tried=["Features debt/income"])
    assert (
        '"title": "Features income vs region mean, debt vs region mean"'
        in server.requests[1]["messages"][0]["content"]
    )
    await IdeaAgent(client).propose(
        research,
        1,
        profile=profile,
        tried=["Features debt/income, income vs region mean, debt vs region mean"],
    )
    assert "columns price, area, built_on" in server.requests[2]["messages"][0]["content"]
    # The example given back as it is: said in the idea's notes, so the report credits the choice rightly.
    (copied,) = await IdeaAgent(client).propose(research, 1, profile=profile)
    assert "its steps are the prompt's example as given" in copied.notes[-1]


def test_without_the_llm_the_profiles_measured_steps_make_one_feature_idea(fake_llm):
    """research.strategy.profile_ideas: the prompt's example as the idea itself, no LLM call; nothing for
    a table with fewer than two measured steps left, or a built-in array's columns."""
    server, client = fake_llm
    research = loans_research()
    profile = loans_profile_measuring([
        {"kind": "ratio", "columns": ["debt", "income"], "association": 0.11, "columns_alone": 0.014},
        {"kind": "group_mean", "columns": ["debt", "region"], "association": 0.03, "columns_alone": 0.014},
        {"kind": "group_mean", "columns": ["income", "region"], "association": 0.02, "columns_alone": 0.001},
    ])  # fmt: skip
    (idea,) = IdeaAgent(client).measured(research, ids_from="e1", profile=profile)
    assert not server.requests
    assert idea.family == "hist_gradient_boosting" and idea.id.startswith("i")
    assert [(s.technique, list(s.columns)) for s in idea.steps] == [
        (idea_pb2.TECHNIQUE_RATIO, ["debt", "income"]),
        (idea_pb2.TECHNIQUE_GROUP_MEAN, ["income", "region"]),  # it tells more beyond its columns
        (idea_pb2.TECHNIQUE_GROUP_MEAN, ["debt", "region"]),
    ]
    assert idea.title == techniques.steps_title([techniques.Step.from_proto(s) for s in idea.steps])
    assert idea.rationale.startswith("the steps the data profile measured most telling, no LLM: the profile")
    assert "the model's" not in idea.rationale
    assert {"learning_rate", "max_iter"} <= set(idea.search_space)
    # The same request again (a redelivery) proposes under the same id.
    (again,) = IdeaAgent(client).measured(research, ids_from="e1", profile=profile)
    assert again.id == idea.id
    # Tried already: fewer than two left, no idea; nor for columns whose names mean nothing.
    assert not IdeaAgent(client).measured(research, [idea.title], profile=profile)
    assert not IdeaAgent(client).measured(research, profile=profile.model_copy(update={"named": False}))
    assert not IdeaAgent(client).measured(research, profile=None)


def test_the_profiles_idea_on_long_column_names_keeps_its_steps_title_in_full(fake_llm):
    """Found by bench-research's profile-only runs on subscriptions: three steps' title ran past the reply's
    80 characters, and the example failed the schema it illustrates (the prompt showed it to the LLM)."""
    _, client = fake_llm
    research = planned_research()
    columns = [
        {"name": "sessions_last_30_days", "kind": "number", "distinct": 900},
        {"name": "seats_purchased", "kind": "number", "distinct": 300},
        {"name": "price_per_seat_in_dollars", "kind": "number", "distinct": 800},
        {"name": "customer_industry", "kind": "category", "distinct": 7},
    ]
    measured = [
        {"kind": "ratio", "columns": ["sessions_last_30_days", "seats_purchased"], "association": 0.17},
        {
            "kind": "ratio",
            "columns": ["sessions_last_30_days", "price_per_seat_in_dollars"],
            "association": 0.05,
        },
        {
            "kind": "group_mean",
            "columns": ["sessions_last_30_days", "customer_industry"],
            "association": 0.04,
        },
    ]
    profile = techniques.DataProfile(
        rows=2000, columns=columns, label={"name": "churned"}, candidates=measured
    )
    (idea,) = IdeaAgent(client).measured(research, profile=profile)
    assert len(idea.steps) == 3 and 80 < len(idea.title) <= 100  # the idea's title: its steps' own bound


async def test_a_built_in_arrays_columns_mean_nothing_so_its_ideas_stay_free_form(fake_llm):
    server, client = fake_llm
    profile = loans_profile().model_copy(update={"named": False})
    server.script = [Reply(content=json.dumps({"ideas": [proposal("An RBF-kernel SVM")]}))]
    (found,) = await IdeaAgent(client).propose(planned_research(), 1, profile=profile)
    assert found.title == "An RBF-kernel SVM" and not found.steps
    assert "Data profile" not in server.requests[0]["messages"][-1]["content"]


class FakeManagerRecords:
    """The manager's side of airlab.records, faked: answers every request with one record."""

    def __init__(self, record: records_pb2.ResearchRecord) -> None:
        self.record = record

    async def request(self, subject: str, payload: bytes, *, timeout: float) -> bytes:
        return self.record.SerializeToString()


class RecordingAgent:
    def __init__(self) -> None:
        self.profiles: list[techniques.DataProfile | None] = []

    async def propose(self, research, count, tried=(), *, profile=None, **_):
        self.profiles.append(profile)
        return []


async def test_propose_ideas_over_grpc_gets_the_data_profile_as_the_loops_requests_do(tmp_path):
    research = planned_research()
    research.plan.seeds[:] = [3, 4]
    loop = loop_pb2.ResearchLoop(job_config=loop_pb2.JobConfig(template="sklearn"))
    artifacts = LocalArtifactStore(tmp_path / "artifacts")
    found = records_pb2.ResearchRecord(status=records_pb2.RECORD_STATUS_FOUND, research=research, loop=loop)
    agent = RecordingAgent()
    servicer = IdeaServicer(agent, FakeManagerRecords(found), artifacts)
    request = idea_pb2.ProposeIdeasRequest(research_id=research.id, count=2)
    await servicer.ProposeIdeas(request, None)  # before the baseline ran: no profile
    found.loop.baseline.experiments[3] = "x-baseline-seed3"
    profile = {"columns": [{"name": "income", "kind": "number", "distinct": 90}]}
    key = experiment_key(research.id, "x-baseline-seed3", "result.json")
    artifacts.put(key, json.dumps({"metrics": {"accuracy": 0.9}, "profile": profile}).encode())
    await servicer.ProposeIdeas(request, None)
    assert agent.profiles[0] is None
    assert agent.profiles[1] is not None and agent.profiles[1].columns[0].name == "income"


def test_free_form_ideas_are_bounded_in_the_reply_schema_so_decoding_stops_a_small_model():
    """The 0.5B model ran on to its 1024-token limit three times in a row on friedman1 (80 s each, no
    JSON): the schema decoding follows bounds the ideas and their words."""
    from airlab_idea.agent import FEATURE_TITLE_CHARS, PROSE_CHARS, free_proposals

    schema = free_proposals(3).model_json_schema()
    assert schema["properties"]["ideas"]["maxItems"] == 3
    fields = schema["$defs"]["BoundedProposal"]["properties"]
    assert (
        fields["title"]["maxLength"] == FEATURE_TITLE_CHARS and fields["change"]["maxLength"] == PROSE_CHARS
    )
    # A model not held to the schema that writes more ideas than asked has its first ones taken.
    many = [proposal(f"Idea number {n}") for n in range(5)]
    assert [i.title for i in free_proposals(2).model_validate({"ideas": many}).ideas] == [
        "Idea number 0",
        "Idea number 1",
    ]
