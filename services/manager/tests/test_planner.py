"""The planner's rules, on the packaged dataset catalog."""

import pytest

from airlab.dataset_access import DataPlaces
from airlab.errors import InvalidArgument
from airlab.settings import ResearchDefaults
from airlab.v1 import research_pb2
from airlab_manager.catalog import DatasetCatalog
from airlab_manager.checks import check_goal
from airlab_manager.planner import Planner, PlanRequest


@pytest.fixture
def planner(monkeypatch, repo_configs):
    return Planner(DatasetCatalog.load(), ResearchDefaults())


@pytest.fixture
def repo_configs(monkeypatch, tmp_path):
    """The datasets packaged with the library, whatever the current directory holds."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AIRLAB_CONFIG_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))


def test_an_explicit_goal_is_planned_with_reasons(planner):
    outcome = planner.plan(PlanRequest(goal="Beat the logistic-regression baseline on digits"))
    plan = outcome.plan
    assert outcome.questions == []
    assert (plan.dataset, plan.task, plan.metric, plan.baseline) == (
        "digits",
        "classification",
        "accuracy",
        "logistic_regression",
    )
    assert plan.direction == research_pb2.METRIC_DIRECTION_MAXIMIZE
    assert list(plan.seeds) == [0, 1, 2]
    assert plan.budget.max_experiments == 12
    assert any("named in the goal" in reason for reason in plan.reasons)


def test_metric_and_baseline_named_in_the_goal_win_over_dataset_defaults(planner):
    plan = planner.plan(PlanRequest(goal="improve f1 over a random forest on the wine data")).plan
    assert (plan.dataset, plan.metric, plan.baseline) == ("wine", "f1_macro", "random_forest")
    regression = planner.plan(PlanRequest(goal="lower the MAE on diabetes")).plan
    assert regression.metric == "mae"
    assert regression.direction == research_pb2.METRIC_DIRECTION_MINIMIZE
    assert regression.baseline == "linear_regression"


def test_a_goal_without_a_dataset_becomes_a_question_unless_defaults_are_allowed(planner):
    outcome = planner.plan(PlanRequest(goal="make the model better"))
    assert outcome.plan is None
    assert [q.key for q in outcome.questions] == ["dataset"]
    assert set(outcome.questions[0].options) == {
        "digits",
        "breast_cancer",
        "wine",
        "diabetes",
        "hastie",
        "friedman1",
        "loans",
        "subscriptions",
        "shapes",
    }
    assumed = planner.plan(PlanRequest(goal="make the model better", allow_defaults=True)).plan
    assert assumed.dataset == "digits"
    assert any("assumed" in reason for reason in assumed.reasons)


def test_a_built_in_table_is_found_by_its_name_in_the_goal(planner):
    plan = planner.plan(PlanRequest(goal="get the best ROC AUC you can on the subscriptions table")).plan
    assert (plan.dataset, plan.task, plan.metric) == ("subscriptions", "classification", "roc_auc")


def test_two_datasets_named_ask_which_one(planner):
    outcome = planner.plan(PlanRequest(goal="compare wine and diabetes"))
    assert outcome.questions[0].key == "dataset"
    assert list(outcome.questions[0].options) == ["wine", "diabetes"]


def test_a_metric_that_does_not_fit_the_task_is_asked_about(planner):
    outcome = planner.plan(PlanRequest(goal="reduce rmse on digits"))
    assert outcome.questions[0].key == "metric"
    assert "rmse" not in outcome.questions[0].options


def test_budget_defaults_fill_only_missing_fields(planner):
    budget = research_pb2.Budget(max_experiments=3, max_cost_usd=0.5)
    plan = planner.plan(PlanRequest(goal="digits", budget=budget)).plan
    assert plan.budget.max_experiments == 3
    assert plan.budget.max_cost_usd == 0.5
    assert plan.budget.max_wall_seconds == 3600


@pytest.mark.parametrize(
    ("request_kwargs", "field"),
    [
        ({"goal": "  "}, "goal"),
        ({"goal": "x" * 4001}, "goal"),
        ({"goal": "a\x00b"}, "goal"),
        ({"goal": "a\x7fb"}, "goal"),  # DEL
        ({"goal": "a\u009b31mb"}, "goal"),  # a terminal's CSI
        ({"goal": "beat \u202ehctap"}, "goal"),  # right-to-left override
        ({"goal": "ok", "baseline": "x" * 1_000_000}, "baseline"),
        ({"goal": "ok", "dataset": "imagenet"}, "dataset"),
        ({"goal": "ok", "metric": "speed"}, "metric"),
        ({"goal": "ok", "dataset": "diabetes", "metric": "accuracy"}, "metric"),
        ({"goal": "ok", "dataset": "digits", "baseline": "ridge"}, "baseline"),
        ({"goal": "ok", "budget": research_pb2.Budget(max_experiments=5000)}, "budget.max_experiments"),
        ({"goal": "ok", "budget": research_pb2.Budget(max_wall_seconds=5)}, "budget.max_wall_seconds"),
        ({"goal": "ok", "budget": research_pb2.Budget(max_cost_usd=float("nan"))}, "budget.max_cost_usd"),
        ({"goal": "ok", "budget": research_pb2.Budget(max_cost_usd=-1)}, "budget.max_cost_usd"),
    ],
)
def test_bad_input_names_the_field(planner, request_kwargs, field):
    with pytest.raises(InvalidArgument) as raised:
        planner.check(PlanRequest(**request_kwargs), "ada")
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")
    assert len(str(raised.value)) < 1000  # the value is never echoed whole


def test_a_goal_keeps_its_tabs_newlines_and_other_scripts():
    assert check_goal("beat the baseline\n\ton digits, s'il vous plaît: 数字").startswith("beat")


def user(source="/data/houses.csv", target="price", task="regression") -> research_pb2.UserDataset:
    return research_pb2.UserDataset(source=source, target=target, task=task)


def test_a_users_csv_dataset_is_planned_from_its_task(planner):
    outcome = planner.plan(PlanRequest(goal="predict house prices better", user_dataset=user()))
    plan = outcome.plan
    assert (plan.dataset, plan.task, plan.metric, plan.baseline) == (
        "houses", "regression", "rmse", "linear_regression",
    )  # fmt: skip
    assert (plan.dataset_source, plan.dataset_target) == ("/data/houses.csv", "price")
    assert plan.direction == research_pb2.METRIC_DIRECTION_MINIMIZE
    s3 = planner.plan(
        PlanRequest(goal="g", user_dataset=user("s3://lab/churn.csv", "left", "classification"))
    )
    assert (s3.plan.metric, s3.plan.dataset_source) == ("accuracy", "s3://lab/churn.csv")


@pytest.mark.parametrize(
    "dataset, metric, field",
    [
        (user(source="relative/houses.csv"), "", "user_dataset.source"),
        (user(source="/data/houses.parquet"), "", "user_dataset.source"),
        (user(source="s3://only-a-bucket.csv"), "", "user_dataset.source"),
        (user(target=""), "", "user_dataset.target"),
        (user(task="ranking"), "", "user_dataset.task"),
        (user(source="/etc/passwd.csv"), "", "user_dataset.source"),
        (user(source="/proc/self/root/data.csv"), "", "user_dataset.source"),
        (user(source="/data/a\x00b.csv"), "", "user_dataset.source"),
        (user(source="/data/" + "a" * 100_000 + ".csv"), "", "user_dataset.source"),
        (user(source="/data/../etc/x.csv"), "", "user_dataset.source"),
        (user(source="s3://lab/../other/x.csv"), "", "user_dataset.source"),
        (user(target="price\u202e"), "", "user_dataset.target"),
        (user(), "accuracy", "metric"),
    ],
)
def test_a_bad_user_dataset_names_the_field(planner, dataset, metric, field):
    with pytest.raises(InvalidArgument) as error:
        planner.check(PlanRequest(goal="g", user_dataset=dataset, metric=metric), "ada")
    assert str(error.value).startswith(field)
    assert len(str(error.value)) < 1000


def test_the_goal_says_whether_to_stop_at_a_win_or_use_the_budget():
    from airlab.v1 import research_pb2
    from airlab_manager.planner import stop_rule

    beat, budget = research_pb2.STOP_RULE_BEAT_BASELINE, research_pb2.STOP_RULE_USE_BUDGET
    for goal, rule in [
        ("beat the logistic-regression baseline on digits", beat),
        ("get the best accuracy you can on hastie", budget),
        ("minimise the rmse on friedman1", budget),
        ("as good as possible on wine", budget),
    ]:
        reasons: list[str] = []
        assert stop_rule(goal, research_pb2.STOP_RULE_UNSPECIFIED, reasons) == rule, goal
        assert reasons
    assert stop_rule("minimise the rmse", beat, []) == beat  # the user's explicit choice wins


# -- the job template: scikit-learn or PyTorch -----------------------------------------------------------


def test_a_goal_naming_a_cnn_trains_networks_against_the_pytorch_mlp(planner):
    plan = planner.plan(PlanRequest(goal="beat the MLP baseline on digits with a CNN")).plan
    assert (plan.template, plan.dataset, plan.baseline, plan.metric) == (
        "pytorch",
        "digits",
        "torch_mlp",
        "accuracy",
    )
    assert "the goal names 'cnn': the research trains PyTorch networks" in plan.reasons
    assert plan.gpus == 0  # no GPUs configured: CPU
    # "with a CNN" is the method, not the baseline.
    best = planner.plan(PlanRequest(goal="get the best accuracy you can on digits with a CNN")).plan
    assert (best.template, best.baseline) == ("pytorch", "torch_mlp")


def test_a_plain_goal_on_the_same_data_stays_on_scikit_learn(planner):
    for goal in ("beat the logistic-regression baseline on digits", "beat the baseline on digits with an mlp",
                 "a neural network on digits"):  # fmt: skip
        plan = planner.plan(PlanRequest(goal=goal)).plan
        assert plan.template == "sklearn", goal
    assert planner.plan(PlanRequest(goal="deep learning on digits")).plan.template == "pytorch"


def test_the_shapes_goal_is_segmentation_with_a_unet_and_dice(planner):
    plan = planner.plan(PlanRequest(goal="beat the U-Net baseline on shapes segmentation")).plan
    assert (plan.template, plan.task, plan.metric, plan.baseline) == (
        "pytorch",
        "segmentation",
        "dice",
        "unet",
    )
    iou = planner.plan(PlanRequest(goal="best IoU you can on shapes")).plan
    assert iou.metric == "iou" and iou.until == research_pb2.STOP_RULE_USE_BUDGET


def test_the_template_can_be_asked_for_and_is_checked_against_the_data(planner):
    asked = PlanRequest(goal="beat the baseline on wine", template="pytorch")
    planner.check(asked, "ada")
    assert planner.plan(asked).plan.baseline == "torch_mlp"
    with pytest.raises(InvalidArgument, match=r"^template: unknown job template 'keras'"):
        planner.check(PlanRequest(goal="g", dataset="wine", template="keras"), "ada")
    with pytest.raises(InvalidArgument, match=r"^template: the pytorch job template cannot load 'hastie'"):
        planner.check(PlanRequest(goal="g", dataset="hastie", template="pytorch"), "ada")
    with pytest.raises(InvalidArgument, match=r"^template: the sklearn job template cannot load 'shapes'"):
        planner.check(PlanRequest(goal="g", dataset="shapes", template="sklearn"), "ada")
    with pytest.raises(InvalidArgument, match=r"^baseline: 'logistic_regression' is not a pytorch model"):
        planner.check(
            PlanRequest(goal="g", dataset="digits", baseline="logistic_regression", template="pytorch"), "ada"
        )
    with pytest.raises(
        InvalidArgument, match=r"^baseline: 'cnn' is a pytorch model; 'hastie' is for: sklearn"
    ):
        planner.check(PlanRequest(goal="g", dataset="hastie", baseline="cnn"), "ada")
    # The dataset named only in the goal: a person is asked, nothing is refused after the research started.
    outcome = planner.plan(PlanRequest(goal="beat the baseline on hastie", template="pytorch"))
    assert outcome.plan is None and [q.key for q in outcome.questions] == ["template"]
    assert list(outcome.questions[0].options) == ["sklearn"]


def test_a_pytorch_plan_asks_for_the_configured_gpus(repo_configs):
    planner = Planner(DatasetCatalog.load(), ResearchDefaults(experiment_gpus=1))
    plan = planner.plan(PlanRequest(goal="beat the MLP baseline on digits with a CNN")).plan
    assert plan.gpus == 1 and "each experiment asks the runner for 1 GPU(s)" in plan.reasons
    assert planner.plan(PlanRequest(goal="beat the baseline on digits")).plan.gpus == 0


def test_a_users_npz_file_is_for_pytorch(planner):
    dataset = research_pb2.UserDataset(source="/data/scans.npz", task="segmentation")
    plan = planner.plan(PlanRequest(goal="segment my scans", user_dataset=dataset)).plan
    assert (plan.template, plan.metric, plan.baseline, plan.dataset) == ("pytorch", "dice", "unet", "scans")
    folder = research_pb2.UserDataset(source="/data/pets/", task="classification")
    plan = planner.plan(PlanRequest(goal="classify my pets", user_dataset=folder)).plan
    assert (plan.template, plan.baseline, plan.dataset_source) == ("pytorch", "torch_mlp", "/data/pets")
    with pytest.raises(InvalidArgument, match=r"^user_dataset.source: an image folder must be on the runner"):
        planner.check(PlanRequest(goal="g", user_dataset=research_pb2.UserDataset(
            source="s3://bucket/pets/", task="classification")), "ada")  # fmt: skip
    with pytest.raises(InvalidArgument, match=r"^user_dataset.task: must be classification or regression"):
        planner.check(PlanRequest(goal="g", user_dataset=research_pb2.UserDataset(
            source="/data/t.csv", target="y", task="segmentation")), "ada")  # fmt: skip


def test_a_research_reads_only_its_own_users_uploads_and_nothing_else_of_the_lab(repo_configs, tmp_path):
    """The workspace's artifacts, logs, runs and keys are never a dataset; uploads are, to their own user
    only, on disk and in the lab's bucket, also through a link; with dataset roots, only what is inside."""
    workspace = tmp_path / "ws"
    mine = workspace / "artifacts" / "uploads" / "ada" / "d1" / "t.csv"
    theirs = workspace / "artifacts" / "uploads" / "bob" / "d2" / "t.csv"
    for path in (mine, theirs, workspace / "logs" / "nats.csv", tmp_path / "elsewhere" / "t.csv"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("a,label\n1,0\n")
    link = tmp_path / "mine.csv"
    link.symlink_to(theirs)
    places = DataPlaces(workspace=workspace, artifacts=workspace / "artifacts", bucket="")
    planner = Planner(DatasetCatalog.load(), ResearchDefaults(), places)

    def check(source: str, owner: str = "ada") -> None:
        dataset = research_pb2.UserDataset(source=source, target="label", task="classification")
        planner.check(PlanRequest(goal="g", user_dataset=dataset), owner)

    check(str(mine))
    check(str(theirs), owner="bob")
    check(str(tmp_path / "elsewhere" / "t.csv"))
    for source, why in [
        (str(theirs), "another user's upload"),
        (str(link), "another user's upload"),
        (str(workspace / "logs" / "nats.csv"), "inside the lab's workspace"),
    ]:
        with pytest.raises(InvalidArgument, match=f"^user_dataset.source: .*{why}"):
            check(source)
    with pytest.raises(InvalidArgument, match="another user's upload"):
        check(str(mine), owner="")  # a caller with no name owns no upload
    on_s3 = Planner(DatasetCatalog.load(), ResearchDefaults(), DataPlaces(bucket="lab"))
    dataset = research_pb2.UserDataset(source="s3://lab/uploads/ada/d1/t.csv", target="y", task="regression")
    on_s3.check(PlanRequest(goal="g", user_dataset=dataset), "ada")
    for key in ("uploads/bob/d2/t.csv", "experiments/r1/e1/result.csv"):
        dataset.source = f"s3://lab/{key}"
        with pytest.raises(InvalidArgument, match="the lab's own bucket"):
            on_s3.check(PlanRequest(goal="g", user_dataset=dataset), "ada")
    dataset.source = "s3://their-data/t.csv"  # another bucket the lab's credentials reach
    on_s3.check(PlanRequest(goal="g", user_dataset=dataset), "ada")
    rooted = Planner(DatasetCatalog.load(), ResearchDefaults(), DataPlaces(roots=(tmp_path / "elsewhere",)))
    dataset = research_pb2.UserDataset(source=str(link), target="label", task="classification")
    with pytest.raises(InvalidArgument, match="outside the dataset roots"):
        rooted.check(PlanRequest(goal="g", user_dataset=dataset), "ada")
