"""scripts/gpu-check on a machine without a GPU, against a fake nvidia-smi (named as such) that reports one
GPU: the runner leases it to the job and makes it visible, the job trains on the CPU it really has, and the
check says FAILED (exit 1) because nothing ran on CUDA. Without nvidia-smi it refuses with exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("torch")


def run_check(path: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": path}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu-check"), "--epochs", "1"],
        capture_output=True, text=True, timeout=240, env=env, check=False,
    )  # fmt: skip


def test_gpu_check_leases_the_gpu_and_fails_honestly_without_cuda(tmp_path):
    fake_bin = tmp_path / "fake-nvidia-bin"
    fake_bin.mkdir()
    (fake_bin / "nvidia-smi").write_text("#!/bin/sh\necho 0\n")  # a fake: one GPU, id 0
    (fake_bin / "nvidia-smi").chmod(0o755)
    done = run_check(f"{fake_bin}:{os.environ['PATH']}")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "JOB_STATE_SUCCEEDED" in done.stdout
    assert "'gpu.0'" in done.stdout  # the lease the job held
    assert "cuda_visible_devices: 0" in done.stdout and "device: cpu" in done.stdout
    assert done.stdout.rstrip().endswith("GPU CHECK: FAILED")


def test_gpu_check_needs_nvidia_smi(tmp_path):
    python_dir = str(Path(sys.executable).parent)
    done = run_check(f"{python_dir}:/usr/bin:/bin")
    if done.returncode != 2:
        pytest.skip("this machine has nvidia-smi")
    assert "no nvidia-smi on this machine" in done.stderr
