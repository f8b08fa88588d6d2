"""The local LLM beside experiments on one host, in one run: its decode and prefill speed alone and beside
realistic experiment mixes, and the mixes' throughput, under the old behaviour (the LLM on every core,
jobs unpinned with thread pools the size of the machine) and under each rule of airlab.cpus.

The experiments run through the runner's real local sandbox (bubblewrap, cgroups), exactly as the runner
starts them, with the slot layout of the rule being measured.

Usage: make bench-contention
   (or: .venv/bin/python scripts/bench_contention.py [--seconds N] [--rules NAME ...])"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from airlab.cpus import CpuPlan, CpuSettings, available_cores, plan_cpus
from airlab.llm.local import start_llama_server
from airlab_runner.sandbox import Limits, SandboxJob
from airlab_runner.sandbox.local import LocalSandbox

# A scikit-learn search step like the Optuna study that once took the LLM to under 1 token/s: a random
# forest with joblib workers on every core, OpenMP gradient boosting, an SVM. One unit = one of each.
SKLEARN_JOB = """
import time
from sklearn.datasets import make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.svm import SVC
x, y = make_classification(n_samples=1200, n_features=30, random_state=0)
with open("units.log", "a") as out:
    while True:
        RandomForestClassifier(n_estimators=30, n_jobs=-1, random_state=0).fit(x, y)
        HistGradientBoostingClassifier(max_iter=30, early_stopping=False).fit(x, y)
        SVC().fit(x, y)
        out.write(f"{time.time()}\\n")
        out.flush()
"""
# PyTorch training of an MLP on the CPU; one unit = 10 steps.
TORCH_JOB = """
import os, time
import torch
threads = int(os.environ.get("JOB_CPU_THREADS") or 0)
if threads:
    torch.set_num_threads(threads)
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512),
                            torch.nn.ReLU(), torch.nn.Linear(512, 10))
optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
x, y = torch.randn(512, 256), torch.randint(0, 10, (512,))
with open("units.log", "a") as out:
    while True:
        for _ in range(10):
            optimiser.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimiser.step()
        out.write(f"{time.time()}\\n")
        out.flush()
"""
MIXES = {
    "scikit-learn, 1 slot": [SKLEARN_JOB],
    "scikit-learn, 2 slots": [SKLEARN_JOB, SKLEARN_JOB],
    "pytorch, 1 slot": [TORCH_JOB],
}
SLOTS = 2
MODEL = "qwen2.5-coder-0.5b-instruct"  # the default local model
PROMPT = "Here is a list of the numbers from 1 to 400, separated by commas: 1, 2, 3,"
FILLER = " ".join(f"note {n}: keep counting;" for n in range(60))


@dataclass(frozen=True)
class Rule:
    name: str
    settings: CpuSettings | None  # None: the old behaviour

    def plan(self) -> CpuPlan | None:
        return plan_cpus(self.settings, local_llm=True) if self.settings else None


def rules(cores: int) -> dict[str, Rule]:
    return {
        "old": Rule("old: LLM on every core, jobs unpinned", None),
        "split": Rule("split (default): LLM pinned to its core(s), jobs pinned to the others", CpuSettings()),
        "turns": Rule("turns: LLM on every core, jobs there at idle priority", CpuSettings(llm_cores=cores)),
    }


@dataclass
class Speed:
    prefill: float  # prompt tokens per second
    decode: float  # generated tokens per second


def llm_speed(url: str, model: str, calls: int, until: float | None = None) -> list[Speed]:
    """Streamed completions of 96 tokens with a fresh prompt each (llama.cpp caches prompt prefixes):
    prefill from the time to the first token, decode from the tokens after it."""
    found: list[Speed] = []
    with httpx.Client(timeout=600) as http:
        # Idle: `calls` calls. Beside jobs: calls until `until` (at least one, however slow).
        while len(found) < calls if until is None else (not found or time.time() < until):
            prompt = f"Request {uuid.uuid4().hex}. {FILLER}\n{PROMPT}"
            count = http.post(
                url.removesuffix("/v1") + "/extras/tokenize/count", json={"input": prompt}
            ).json()["count"]
            began = time.perf_counter()
            first, tokens = 0.0, 0
            body = {
                "model": model,
                "prompt": prompt,
                "max_tokens": 96,
                "temperature": 0,
                "stream": True,
            }
            with http.stream("POST", f"{url}/completions", json=body) as reply:
                for line in reply.iter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    tokens += 1
                    if tokens == 1:
                        first = time.perf_counter()
            ended = time.perf_counter()
            if tokens > 8:
                found.append(Speed(count / (first - began), (tokens - 1) / (ended - first)))
    return found


class Jobs:
    """Experiment jobs running in the runner's local sandbox until stopped; throughput from their logs."""

    def __init__(self, codes: list[str], plan: CpuPlan | None, root: Path) -> None:
        self.sandbox = LocalSandbox()
        self.cancel = threading.Event()
        self.dirs: list[Path] = []
        self.threads: list[threading.Thread] = []
        for index, code in enumerate(codes):
            workdir = Path(tempfile.mkdtemp(dir=root))
            workdir.chmod(0o777)
            (workdir / "job.py").write_text(code)
            job = SandboxJob(
                job_id=f"bench-{uuid.uuid4().hex[:12]}",
                workdir=workdir,
                entrypoint="job.py",
                limits=Limits(cpu_millis=1000 * len(available_cores()), memory_mib=2048, wall_seconds=3600),
                cpus=plan.slot(index, SLOTS) if plan else None,
            )
            thread = threading.Thread(target=self.sandbox.run, args=(job, lambda _: None, self.cancel))
            self.dirs.append(workdir)
            self.threads.append(thread)

    def __enter__(self) -> Jobs:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.cancel.set()
        for thread in self.threads:
            thread.join(30)

    def units(self, start: float, end: float) -> float:
        """Units of work per second, summed over the jobs, between two instants."""
        done = 0
        for workdir in self.dirs:
            log = workdir / "units.log"
            stamps = [float(t) for t in log.read_text().split()] if log.is_file() else []
            done += sum(1 for t in stamps if start <= t < end)
        return done / (end - start)


def measure(rule: Rule, seconds: float, calls: int, root: Path) -> dict[str, dict[str, float]]:
    plan = rule.plan()
    cores = plan.llm if plan else ()
    server = start_llama_server(MODEL, cores=cores, threads=None if cores else len(available_cores()))
    rows: dict[str, dict[str, float]] = {}
    try:
        llm_speed(server.url, server.model, 1)  # warm-up
        idle = llm_speed(server.url, server.model, calls)
        rows["idle"] = _row(idle, None)
        for mix, codes in MIXES.items():
            with Jobs(codes, plan, root) as jobs:
                time.sleep(4)  # imports and data
                start = time.time()
                time.sleep(seconds / 2)
                alone = jobs.units(start, time.time())
                start = time.time()
                busy = llm_speed(server.url, server.model, calls, until=start + seconds / 2)
                row = _row(busy, jobs.units(start, time.time()))
                row["jobs alone"] = alone
                rows[mix] = row
                print(f"  {mix}: {row}", flush=True)
    finally:
        server.stop()
    return rows


def _row(speeds: list[Speed], units: float | None) -> dict[str, float]:
    row = {
        "decode": statistics.median(s.decode for s in speeds),
        "prefill": statistics.median(s.prefill for s in speeds),
        "slowest decode": min(s.decode for s in speeds),
    }
    if units is not None:
        row["jobs beside LLM"] = units
    return row


def research_calls(cores: int) -> None:
    """A real research on the embedded stack as `airlab up` starts it (the LLM pinned by the default rule,
    parallel trials on the runner's slots): each LLM call's latency against what the same server needs for
    the same tokens when idle (measured before the research, from the same server)."""
    import json
    import os
    import subprocess
    import sys

    from airlab.stack import load_state

    cli = [sys.executable, "-m", "airlab.cli"]
    with tempfile.TemporaryDirectory(prefix="airlab-bench-research-") as tmp:
        workspace = Path(tmp)
        env = {**os.environ, "AIRLAB_WORKSPACE": str(workspace)}
        subprocess.run([*cli, "up"], check=True, env=env, stdout=subprocess.DEVNULL)
        try:
            state = load_state(workspace)
            assert state is not None
            url = state.address_of("llm")
            idle = llm_speed(url, MODEL, 4)
            prefill = statistics.median(s.prefill for s in idle)
            decode = statistics.median(s.decode for s in idle)
            began = time.monotonic()
            subprocess.run(
                [*cli, "research", "beat the logistic-regression baseline on digits", "--allow-defaults",
                 "--max-experiments", "12"],
                check=True, env=env, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            wall = time.monotonic() - began
            ratios = []
            for path in sorted((workspace / "artifacts" / "research").glob("*/llm/*/*.json")):
                call = json.loads(path.read_text())
                expected = call["prompt_tokens"] / prefill + call["completion_tokens"] / decode
                if expected > 0:
                    ratios.append(call["latency_seconds"] / expected)
        finally:
            subprocess.run([*cli, "down"], env=env, stdout=subprocess.DEVNULL)
    print(f"\nA research on digits (12 experiments) on the embedded stack, {cores} cores, {wall:.0f} s:")
    print(f"  the LLM idle: prefill {prefill:.1f}, decode {decode:.1f} tokens/s")
    if ratios:
        print(
            f"  {len(ratios)} LLM calls, latency against the idle server's for the same tokens: median "
            f"x{statistics.median(ratios):.2f}, slowest x{max(ratios):.2f}"
        )


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=24, help="measuring window per mix")
    parser.add_argument("--calls", type=int, default=4, help="LLM calls per idle measurement (at least)")
    parser.add_argument("--rules", nargs="*", default=["old", "split", "turns"])
    parser.add_argument("--research", action=argparse.BooleanOptionalAction, default=True,
                        help="also run a research on the embedded stack and time its LLM calls")  # fmt: skip
    args = parser.parse_args()
    cores = len(available_cores())
    LocalSandbox().check()
    known = rules(cores)
    results = {}
    with tempfile.TemporaryDirectory(prefix="airlab-bench-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)
        for name in args.rules:
            print(f"measuring {known[name].name} ...", flush=True)
            results[name] = measure(known[name], args.seconds, args.calls, root)
    reference = results.get("old", next(iter(results.values())))
    idle_decode = reference["idle"]["decode"]
    print(f"\n{cores} cores; the LLM's idle decode under the old behaviour: {idle_decode:.1f} tokens/s")
    print("decode and prefill in tokens/s (median), jobs in units of work/s. 'x idle': decode against the")
    print("old behaviour's idle LLM; 'x old': jobs beside the LLM against the old behaviour's jobs alone;")
    print("'x own': against the same rule's jobs alone (what the LLM's calls cost them)\n")
    header = f"{'rule':6} {'mix':22} {'decode':>7} {'x idle':>7} {'slowest':>8} {'prefill':>8} "
    print(header + f"{'jobs alone':>11} {'jobs+LLM':>9} {'x old':>7} {'x own':>7}")
    for name, rows in results.items():
        for mix, row in rows.items():
            line = (
                f"{name:6} {mix:22} {row['decode']:7.1f} {row['decode'] / idle_decode:7.2f} "
                f"{row['slowest decode']:8.1f} {row['prefill']:8.1f} "
            )
            if "jobs alone" in row:
                busy, alone = row["jobs beside LLM"], row["jobs alone"]
                old_alone = reference[mix]["jobs alone"]
                line += f"{alone:11.2f} {busy:9.2f} {_ratio(busy, old_alone):7.2f} {_ratio(busy, alone):7.2f}"
            print(line)
    for name in results:
        plan = known[name].plan()
        if plan is not None:
            print(f"{name}: LLM cores {plan.llm}, experiment cores {plan.experiments}")
    if args.research:
        research_calls(cores)


if __name__ == "__main__":
    main()
