"""Sandbox start overhead, measured side by side in one run: a bare `python -c pass` against the same empty
job in the local sandbox (bubblewrap + cgroups + rlimits) and in the docker sandbox (a real dockerd).

Usage: make bench-runner   (or: .venv/bin/python scripts/bench_runner.py [--rounds N])"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from airlab_runner.sandbox import Limits, SandboxJob
from airlab_runner.sandbox.docker import DockerSandbox
from airlab_runner.sandbox.local import LocalSandbox


def timed(action, rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        began = time.perf_counter()
        action()
        samples.append(time.perf_counter() - began)
    return samples


def sandboxed(sandbox, workdir: Path):
    def run() -> None:
        job = SandboxJob("bench", workdir, "main.py", Limits(wall_seconds=60))
        result = sandbox.run(job, lambda line: None, threading.Event())
        assert (result.outcome, result.exit_code) == ("exited", 0), result

    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--image", default=os.environ.get("AIRLAB_BASE_IMAGE", "airlab-base:bookworm-v2"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        (workdir / "main.py").write_text("pass\n")
        rows = {
            "bare python -c pass": timed(
                lambda: subprocess.run([sys.executable, "-c", "pass"], check=True), args.rounds
            )
        }
        local = LocalSandbox()
        local.check()
        rows["local sandbox"] = timed(sandboxed(local, workdir), args.rounds)
        docker = DockerSandbox(image=args.image)
        try:
            docker.check()
            rows["docker sandbox"] = timed(sandboxed(docker, workdir), max(3, args.rounds // 2))
        except Exception as exc:
            print(f"docker sandbox: not measured ({exc})")
    bare = statistics.median(rows["bare python -c pass"])
    print(f"{'start overhead':<22} {'median':>9} {'ratio to bare':>14}")
    for name, samples in rows.items():
        median = statistics.median(samples)
        print(f"{name:<22} {median * 1000:7.1f} ms {median / bare:13.2f}x")


if __name__ == "__main__":
    main()
