"""Null goals through the embedded stack with the default local model: labels shuffled, so no model can
beat chance and any claimed win is false. The short version of `make bench-null`: one goal of each
dataset and metric (accuracy, RMSE, macro F1, ROC AUC, MAE), no claim."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_null_goals_claim_no_win(tmp_path):
    out = tmp_path / "null.json"
    done = subprocess.run(
        [sys.executable, "scripts/bench_null.py", "--goals", "5", "--budget", "9", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1450,
    )
    assert out.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())["results"]
    assert len(results) == 5 and not [r for r in results if "failed" in r], done.stdout[-3000:]
    assert [r["goal"] for r in results if r["claimed"]] == [], done.stdout[-3000:]
    assert done.returncode == 0
    # The researches did compare candidates with the baseline: a claim was possible.
    assert sum(r["comparisons"] for r in results) >= 5
    assert "| family-wise" in done.stdout and "false claims" in done.stdout
