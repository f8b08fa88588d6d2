"""The Python client against the real embedded stack, started by `airlab up` from an empty directory with
nothing but the installed packages (configs from the packaged defaults, the workspace in the user's data
directory). Agents talk to a fake LLM server (named as such) so the outcome does not hang on a model."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from airlab.client import Lab
from airlab.testing import FakeOpenAIServer, agent_replies
from airlab.v1 import research_pb2

README = Path(__file__).resolve().parents[1] / "README.md"
KNN_IDEA = {
    "title": "k-nearest neighbours on standardized features",
    "change": "replace the logistic regression with a KNeighborsClassifier after a StandardScaler",
    "expected_effect": "similar accuracy",
    "rationale": "wine classes form compact clusters",
    "search_space": {"n_neighbors": {"low": 3, "high": 15, "integer": True}},
}
KNN_CODE = """```python
def build_model(params, seed):
    return pipeline.make_pipeline(
        preprocessing.StandardScaler(),
        neighbors.KNeighborsClassifier(n_neighbors=int(params["n_neighbors"])),
    )
```"""


def client_example() -> str:
    """The Python block that follows the client-example marker in README.md."""
    text = README.read_text()
    match = re.search(r"<!-- client-example -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README.md lost its client example"
    return match.group(1)


@pytest.fixture
def empty_dir(tmp_path, monkeypatch):
    """An empty directory outside any checkout, with user config and data directories of its own."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.chdir(home)
    for name in ("AIRLAB_CONFIG_DIR", "AIRLAB_WORKSPACE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return home


@pytest.fixture
def stack_here(empty_dir, monkeypatch):
    fake = FakeOpenAIServer(responder=agent_replies(KNN_IDEA, KNN_CODE))
    monkeypatch.setenv("AIRLAB_LLM_URLS", json.dumps({"local-cpu": fake.url}))
    monkeypatch.setenv("AIRLAB_RESEARCH__STRATEGY__PATIENCE_ROUNDS", "1")

    def airlab(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "airlab.cli", *args], capture_output=True, text=True,
                              timeout=120, env=dict(os.environ))  # fmt: skip

    started = airlab("up")
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield empty_dir
    finally:
        airlab("down")
        fake.close()
    # Nothing was written where the command ran: the workspace is the user's.
    assert not (empty_dir / ".airlab").exists()
    workspace = empty_dir.parent / "data" / "airlab" / "workspace"
    assert (workspace / "run").is_dir()
    # Every agent did its work within its bus permissions (the coder's smoke runs included).
    assert "Violation" not in (workspace / "logs" / "nats.log").read_text()


def test_the_readme_example_runs_against_a_stack_started_from_an_empty_directory(stack_here):
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(client_example(), "README.md client example", "exec"), {})
    lines = printed.getvalue().splitlines()
    assert lines[0].startswith("plan wine accuracy")
    assert any(line.startswith("done ") for line in lines), lines
    assert "significant" in lines[-2] or "beat the baseline" in lines[-2]
    assert {"report.md", "report.html", "summary.json"} <= set(ast.literal_eval(lines[-1]))
    assert (stack_here / "results" / "reports" / "report.md").is_file()

    with Lab.connect() as lab:
        (done,) = lab.list(research_pb2.RESEARCH_STATE_COMPLETED)
        finished_report = lab.report(done.id, format="pdf")
        assert done.progress.experiments_finished == finished_report.summary["counts"]["finished"]
        saved = finished_report.save_pdf(stack_here / "paper.pdf")
        assert saved.read_bytes().startswith(b"%PDF")
        events = [event.type for event in lab.events(done.id, follow=False)]
        assert events[0] == "research.created" and events[-1] == "research.completed"

        # A research cancelled while its plan waits for a person.
        other = lab.start("beat the logistic-regression baseline on digits", gates="plan")
        assert lab.wait(other.id, timeout=60).state == research_pb2.RESEARCH_STATE_AWAITING_APPROVAL
        assert lab.cancel(other.id, "changed my mind").state == research_pb2.RESEARCH_STATE_CANCELLED
        with pytest.raises(grpc.RpcError) as unknown:
            lab.get("r" + "0" * 26)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
