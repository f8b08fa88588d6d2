"""The coder agent's rules with a fake LLM server and a fake smoke runner (both named as such): the
template edit, the checks, the repair loop and its bound, and that every attempt is kept."""

import asyncio
import json

import pytest

from airlab.blobs import LocalArtifactStore
from airlab.llm.client import LLMClient
from airlab.llm.config import LLMConfig
from airlab.testing import FakeOpenAIServer, Reply
from airlab.v1 import events_pb2, idea_pb2, loop_pb2
from airlab_coder.agent import CoderAgent
from airlab_coder.checking import CodeProblem, check_source, extract_function, registry_function, with_model
from airlab_coder.tasks import CodeTask, SmokeResult, succeeded

RESEARCH = "r" + "2" * 26
IDEA = idea_pb2.Idea(
    id="i" + "3" * 26,
    title="Random forest",
    change="use a random forest instead of the logistic regression",
    search_space={"n_estimators": idea_pb2.Range(low=10, high=200, integer=True)},
)
JOB = loop_pb2.JobConfig(
    dataset="digits", task="classification", metric="accuracy", model="logistic_regression"
)
CONFIG = {"dataset": "digits", "task": "classification", "metric": "accuracy", "model": "logistic_regression"}
GOOD = """def build_model(params, seed):
    return ensemble.RandomForestClassifier(n_estimators=int(params["n_estimators"]), random_state=seed)"""
UNDEFINED = """def build_model(params, seed):
    return RandomForestClassifier(n_estimators=int(params["n_estimators"]), random_state=seed)"""
# A keyword the estimator does not take: no single right fix, so it goes back to the model.
WRONG_KEYWORD = """def build_model(params, seed):
    return ensemble.RandomForestClassifier(n_trees=int(params["n_estimators"]), random_state=seed)"""


def task_for(name, job, idea=None, **fields) -> CodeTask:
    """A code request for the test research, as the code.requested event carries it."""
    return CodeTask(RESEARCH, events_pb2.CodeRequested(name=name, job_config=job, idea=idea, **fields))


class FakeSmokeRunner:
    """Stands in for the runner: answers each smoke run from a script, and records what it was asked."""

    def __init__(self, *results: SmokeResult) -> None:
        self.results = list(results)
        self.calls: list[dict] = []

    async def run(self, research_id, experiment_id, code_ref, config, mounts):
        self.calls.append({"experiment_id": experiment_id, "code_ref": code_ref, "config": config})
        return self.results.pop(0) if self.results else SmokeResult(True)


@pytest.fixture
def fake_llm():
    server = FakeOpenAIServer()
    config = LLMConfig(
        servers={"fake": {"kind": "vllm", "base_url": server.url, "model": "fake"}},
        agents={"coder": {"servers": ["fake"]}},
    )
    yield server, LLMClient(config)
    server.close()


def code_reply(code: str) -> Reply:
    return Reply(content=f"Here it is:\n```python\n{code}\n```\n")


def test_the_template_edit_checks_undefined_names():
    from airlab.job_templates import template_source

    template = template_source("sklearn_train_template.py")
    assert check_source(template) == []
    assert check_source(with_model(template, GOOD)) == []
    problems = check_source(with_model(template, UNDEFINED))
    assert problems and "RandomForestClassifier" in problems[0]
    with pytest.raises(CodeProblem, match="build_model"):
        extract_function("def fit(x):\n    return x")
    with pytest.raises(CodeProblem, match="syntax"):
        extract_function("def build_model(params, seed)\n    return 1")
    assert extract_function(f"```python\n{GOOD}\n```") == GOOD


async def test_a_broken_draft_is_repaired_from_its_errors(fake_llm, tmp_path):
    server, llm = fake_llm
    server.script = [code_reply(WRONG_KEYWORD), code_reply(GOOD)]
    store = LocalArtifactStore(tmp_path)
    smoke = FakeSmokeRunner()
    outcome = await CoderAgent(llm, store, smoke).implement(task_for(IDEA.id, JOB, IDEA))
    assert succeeded(outcome) and outcome.attempts == 2 and outcome.repairs == []
    assert "takes no keyword `n_trees`" in outcome.problems[0] and "n_estimators" in outcome.problems[0]
    # The repair prompt carried the error back to the model.
    assert "n_trees" in server.requests[1]["messages"][-1]["content"]
    # Only the checked draft was smoke-run (the first one's problem needed no run), on a small subset with
    # the middle of the search space.
    assert len(smoke.calls) == 1 and smoke.calls[0]["config"]["max_samples"] > 0
    assert smoke.calls[0]["config"]["params"] == {"n_estimators": 105}
    final = store.get(outcome.code_ref + "train.py").decode()
    assert "RandomForestClassifier(n_estimators" in final
    kept = sorted(b.key.split("/code/")[1] for b in store.list(f"research/{RESEARCH}/code/"))
    assert f"{IDEA.id}/attempt-1/check.json" in kept and f"{IDEA.id}/attempt-2/train.py" in kept
    first = json.loads(store.get(f"research/{RESEARCH}/code/{IDEA.id}/attempt-1/check.json"))
    assert not first["passed"]


async def test_mistakes_with_one_right_answer_are_repaired_by_the_coder_and_recorded(fake_llm, tmp_path):
    server, llm = fake_llm
    server.script = [code_reply(UNDEFINED)]
    store = LocalArtifactStore(tmp_path)
    outcome = await CoderAgent(llm, store, FakeSmokeRunner()).implement(task_for(IDEA.id, JOB, IDEA))
    # The LLM's code, at its first attempt, with the class it meant taken from where it lives.
    assert succeeded(outcome) and outcome.attempts == 1 and outcome.origin == loop_pb2.CODE_ORIGIN_LLM
    assert outcome.repairs == [
        "`RandomForestClassifier` is not defined: used ensemble.RandomForestClassifier (sklearn.ensemble)"
    ]
    assert "ensemble.RandomForestClassifier(" in store.get(outcome.code_ref + "train.py").decode()
    provenance = json.loads(store.get(outcome.code_ref + "provenance.json"))
    assert provenance["repairs"] == outcome.repairs and provenance["origin"] == "CODE_ORIGIN_LLM"
    kept = json.loads(store.get(f"research/{RESEARCH}/code/{IDEA.id}/attempt-1/check.json"))
    assert kept["passed"] and kept["repairs"] == outcome.repairs
    # Read again after a crash: the same account.
    again = await CoderAgent(llm, store, FakeSmokeRunner()).implement(task_for(IDEA.id, JOB, IDEA))
    assert again.repairs == outcome.repairs


async def test_a_repair_that_gives_the_same_code_back_is_asked_again_less_predictably(fake_llm, tmp_path):
    server, llm = fake_llm
    server.script = [code_reply(WRONG_KEYWORD), code_reply(WRONG_KEYWORD), code_reply(GOOD)]
    outcome = await CoderAgent(llm, LocalArtifactStore(tmp_path), FakeSmokeRunner()).implement(
        task_for(IDEA.id, JOB, IDEA)
    )
    assert succeeded(outcome) and outcome.attempts == 2
    temperatures = [request["temperature"] for request in server.requests]
    assert temperatures[2] == 0.8 and temperatures[1] != 0.8


async def test_the_repair_loop_stops_at_its_bound(fake_llm, tmp_path):
    server, llm = fake_llm
    # Drafts that differ (a draft given back unchanged is asked for again), each failing its smoke run.
    server.script = [code_reply(f"{GOOD}  # draft {n}") for n in range(5)]
    smoke = FakeSmokeRunner(*[SmokeResult(False, "ValueError: boom")] * 5)
    agent = CoderAgent(llm, LocalArtifactStore(tmp_path), smoke)
    outcome = await agent.implement(task_for(IDEA.id, JOB, IDEA, max_attempts=3))
    assert not succeeded(outcome) and outcome.attempts == 3
    # Three drafts from the model, then one from the template's registry (the idea names a random forest).
    assert len(server.requests) == 3 and len(smoke.calls) == 4
    assert len(outcome.problems) == 4 and all("boom" in p for p in outcome.problems)
    assert len({c["experiment_id"] for c in smoke.calls}) == 4


async def test_an_idea_naming_a_known_model_falls_back_to_the_template_registry(fake_llm, tmp_path):
    server, llm = fake_llm
    loads_data = "def build_model(params, seed):\n    x = datasets.load_digits()\n    return svm.SVC()"
    server.script = [code_reply(loads_data)] * 3
    store = LocalArtifactStore(tmp_path)
    outcome = await CoderAgent(llm, store, FakeSmokeRunner()).implement(task_for(IDEA.id, JOB, IDEA))
    assert succeeded(outcome) and outcome.attempts == 4 and "registry" in outcome.problems[-1]
    final = store.get(outcome.code_ref + "train.py").decode()
    assert "MODELS['random_forest_classifier']" in final
    assert (
        registry_function(
            idea_pb2.Idea(title="Nothing known", change="a quantum model"),
            loop_pb2.JobConfig(task="classification"),
        )
        == ""
    )
    assert (
        registry_function(
            idea_pb2.Idea(title="Logistic regression", change="x"), loop_pb2.JobConfig(task="regression")
        )
        == ""
    )
    assert outcome.origin == loop_pb2.CODE_ORIGIN_REGISTRY_FALLBACK
    assert (
        json.loads(store.get(outcome.code_ref + "provenance.json"))["origin"]
        == "CODE_ORIGIN_REGISTRY_FALLBACK"
    )


def test_the_registry_fallback_runs_and_drops_parameters_the_model_does_not_take(tmp_path):
    import os
    import subprocess
    import sys

    from airlab.job_templates import template_source

    function = registry_function(
        idea_pb2.Idea(title="Random forest"), loop_pb2.JobConfig(task="classification")
    )
    script = tmp_path / "train.py"
    script.write_text(with_model(template_source("sklearn_train_template.py"), function))
    config = {**CONFIG, "params": {"n_estimators": 20.0, "max_depth": 4, "low": 1}, "max_samples": 300}
    env = {**os.environ, "JOB_CONFIG": json.dumps(config)}
    subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, check=True, capture_output=True)
    result = json.loads((tmp_path / "result.json").read_text())
    assert 0.5 < result["metrics"]["accuracy"] <= 1.0


async def test_the_baseline_needs_no_llm_and_finished_code_is_not_redone(tmp_path):
    store = LocalArtifactStore(tmp_path)
    agent = CoderAgent(None, store, FakeSmokeRunner())
    first = await agent.implement(task_for("baseline", JOB))
    assert succeeded(first) and first.attempts == 1
    again = await agent.implement(task_for("baseline", JOB))
    assert succeeded(again) and again.attempts == 1 and again.code_ref == first.code_ref
    assert again.origin == first.origin == loop_pb2.CODE_ORIGIN_TEMPLATE


def test_a_build_model_that_loads_data_or_fits_is_refused():
    with pytest.raises(CodeProblem, match="fit"):
        extract_function(
            "def build_model(params, seed):\n    m = svm.SVC()\n    m.fit([[0]], [0])\n    return m"
        )
    with pytest.raises(CodeProblem, match="load_digits"):
        extract_function(
            "def build_model(params, seed):\n    x = datasets.load_digits()\n    return svm.SVC()"
        )


def test_the_templates_registry_has_every_model_the_domain_catalog_names():
    from airlab.domain import template_models
    from airlab.job_templates import template_source

    source = template_source("sklearn_train_template.py")
    registry = source[source.index("MODELS = {") : source.index("\n}\n", source.index("MODELS = {"))]
    assert all(f'"{model}":' in registry for model in template_models())


async def test_a_portfolio_family_is_built_from_the_registry_without_the_llm(tmp_path):
    store = LocalArtifactStore(tmp_path)
    smoke = FakeSmokeRunner()
    task = task_for(IDEA.id, JOB, IDEA, family="hist_gradient_boosting")
    outcome = await CoderAgent(None, store, smoke).implement(task)
    assert succeeded(outcome) and outcome.attempts == 1 and outcome.origin == loop_pb2.CODE_ORIGIN_REGISTRY
    assert "MODELS['hist_gradient_boosting_classifier']" in store.get(outcome.code_ref + "train.py").decode()
    assert len(smoke.calls) == 1  # smoke-run like any code
    # After a crash the same code, and the same account of where it came from.
    again = await CoderAgent(None, store, smoke).implement(task)
    assert (again.origin, again.attempts, again.code_ref) == (outcome.origin, 1, outcome.code_ref)


async def test_a_feature_idea_is_compiled_from_the_catalog_and_an_improve_step_keeps_its_features(
    tmp_path, fake_llm
):
    store = LocalArtifactStore(tmp_path)
    smoke = FakeSmokeRunner()
    idea = idea_pb2.Idea(
        id="i" + "4" * 26,
        title="Debt to income",
        change="add debt / income before gradient boosting",
        family="hist_gradient_boosting",
        steps=[idea_pb2.FeatureStep(technique=idea_pb2.TECHNIQUE_RATIO, columns=["debt", "income"])],
    )
    loans = loop_pb2.JobConfig(
        dataset="loans", task="classification", metric="roc_auc", model="logistic_regression"
    )
    task = task_for(idea.id, loans, idea, family="hist_gradient_boosting")
    outcome = await CoderAgent(None, store, smoke).implement(task)
    assert succeeded(outcome) and outcome.origin == loop_pb2.CODE_ORIGIN_CATALOG and len(smoke.calls) == 1
    code = store.get(outcome.code_ref + "train.py").decode()
    assert "FEATURES: list = [{'kind': 'ratio', 'columns': ['debt', 'income']}]" in code
    assert "MODELS['hist_gradient_boosting_classifier']" in code
    # The LLM's improve step rewrites the model only: the idea's features stay in its code.
    server, client = fake_llm
    server.script = [code_reply(GOOD)]
    improve = task_for("i" + "5" * 26, loans, idea, base_code_ref=outcome.code_ref)
    improved = await CoderAgent(client, store, smoke).implement(improve)
    assert succeeded(improved) and improved.origin == loop_pb2.CODE_ORIGIN_LLM
    code = store.get(improved.code_ref + "train.py").decode()
    assert "'columns': ['debt', 'income']" in code and "RandomForestClassifier(n_estimators" in code


async def test_searched_hyperparameters_the_model_twice_leaves_unread_are_left_out_of_the_search(
    tmp_path, fake_llm
):
    server, client = fake_llm
    ignores = """def build_model(params, seed):
    return ensemble.RandomForestClassifier(random_state=seed)"""
    server.script = [code_reply(ignores), code_reply(ignores.replace("=seed)", "=seed, n_jobs=1)"))]
    smoke = FakeSmokeRunner()
    outcome = await CoderAgent(client, LocalArtifactStore(tmp_path), smoke).implement(
        task_for(IDEA.id, JOB, IDEA)
    )
    # Told once (attempt 1 failed for it); the second time the search leaves it out, and says so.
    assert "never reads it" in outcome.problems[0] and succeeded(outcome) and outcome.attempts == 2
    assert outcome.unsearched == ["n_estimators"]
    assert "`n_estimators` left out of the search: build_model does not read them" in outcome.repairs
    assert len(smoke.calls) == 1  # the first draft never ran


# -- networks (the pytorch template) ------------------------------------------------------------------------

TORCH_JOB = loop_pb2.JobConfig(
    dataset="shapes", task="segmentation", metric="dice", model="unet", template="pytorch"
)
TORCH_IDEA = idea_pb2.Idea(
    id="i-torch",
    research_id=RESEARCH,
    title="U-Net with a refinement block",
    change="refine the U-Net's features with the input image before the classifier",
    search_space={"width": idea_pb2.Range(low=8, high=16, integer=True)},
)
NETWORK = """class Refined(nn.Module):
    def __init__(self, input_shape, n_outputs, width):
        super().__init__()
        self.unet = UNet(input_shape, width, width=width, depth=2)
        self.refine = conv_block(width + input_shape[0], width)
        self.out = nn.Conv2d(width, n_outputs, 1)

    def forward(self, x):
        return self.out(self.refine(torch.cat([self.unet(x), x], dim=1)))


def build_model(params, input_shape, n_outputs):
    return Refined(input_shape, n_outputs, int(params.get("width", 8)))


print("left out: not part of the model")
"""


async def test_a_network_drafted_by_the_llm_keeps_its_classes_and_runs(fake_llm, tmp_path, monkeypatch):
    """The PyTorch prompt, a draft with its own class, checked, and the edited template actually run."""
    import os
    import subprocess
    import sys

    pytest.importorskip("torch")
    server, llm = fake_llm
    server.script = [code_reply(NETWORK)]
    store = LocalArtifactStore(tmp_path)
    outcome = await CoderAgent(llm, store, FakeSmokeRunner()).implement(
        task_for(TORCH_IDEA.id, TORCH_JOB, TORCH_IDEA)
    )
    assert succeeded(outcome) and outcome.origin == loop_pb2.CODE_ORIGIN_LLM
    system = server.requests[0]["messages"][0]["content"]
    assert "build_model(params, input_shape, n_outputs)" in system and "nn.Module" in system
    assert "(batch, n_outputs, height, width) class logits per pixel" in system
    source = store.get(outcome.code_ref + "train.py").decode()
    assert "class Refined(nn.Module)" in source and "left out" not in source
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "train.py").write_text(source)
    config = {"dataset": "shapes", "task": "segmentation", "metric": "dice", "params": {"width": 8},
              "max_samples": 60}  # fmt: skip
    env = {**os.environ, "JOB_CONFIG": json.dumps(config), "JOB_CPU_THREADS": "1"}
    await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "train.py"], cwd=tmp_path / "run", env=env, check=True, capture_output=True,
    )  # fmt: skip
    assert "dice" in json.loads((tmp_path / "run" / "result.json").read_text())["metrics"]


def test_network_code_that_trains_or_has_the_wrong_signature_is_refused():
    from airlab_coder.templates import PYTORCH

    with pytest.raises(CodeProblem, match=r"\(params, input_shape, n_outputs\)"):
        extract_function("def build_model(params, seed):\n    return nn.Linear(1, 1)", PYTORCH)
    trains = (
        "def build_model(params, input_shape, n_outputs):\n    m = nn.Linear(1, 1)\n"
        "    m(torch.ones(1)).sum().backward()\n    return m"
    )
    with pytest.raises(CodeProblem, match="backward"):
        extract_function(trains, PYTORCH)
    loads = "class Net(nn.Module):\n    def __init__(self):\n        torch.load('w.pt')\n\n\n"
    with pytest.raises(CodeProblem, match="load"):
        extract_function(
            loads + "def build_model(params, input_shape, n_outputs):\n    return Net()", PYTORCH
        )


def test_a_network_idea_falls_back_to_the_pytorch_registry():
    idea = idea_pb2.Idea(title="A deeper CNN", change="two more convolution blocks")
    job = loop_pb2.JobConfig(task="classification", template="pytorch")
    assert "MODELS['cnn'](input_shape, n_outputs, params)" in registry_function(idea, job)
    # The same words on the scikit-learn template name no family it has.
    assert registry_function(idea, loop_pb2.JobConfig(task="classification")) == ""


async def test_an_improve_step_shows_the_llm_the_best_code_and_its_results(fake_llm, tmp_path):
    from airlab.job_templates import template_source

    server, llm = fake_llm
    store = LocalArtifactStore(tmp_path)
    base = f"research/{RESEARCH}/code/{IDEA.id}/final/"
    store.put(base + "train.py", with_model(template_source("sklearn_train_template.py"), GOOD).encode())
    better = GOOD.replace("random_state=seed)", "max_features=0.5, random_state=seed)")
    server.script = [code_reply(better)]
    improve = idea_pb2.Idea(
        id="i" + "4" * 26, title="Random forest: improved by the LLM (#1)", search_space=IDEA.search_space
    )
    results = [
        "held-out test accuracy over 3 seeds: 0.9100 ± 0.0100",
        "trial with {'n_estimators': 40}: failed",
    ]
    task = task_for(improve.id, JOB, improve, base_code_ref=base, base_results=results)
    outcome = await CoderAgent(llm, store, FakeSmokeRunner()).implement(task)
    assert succeeded(outcome) and outcome.origin == loop_pb2.CODE_ORIGIN_LLM
    asked = server.requests[0]["messages"]
    assert "Make ONE change" in asked[0]["content"] and "n_estimators" in asked[0]["content"]
    assert (
        GOOD.splitlines()[1].strip() in asked[-1]["content"]
        and "- trial with {'n_estimators': 40}: failed" in asked[-1]["content"]
    )
    assert "max_features=0.5" in store.get(outcome.code_ref + "train.py").decode()
    # Drafts that never work fail the step: the registry's code is what it was to improve on.
    server.script = [code_reply("def build_model(params, seed):\n    return load_digits()")] * 3
    again = task_for("i" + "5" * 26, JOB, improve, base_code_ref=base, base_results=results)
    failed = await CoderAgent(llm, store, FakeSmokeRunner()).implement(again)
    assert not succeeded(failed) and not any("registry" in p for p in failed.problems)


async def test_a_shape_error_in_the_smoke_run_is_retried_once_with_lazy_layer_sizes(fake_llm, tmp_path):
    server, llm = fake_llm
    job = loop_pb2.JobConfig(dataset="digits", task="classification", metric="accuracy", template="pytorch")
    idea = idea_pb2.Idea(id="i" + "6" * 26, title="A two-layer network", change="two linear layers")
    draft = (
        "def build_model(params, input_shape, n_outputs):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(60, 32), nn.ReLU(), nn.Linear(32, n_outputs))\n"
    )
    server.script = [code_reply(draft)]
    shape_error = SmokeResult(
        False, "RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x64 and 60x32)"
    )
    smoke = FakeSmokeRunner(shape_error, SmokeResult(True))
    store = LocalArtifactStore(tmp_path)
    outcome = await CoderAgent(llm, store, smoke).implement(task_for(idea.id, job, idea))
    assert (
        succeeded(outcome) and outcome.attempts == 1 and len(server.requests) == 1 and len(smoke.calls) == 2
    )
    assert "shape error in the smoke run" in outcome.repairs[0]
    final = store.get(outcome.code_ref + "train.py").decode()
    assert "nn.LazyLinear(32)" in final and "nn.LazyLinear(n_outputs)" in final
    kept = f"research/{RESEARCH}/code/{idea.id}/"
    assert "nn.Linear(60, 32)" in store.get(kept + "attempt-1/train.py").decode()  # as the LLM wrote it
    assert json.loads(store.get(kept + "attempt-1-repaired/check.json"))["passed"]
    assert not json.loads(store.get(kept + "attempt-1/check.json"))["passed"]


def test_the_network_examples_follow_what_the_coders_model_does_best_with():
    from airlab.llm.prompts import render
    from airlab_coder.templates import NetworkExamples, network_examples_for

    assert network_examples_for("qwen2.5-coder-0.5b-instruct") is NetworkExamples.WHOLE
    assert network_examples_for("qwen2.5-coder-1.5b-instruct") is NetworkExamples.BLOCKS
    assert network_examples_for("gpt-4o-mini") is NetworkExamples.BLOCKS

    def example(task: str, shape: tuple[int, ...], examples: NetworkExamples) -> str:
        prompt = render(
            "coder/implement_pytorch", output="logits", input_shape=shape, poolings=2, modules="", task=task,
            dataset="d", metric="m", title="t", change="c", params={}, network_examples=examples.value,
        )  # fmt: skip
        assert "block=conv_block" in prompt.system  # the template's networks are described either way
        return prompt.examples[1][1]

    assert "block=GatedBlock" in example("segmentation", (1, 32, 32), NetworkExamples.BLOCKS)
    assert "class EncoderDecoder" in example("segmentation", (1, 32, 32), NetworkExamples.WHOLE)
    assert "block=WideKernelBlock" in example("classification", (1, 8, 8), NetworkExamples.BLOCKS)
    assert "class PooledCNN" in example("classification", (1, 8, 8), NetworkExamples.WHOLE)
    assert "class BottleneckMLP" in example("classification", (), NetworkExamples.BLOCKS)
