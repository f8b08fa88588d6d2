"""The research loop end to end: the five services as processes against a real nats-server, experiments in
the real sandbox, memory in Qdrant's embedded mode.

- with the real local 0.5B model: a small research on digits completes and its report's numbers are the
  stored results';
- with a fake LLM server (named as such, so the outcome does not hang on a small model's mood): a goal
  that cannot be meaningfully beaten ends with a report that claims no significant gain, and a research
  whose services are all SIGKILLed mid-way completes after a restart with no experiment lost or run twice.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import grpc
import pytest

from airlab.events import body_of
from airlab.testing import FakeOpenAIServer, LiteratureServer, agent_replies, wait_until
from airlab.v1 import (
    idea_pb2,
    lab_pb2,
    lab_pb2_grpc,
    loop_pb2,
    manager_pb2,
    manager_pb2_grpc,
    research_pb2,
    reviewer_pb2,
    reviewer_pb2_grpc,
)

SERVICES = ("runner", "coder", "idea", "reviewer", "manager")
DONE = (research_pb2.RESEARCH_STATE_COMPLETED, research_pb2.RESEARCH_STATE_FAILED)


def start_lab(services, env: dict[str, str]) -> dict:
    return {name: services.start(name, env=env) for name in SERVICES}


def get(lab, research_id: str) -> research_pb2.Research:
    return lab.GetResearch(lab_pb2.GetResearchRequest(id=research_id))


def wait_done(lab, research_id: str, timeout: float) -> research_pb2.Research:
    wait_until(lambda: get(lab, research_id).state in DONE, timeout=timeout, interval=0.5)
    return get(lab, research_id)


def run_to_end(
    processes: dict, request: lab_pb2.StartResearchRequest, timeout: float
) -> research_pb2.Research:
    """Start a research through the manager's Lab API and wait until it ends or needs a person."""
    with grpc.insecure_channel(processes["manager"].address) as channel:
        lab = lab_pb2_grpc.LabServiceStub(channel)
        return wait_done(lab, lab.StartResearch(request).id, timeout=timeout)


def stored_result(workspace: Path, research_id: str, experiment_id: str) -> dict:
    path = workspace / "artifacts" / "research" / research_id / "experiments" / experiment_id / "result.json"
    return json.loads(path.read_text())


def mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
    return mean, std


def check_report_against_results(workspace: Path, research: research_pb2.Research) -> dict:
    """The report's numbers, recomputed from each run's stored result.json."""
    reports = workspace / "artifacts" / research.report_markdown_key
    assert reports.is_file() and (workspace / "artifacts" / research.report_html_key).is_file()
    summary = json.loads((reports.parent / "summary.json").read_text())
    metric = summary["metric"]
    baseline = [
        stored_result(workspace, research.id, x)["metrics"][metric]
        for x in summary["baseline_experiments"].values()
    ]
    mean, std = mean_std(baseline)
    assert summary["baseline"]["mean"] == pytest.approx(mean) and summary["baseline"]["std"] == pytest.approx(
        std
    )
    markdown = reports.read_text()
    assert f"**{mean:.4f} ± {std:.4f}**" in markdown
    for idea in summary["ideas"]:
        if idea["evaluation"]:
            runs = [
                stored_result(workspace, research.id, x)["metrics"][metric]
                for x in idea["evaluation"]["candidate"].values()
            ]
            idea_mean, idea_std = mean_std(runs)
            assert idea["evaluation"]["mean"] == pytest.approx(idea_mean)
            assert f"{idea_mean:.4f} ± {idea_std:.4f}" in markdown
    html = (workspace / "artifacts" / research.report_html_key).read_text()
    assert "data:image/png;base64," in html
    assert research.progress.experiments_finished == summary["counts"]["finished"]
    # Where the time went: experiments ran for a measurable time, and the report says so.
    assert research.progress.experiment_seconds > 0
    assert summary["timing"]["experiment_seconds"] == pytest.approx(research.progress.experiment_seconds)
    assert "## Where the time went" in markdown
    return summary


def test_a_small_research_on_digits_runs_end_to_end_with_the_local_model(services, llama_server, tmp_path):
    workspace = tmp_path / "ws"
    env = {
        "AIRLAB_LLM_URLS": json.dumps({"local-cpu": llama_server.url}),
        "AIRLAB_WORKSPACE": str(workspace),
        # The LLM's ideas and code are what this test is about.
        "AIRLAB_RESEARCH__STRATEGY__PORTFOLIO_SHARE": "0",
    }
    request = lab_pb2.StartResearchRequest(
        goal="beat the logistic-regression baseline on digits", budget=research_pb2.Budget(max_experiments=6)
    )
    done = run_to_end(start_lab(services, env), request, timeout=900)
    assert done.state == research_pb2.RESEARCH_STATE_COMPLETED, done.state_reason
    summary = check_report_against_results(workspace, done)
    assert done.progress.has_baseline and done.progress.experiments_requested <= 6
    assert summary["counts"]["requested"] <= 6
    # The idea agent's and (when it got an approved idea) the coder's exchanges are kept.
    llm = workspace / "artifacts" / "research" / done.id / "llm"
    assert list((llm / "idea").glob("*.json"))


# -- with a fake LLM --------------------------------------------------------------------------------------

SVC_IDEA = {
    "title": "Support vector machine with an RBF kernel",
    "change": "replace the logistic regression with an RBF-kernel SVC on standardized features",
    "expected_effect": "a slightly higher score on non-linear boundaries",
    "rationale": "kernels capture interactions a linear model misses",
    "search_space": {"C": {"low": 0.1, "high": 10.0, "log_scale": True}},
}
SVC_CODE = """```python
def build_model(params, seed):
    return pipeline.make_pipeline(
        preprocessing.StandardScaler(),
        svm.SVC(C=float(params["C"]), probability=True, random_state=seed),
    )
```"""


@pytest.fixture
def fake_llm():
    server = FakeOpenAIServer(responder=agent_replies(SVC_IDEA, SVC_CODE))
    yield server
    server.close()


def fake_env(fake_llm: FakeOpenAIServer, workspace: Path, **extra: str) -> dict[str, str]:
    return {
        "AIRLAB_LLM_URLS": json.dumps({"local-cpu": fake_llm.url}),
        "AIRLAB_WORKSPACE": str(workspace),
        "AIRLAB_RESEARCH__STRATEGY__PATIENCE_ROUNDS": "1",
        # These tests follow the LLM's idea through the loop; the portfolio has its own.
        "AIRLAB_RESEARCH__STRATEGY__PORTFOLIO_SHARE": "0",
        **extra,
    }


@pytest.fixture
def literature_server():
    server = LiteratureServer(Path(__file__).parents[1] / "libs" / "airlab" / "tests" / "data" / "literature")
    yield server
    server.close()


def test_a_goal_that_cannot_be_beaten_ends_with_an_honest_report(services, literature_server, tmp_path):
    """...with the related work the literature APIs (recorded answers, served here) gave, which the idea
    cites: the review calls it "from the literature", the report and the paper list and cite it."""
    workspace = tmp_path / "ws"
    fake_llm = FakeOpenAIServer(responder=agent_replies({**SVC_IDEA, "cites": [2]}, SVC_CODE))
    found = literature_server.settings()
    env = fake_env(
        fake_llm, workspace, AIRLAB_LITERATURE__OFFLINE="false",
        AIRLAB_LITERATURE__OPENALEX_URL=found.openalex_url, AIRLAB_LITERATURE__ARXIV_URL=found.arxiv_url,
        AIRLAB_LITERATURE__SEMANTIC_SCHOLAR_URL=found.semantic_scholar_url,
    )  # fmt: skip
    try:
        lab_processes = start_lab(services, env)
        run_the_unbeatable_goal(lab_processes, workspace)
    finally:
        fake_llm.close()


def run_the_unbeatable_goal(lab_processes: dict, workspace: Path) -> None:
    with grpc.insecure_channel(lab_processes["manager"].address) as channel:
        lab = lab_pb2_grpc.LabServiceStub(channel)
        research = lab.StartResearch(
            lab_pb2.StartResearchRequest(
                goal="beat the logistic-regression baseline on breast cancer",
                budget=research_pb2.Budget(max_experiments=8),
            )
        )
        done = wait_done(lab, research.id, timeout=600)
    assert done.state == research_pb2.RESEARCH_STATE_COMPLETED, done.state_reason
    assert done.plan.metric == "roc_auc" and done.progress.baseline_mean > 0.98
    summary = check_report_against_results(workspace, done)
    evaluated = [i for i in summary["ideas"] if i["evaluation"]]
    assert evaluated, "the SVM idea should have been run and evaluated"
    assert not any(i["evaluation"]["significant"] for i in evaluated)
    assert summary["best_idea_id"] is None
    markdown = (workspace / "artifacts" / done.report_markdown_key).read_text()
    assert "no significant gain over the baseline" in markdown
    assert "Nothing beat the baseline significantly." in markdown
    # The related work: found (recorded answers), listed with links, cited by the idea, which the review
    # calls "from the literature", never new.
    assert summary["related_work"]["status"] == "5 papers from openalex, arxiv, semantic_scholar"
    second = summary["related_work"]["papers"][1]["title"]
    assert f"2. [{second}](" in markdown
    assert "- **Support vector machine with an RBF kernel** cites [2]" in markdown
    svc = next(i for i in summary["ideas"] if i["title"].startswith("Support vector"))
    assert svc["cites"] == [2] and svc["literature"].startswith(f"from the literature: [2] {second}")
    # The report through the Lab API, for a client with no access to the artifact store.
    with grpc.insecure_channel(lab_processes["manager"].address) as channel:
        lab = lab_pb2_grpc.LabServiceStub(channel)
        report = lab.GetReport(lab_pb2.GetReportRequest(id=done.id))
        assert report.markdown == markdown and "<html" in report.html.lower()
        assert json.loads(report.summary_json)["research_id"] == done.id
        assert {"experiments.png", "comparison.png"} <= set(report.plots)
        assert all(png.startswith(b"\x89PNG") for png in report.plots.values())
        assert not report.pdf  # only when asked for
        # The paper: typeset beside the reports, every number in it checked against the records.
        paper = lab.GetReport(lab_pb2.GetReportRequest(id=done.id, pdf=True))
        assert paper.pdf.startswith(b"%PDF"), paper.paper_status
        assert paper.paper_status.startswith("report.pdf"), paper.paper_status
        assert summary["paper"]["published"] and summary["paper"]["unmatched"] == []
        with pytest.raises(grpc.RpcError) as unknown:
            lab.GetReport(lab_pb2.GetReportRequest(id="r" + "0" * 26))
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

    # The same agents answer direct gRPC calls from other tools.
    idea = evaluated[0]
    with (
        grpc.insecure_channel(lab_processes["manager"].address) as manager_channel,
        grpc.insecure_channel(lab_processes["reviewer"].address) as reviewer_channel,
    ):
        reviewer = reviewer_pb2_grpc.ReviewerServiceStub(reviewer_channel)
        evaluation = reviewer.EvaluateExperiment(
            reviewer_pb2.EvaluateExperimentRequest(research_id=done.id, experiment_id=idea["id"])
        )
        assert evaluation.mean == pytest.approx(idea["evaluation"]["mean"]) and not evaluation.significant
        manager = manager_pb2_grpc.ManagerServiceStub(manager_channel)
        again = manager.ReviewIdea(
            manager_pb2.ReviewIdeaRequest(
                research_id=done.id,
                idea=idea_pb2.Idea(
                    id=idea["id"], **{k: SVC_IDEA[k] for k in ("title", "change", "expected_effect")}
                ),
            )
        )
        assert not again.approved and any("already tried" in r for r in again.reasons)
        decision = manager.Decide(manager_pb2.DecideRequest(research_id=done.id))
        assert decision.kind == manager_pb2.DECISION_KIND_STOP and decision.reason
        with pytest.raises(grpc.RpcError) as missing:
            reviewer.EvaluateExperiment(
                reviewer_pb2.EvaluateExperimentRequest(research_id=done.id, experiment_id="i" + "0" * 26)
            )
        assert missing.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_killing_every_service_mid_research_loses_and_repeats_nothing(
    services, fake_llm, nats_server, tmp_path
):
    workspace = tmp_path / "ws"
    env = fake_env(
        fake_llm,
        workspace,
        AIRLAB_RESEARCH__STRATEGY__TRIALS_PER_IDEA="4",
        AIRLAB_RESEARCH__STOP_WHEN_GOAL_MET="false",
    )
    lab_processes = start_lab(services, env)
    with grpc.insecure_channel(lab_processes["manager"].address) as channel:
        lab = lab_pb2_grpc.LabServiceStub(channel)
        research = lab.StartResearch(
            lab_pb2.StartResearchRequest(
                goal="beat the logistic-regression baseline on wine",
                budget=research_pb2.Budget(max_experiments=9),
            )
        )
        wait_until(
            lambda: get(lab, research.id).progress.experiments_finished >= 5, timeout=300, interval=0.2
        )
    for process in lab_processes.values():
        process.kill()
    restarted = start_lab(services, env)
    with grpc.insecure_channel(restarted["manager"].address) as channel:
        lab = lab_pb2_grpc.LabServiceStub(channel)
        done = wait_done(lab, research.id, timeout=600)
        events = list(lab.WatchResearch(lab_pb2.WatchResearchRequest(id=research.id), timeout=60))
    assert done.state == research_pb2.RESEARCH_STATE_COMPLETED, done.state_reason
    summary = check_report_against_results(workspace, done)
    finished = Counter(body_of(e).experiment_id for e in events if e.type == "experiment.finished")
    requested = {
        body_of(e).experiment_id
        for e in events
        if e.type == "experiment.requested" and body_of(e).kind != loop_pb2.EXPERIMENT_KIND_SMOKE
    }
    research_runs = {x: n for x, n in finished.items() if x in requested}
    # 3 baseline seeds + 4 search trials + 2 more evaluation seeds: all finished, each exactly once.
    assert summary["counts"] == {"requested": 9, "finished": 9, "failed": 0}
    assert len(research_runs) == 9, "an experiment was lost"
    assert max(research_runs.values()) == 1, f"an experiment finished twice: {research_runs}"
    assert set(research_runs) == requested
    # No network here (tests search offline): the research went on without literature and says so.
    assert summary["related_work"] == {"status": "not available (offline)", "papers": []}
    markdown = (workspace / "artifacts" / done.report_markdown_key).read_text()
    assert "Related work: not available (offline)." in markdown
    # The search kept two trials in flight: its first two were asked for in one step.
    trial_causes = Counter(
        e.correlation_id
        for e in events
        if e.type == "experiment.requested" and body_of(e).kind == loop_pb2.EXPERIMENT_KIND_TRIAL
    )
    assert max(trial_causes.values()) == 2


def test_a_research_on_the_users_csv_file(services, fake_llm, tmp_path, open_folder):
    """A CSV file with a header row and a label column, mounted read-only into every experiment, with a
    text column and missing cells (imputed and encoded inside each model's pipeline). The first round is
    the portfolio: its code comes from the template's registry, not from the LLM."""
    import csv as csv_module

    from sklearn.datasets import load_wine

    wine = load_wine()
    csv = open_folder / "my-wine.csv"  # readable by every user: the jobs run as uids of their own
    with csv.open("w", newline="") as handle:
        writer = csv_module.writer(handle)
        writer.writerow([*wine.feature_names, "region", "cultivar"])
        for n, (row, label) in enumerate(zip(wine.data.tolist(), wine.target, strict=True)):
            cells = ["" if (n + i) % 17 == 0 else value for i, value in enumerate(row)]  # missing cells
            writer.writerow([*cells, ("north", "south", "NA")[n % 3], f"kind-{label}"])
    workspace = tmp_path / "ws"
    lab_processes = start_lab(
        services, fake_env(fake_llm, workspace, AIRLAB_RESEARCH__STRATEGY__PORTFOLIO_SHARE="0.5")
    )
    with grpc.insecure_channel(lab_processes["manager"].address) as channel:
        lab = lab_pb2_grpc.LabServiceStub(channel)
        research = lab.StartResearch(
            lab_pb2.StartResearchRequest(
                goal="beat the baseline on my wine measurements",
                user_dataset=research_pb2.UserDataset(
                    source=str(csv), target="cultivar", task="classification"
                ),
                budget=research_pb2.Budget(max_experiments=6),
            )
        )
        done = wait_done(lab, research.id, timeout=600)
        with pytest.raises(grpc.RpcError) as bad:
            lab.StartResearch(
                lab_pb2.StartResearchRequest(
                    goal="g",
                    user_dataset=research_pb2.UserDataset(source=str(csv), target="", task="classification"),
                )
            )
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert done.state == research_pb2.RESEARCH_STATE_COMPLETED, done.state_reason
    assert (done.plan.dataset, done.plan.metric, done.plan.dataset_target) == (
        "my_wine",
        "accuracy",
        "cultivar",
    )
    summary = check_report_against_results(workspace, done)
    assert summary["baseline"]["mean"] > 0.9
    # The idea's smoke run and experiments read the same mounted file.
    assert [i["status"] for i in summary["ideas"]] == ["evaluated"]
    idea = summary["ideas"][0]
    assert (idea["origin"], idea["code_origin"]) == ("portfolio", "template registry")
    markdown = (workspace / "artifacts" / done.report_markdown_key).read_text()
    assert "| portfolio | template registry |" in markdown


def test_a_symlinked_csv_of_a_root_only_file_is_refused_and_no_cell_of_it_is_stored(
    services, fake_llm, tmp_path
):
    """A user dataset that links to a file only its owner may read: the runner refuses to mount it (jobs
    run unprivileged), the research fails saying why, and no cell of the file reaches the report, the
    summary or the event stream."""
    secret = tmp_path / "private.csv"
    secret.write_text("a,label\nthe-root-only-cell,1\n2,0\n")
    secret.chmod(0o600)
    link = tmp_path / "innocent.csv"
    link.symlink_to(secret)
    workspace = tmp_path / "ws"
    lab_processes = start_lab(services, fake_env(fake_llm, workspace))
    request = lab_pb2.StartResearchRequest(
        goal="beat the baseline on my data",
        user_dataset=research_pb2.UserDataset(source=str(link), target="label", task="classification"),
        budget=research_pb2.Budget(max_experiments=3),
    )
    done = run_to_end(lab_processes, request, timeout=300)
    with grpc.insecure_channel(lab_processes["manager"].address) as channel:
        watch = lab_pb2.WatchResearchRequest(id=done.id, follow=False)
        events = list(lab_pb2_grpc.LabServiceStub(channel).WatchResearch(watch))
    assert done.state == research_pb2.RESEARCH_STATE_FAILED, research_pb2.ResearchState.Name(done.state)
    assert "not readable by every user" in done.state_reason
    stored = "".join(
        path.read_text(errors="replace") for path in (workspace / "artifacts").rglob("*") if path.is_file()
    )
    assert "the-root-only-cell" not in stored + str(done) + "".join(str(e) for e in events)


def test_every_experiment_waits_for_a_person_under_that_gate(services, fake_llm, tmp_path):
    workspace = tmp_path / "ws"
    lab_processes = start_lab(services, fake_env(fake_llm, workspace))
    with grpc.insecure_channel(lab_processes["manager"].address) as channel:
        lab = lab_pb2_grpc.LabServiceStub(channel)
        research = lab.StartResearch(
            lab_pb2.StartResearchRequest(
                goal="beat the logistic-regression baseline on wine",
                gates=research_pb2.HUMAN_GATES_EVERY_EXPERIMENT,
                budget=research_pb2.Budget(max_experiments=6),
            )
        )
        awaiting = research_pb2.RESEARCH_STATE_AWAITING_APPROVAL
        wait_until(lambda: get(lab, research.id).state == awaiting, timeout=60, interval=0.2)
        assert get(lab, research.id).awaiting == "plan"
        lab.Approve(lab_pb2.ApproveRequest(research_id=research.id))
        wait_until(lambda: get(lab, research.id).awaiting == "experiment", timeout=120, interval=0.2)
        waiting = get(lab, research.id)
        assert waiting.state == awaiting and waiting.awaiting_idea_id and waiting.progress.has_baseline
        # Nothing is coded before a person says so.
        assert not (
            workspace / "artifacts" / "research" / research.id / "code" / waiting.awaiting_idea_id
        ).exists()
        with pytest.raises(grpc.RpcError) as wrong:
            lab.Approve(lab_pb2.ApproveRequest(research_id=research.id, subject="plan"))
        assert wrong.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        lab.Approve(lab_pb2.ApproveRequest(research_id=research.id, subject="experiment", comment="go"))
        done = wait_done(lab, research.id, timeout=300)
    assert done.state == research_pb2.RESEARCH_STATE_COMPLETED, done.state_reason
    summary = check_report_against_results(workspace, done)
    assert [i["status"] for i in summary["ideas"]] == ["evaluated"]


# -- deep learning: PyTorch networks ----------------------------------------------------------------------
# "beat the U-Net baseline on shapes segmentation" with the fake LLM, whose coder writes a network of its
# own (the plan is segmentation with Dice, the LLM's network is what runs, the report has the loss curves
# and the predicted masks); "beat the MLP baseline on digits with a CNN" with the real local 0.5B model.


REFINED_UNET_IDEA = {
    "title": "U-Net with an input refinement block",
    "change": "refine the U-Net's features together with the input image before the per-pixel classifier, "
    "trained with a higher learning rate",
    "expected_effect": "sharper masks and a higher Dice",
    "rationale": "the raw intensities help separate touching shapes",
    "search_space": {"learning_rate": {"low": 0.004, "high": 0.01, "log_scale": True}},
}
REFINED_UNET_CODE = """```python
class RefinedUNet(nn.Module):
    def __init__(self, input_shape, n_outputs, width):
        super().__init__()
        self.unet = UNet(input_shape, width, width=width, depth=2)
        self.refine = conv_block(width + input_shape[0], width)
        self.out = nn.Conv2d(width, n_outputs, 1)

    def forward(self, x):
        return self.out(self.refine(torch.cat([self.unet(x), x], dim=1)))


def build_model(params, input_shape, n_outputs):
    return RefinedUNet(input_shape, n_outputs, 16)
```"""


def lab_env(llm_url: str, workspace: Path, **extra: str) -> dict[str, str]:
    return {
        "AIRLAB_LLM_URLS": json.dumps({"local-cpu": llm_url}),
        "AIRLAB_WORKSPACE": str(workspace),
        # These tests follow the LLM's network through the loop; the portfolio's floor has its own tests.
        "AIRLAB_RESEARCH__STRATEGY__PORTFOLIO_SHARE": "0",
        "AIRLAB_RESEARCH__STRATEGY__TRIALS_PER_IDEA": "1",
        **extra,
    }


def test_the_shapes_segmentation_goal_runs_the_llms_network_to_a_report(services, tmp_path):
    pytest.importorskip("torch")
    fake_llm = FakeOpenAIServer(responder=agent_replies(REFINED_UNET_IDEA, REFINED_UNET_CODE))
    workspace = tmp_path / "ws"
    try:
        env = lab_env(fake_llm.url, workspace, AIRLAB_RESEARCH__STRATEGY__PATIENCE_ROUNDS="1")
        request = lab_pb2.StartResearchRequest(
            goal="beat the U-Net baseline on shapes segmentation",
            budget=research_pb2.Budget(max_experiments=7),
        )
        done = run_to_end(start_lab(services, env), request, timeout=900)
    finally:
        fake_llm.close()
    assert done.state == research_pb2.RESEARCH_STATE_COMPLETED, done.state_reason
    plan = done.plan
    assert (plan.template, plan.task, plan.metric, plan.baseline) == (
        "pytorch",
        "segmentation",
        "dice",
        "unet",
    )
    summary = check_report_against_results(workspace, done)
    idea = next(i for i in summary["ideas"] if i["title"] == REFINED_UNET_IDEA["title"])
    assert idea["code_origin"] == "LLM (attempt 1)" and idea["evaluation"] is not None
    # The LLM's network is the code that ran, and each run says what it ran on.
    code = (workspace / "artifacts" / idea["code_ref"] / "train.py").read_text()
    assert "class RefinedUNet(nn.Module)" in code
    run = stored_result(workspace, done.id, next(iter(idea["evaluation"]["candidate"].values())))
    assert run["device"] == "cpu" and run["parameters"] > 0 and run["epochs"] == 10
    assert len(run["test_predictions"]) == run["split"]["test"]  # each test image's Dice
    assert summary["devices"] == {"cpu": summary["counts"]["finished"]}
    markdown = (workspace / "artifacts" / done.report_markdown_key).read_text()
    assert "code from the pytorch job template" in markdown
    assert "bootstrap interval of the gain over test examples" in markdown
    for plot in ("loss_curves.png", "masks.png"):
        assert (workspace / "artifacts" / "research" / done.id / "reports" / plot).stat().st_size > 0


# A real research with the local model and PyTorch, on two seeds (a CI-sized budget: the seeds' statistics
# have tests of their own): 189 s alone on a 2-core machine with three, past 600 s under a CI run's load.
@pytest.mark.timeout(600)
def test_the_digits_cnn_goal_completes_with_the_local_model(services, llama_server, tmp_path):
    pytest.importorskip("torch")
    workspace = tmp_path / "ws"
    request = lab_pb2.StartResearchRequest(
        goal="beat the MLP baseline on digits with a CNN", budget=research_pb2.Budget(max_experiments=4)
    )
    env = lab_env(llama_server.url, workspace, AIRLAB_RESEARCH__SEEDS="[0, 1]")
    done = run_to_end(start_lab(services, env), request, timeout=540)
    assert done.state == research_pb2.RESEARCH_STATE_COMPLETED, done.state_reason
    assert (done.plan.template, done.plan.baseline) == ("pytorch", "torch_mlp")
    summary = check_report_against_results(workspace, done)
    coded = [i for i in summary["ideas"] if i["code_ref"]]
    # Whoever wrote each network that ran is named: the LLM (attempt n) or the registry fallback.
    assert all(i["code_origin"].startswith(("LLM (attempt", "registry fallback")) for i in coded)
    print("digits CNN goal:", [(i["title"], i["code_origin"], i["status"]) for i in summary["ideas"]])


def mlflow_runs(url: str, research_id: str) -> tuple[dict | None, list[dict]]:
    """The research's parent run in MLflow (once fully tracked) and its child runs, through the REST API."""
    import httpx

    found = httpx.get(f"{url}/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "airlab"})
    if found.status_code != 200:
        return None, []
    experiment_id = found.json()["experiment"]["experiment_id"]
    runs = httpx.post(
        f"{url}/api/2.0/mlflow/runs/search",
        json={"experiment_ids": [experiment_id], "filter": f"tags.`airlab.research_id` = '{research_id}'",
              "max_results": 1000},
    ).json().get("runs", [])  # fmt: skip

    def tags(run: dict) -> dict:
        return {t["key"]: t["value"] for t in run["data"].get("tags", [])}

    parents = [
        r for r in runs if "mlflow.parentRunId" not in tags(r) and tags(r).get("airlab.tracked") == "true"
    ]
    if not parents:
        return None, []
    parent = parents[0]
    children = [r for r in runs if tags(r).get("mlflow.parentRunId") == parent["info"]["run_id"]]
    for run in [parent, *children]:
        run["tags"] = tags(run)
        run["metrics"] = {m["key"]: m["value"] for m in run["data"].get("metrics", [])}
        run["params"] = {p["key"]: p["value"] for p in run["data"].get("params", [])}
    return parent, children


def test_each_research_is_tracked_in_mlflow_and_tracking_failures_never_fail_a_research(
    services, fake_llm, mlflow_server, tmp_path
):
    """With a tracking URI, the research is a parent run and each experiment a child run whose numbers are
    the stored results' (so summary.json's). With the tracking server down the next research completes
    all the same, and is tracked once the server is back (the event is delivered again)."""
    import httpx

    workspace = tmp_path / "ws"
    env = fake_env(
        fake_llm, workspace,
        AIRLAB_TRACKING__MLFLOW_URI=mlflow_server.url,
        AIRLAB_RESEARCH__STRATEGY__PORTFOLIO_SHARE="0.5",
        AIRLAB_BUS__MAX_DELIVER="30",  # the tracking consumer keeps trying while the server is down
    )  # fmt: skip
    lab_processes = start_lab(services, env)
    request = lab_pb2.StartResearchRequest(
        goal="as good as possible on wine", budget=research_pb2.Budget(max_experiments=8)
    )
    done = run_to_end(lab_processes, request, timeout=600)
    assert done.state == research_pb2.RESEARCH_STATE_COMPLETED, done.state_reason
    summary = check_report_against_results(workspace, done)
    wait_until(lambda: mlflow_runs(mlflow_server.url, done.id)[0] is not None, timeout=120, interval=1)
    parent, children = mlflow_runs(mlflow_server.url, done.id)
    assert parent is not None
    metric = summary["metric"]
    assert parent["params"]["dataset"] == "wine" and parent["metrics"]["baseline_mean"] == pytest.approx(
        summary["baseline"]["mean"]
    )
    assert parent["tags"]["airlab.verdict"] == summary["verdict"]
    # One child per experiment that ran (smoke runs are not experiments), each with the stored numbers.
    assert len(children) == summary["counts"]["finished"] + summary["counts"].get("failed", 0)
    for child in children:
        experiment_id = child["tags"]["airlab.experiment_id"]
        stored = stored_result(workspace, done.id, experiment_id)
        assert child["metrics"][metric] == pytest.approx(stored["metrics"][metric])
        assert child["tags"]["airlab.kind"] in ("baseline", "trial", "evaluation")
        assert {"airlab.idea", "airlab.origin", "airlab.seed", "airlab.code_origin"} <= set(child["tags"])
    baseline = [c["metrics"][metric] for c in children if c["tags"]["airlab.kind"] == "baseline"]
    assert mean_std(baseline)[0] == pytest.approx(summary["baseline"]["mean"])
    trial = next(c for c in children if c["tags"]["airlab.kind"] == "trial")
    assert trial["params"] and trial["tags"]["airlab.origin"] == "portfolio"
    listed = httpx.get(
        f"{mlflow_server.url}/api/2.0/mlflow/artifacts/list", params={"run_id": trial["info"]["run_id"]}
    ).json()
    assert {"result.json", "metrics.jsonl", "code"} <= {f["path"] for f in listed.get("files", [])}

    # The tracking server goes away: the next research is not held up, and is tracked once it is back.
    mlflow_server.stop()
    second = run_to_end(lab_processes, request, timeout=600)
    assert second.state == research_pb2.RESEARCH_STATE_COMPLETED, second.state_reason
    mlflow_server.start()
    wait_until(lambda: mlflow_runs(mlflow_server.url, second.id)[0] is not None, timeout=180, interval=2)
    assert len(mlflow_runs(mlflow_server.url, done.id)[1]) == len(children)  # the first kept once


def test_a_research_is_observed_by_a_real_prometheus_and_traced_as_one_trace(
    services, fake_llm, prometheus, otlp_collector, tmp_path
):
    """Each service's /metrics, scraped every second by a real Prometheus through a research: every target
    up, each consumer's events counted, the runner's slot occupancy computable, and the LLM's tokens
    counted as the report's usage says. And every service's spans, exported over OTLP to a collector the
    test serves: the research is one trace, from StartResearch through the runner's jobs to the report."""
    workspace = tmp_path / "ws"
    traced = {"AIRLAB_OTEL_ENDPOINT": otlp_collector.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    lab_processes = start_lab(services, fake_env(fake_llm, workspace, **traced))
    targets = {name: process.metrics_url.split("/")[2] for name, process in lab_processes.items()}
    server = prometheus(targets)
    wait_until(lambda: len(server.values("up == 1", by="job")) == len(targets), timeout=30, interval=0.5)
    request = lab_pb2.StartResearchRequest(
        goal="beat the logistic-regression baseline on breast cancer",
        budget=research_pb2.Budget(max_experiments=6),
    )
    done = run_to_end(lab_processes, request, timeout=600)
    assert done.state == research_pb2.RESEARCH_STATE_COMPLETED, done.state_reason
    summary = json.loads(
        (workspace / "artifacts" / "research" / done.id / "reports" / "summary.json").read_text()
    )
    tokens = sum(u["prompt_tokens"] + u["completion_tokens"] for u in summary["usage"].values())
    assert tokens > 0

    def scraped_all() -> bool:  # the last scrapes came after the research's end
        counted = server.values("sum(airlab_llm_tokens_total)", by="")
        return counted.get("") == tokens

    wait_until(scraped_all, timeout=30, interval=0.5)
    assert set(server.values("up == 1", by="job")) == set(targets)
    handled = server.values('sum by (consumer) (airlab_events_handled_total{outcome="acked"})', by="consumer")
    for consumer in ("manager-planner", "manager-conductor", "idea", "coder", "reviewer", "runner-requests"):
        assert handled.get(consumer, 0) > 0, (consumer, handled)
    # Slot occupancy over the research: busy slot-seconds over slot-seconds.
    occupancy = server.values(
        "avg_over_time(airlab_runner_slots_busy[10m]) / avg_over_time(airlab_runner_slots[10m])", by="job"
    )
    assert 0 < occupancy["runner"] <= 1, occupancy
    assert server.values("max_over_time(airlab_runner_slots_busy[10m])", by="job")["runner"] >= 1
    finished = server.values('airlab_runner_jobs_total{state="succeeded"}', by="job")["runner"]
    assert finished >= done.progress.experiments_finished  # and the coder's smoke runs
    calls = server.values('sum by (job) (airlab_grpc_calls_total{code="OK"})', by="job")
    assert calls.get("manager", 0) >= 1  # the test's own StartResearch and GetResearch calls

    # The trace: StartResearch's server span is the root; nothing in the trace points to a missing parent.
    def whole_trace() -> list:
        spans = otlp_collector.received()
        roots = [s for s in spans if s.name == "airlab.v1.LabService/StartResearch"]
        if len(roots) != 1:
            return []
        in_trace = [s for s in spans if s.trace_id == roots[0].trace_id]
        known = {s.span_id for s in in_trace}
        ended = any(s.name == "handle report.written" for s in in_trace)
        return in_trace if ended and all(s.parent_id in known for s in in_trace if s is not roots[0]) else []

    wait_until(lambda: bool(whole_trace()), timeout=30, interval=0.5)
    in_trace = whole_trace()
    print("spans of the research's trace by service:", dict(Counter(s.service for s in in_trace)))
    assert {s.service for s in in_trace} == {f"airlab-{name}" for name in SERVICES}
    names = Counter(s.name for s in in_trace)
    assert names["run job"] >= done.progress.experiments_finished  # and the coder's smoke runs
    for handled in ("research.created", "research.planned", "idea.requested", "code.requested",
                    "experiment.requested", "report.requested"):  # fmt: skip
        assert names[f"handle {handled}"] >= 1, (handled, names)
    llm = [s for s in in_trace if s.name.startswith("llm ")]
    spans_tokens = sum(
        int(s.attributes["gen_ai.usage.input_tokens"]) + int(s.attributes["gen_ai.usage.output_tokens"])
        for s in llm
    )
    assert spans_tokens == tokens and {s.attributes["airlab.agent"] for s in llm} >= {"idea", "coder"}
