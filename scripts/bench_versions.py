"""Two versions of the lab side by side in one run: this checkout and another commit (--base), each
measured the same way, in turns (base, this, base, this, ...) so the machine's load falls on both alike.

Measured per version:
  - the manager's work per loop event (scripts/bench_record_path.py: the real conductor on a real KV
    bucket, researches driven from plan to report by scripted answers), p50 and mean per event;
  - `make bench`'s event hop (publish -> handled -> acked, batch 1) and Lab.GetResearch call, p50, from
    that version's own scripts/bench_foundation.py.
The other version is checked out in a temporary git worktree and imported from there (PYTHONPATH comes
before the installed packages): the same virtual environment, the same machine, another code.

Usage: .venv/bin/python scripts/bench_versions.py --base <commit> [--turns 2] [--researches 4]"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["libs/airlab/src", *(f"services/{s}/src" for s in
           ("idea", "manager", "coder", "reviewer", "runner", "dashboard"))]  # fmt: skip
FOUNDATION_LINES = {
    "event hop p50 ms": r"event hop, fetch batch 1 .*?p50\s+([\d.]+) ms",
    "Lab.GetResearch p50 ms": r"gRPC Lab\.GetResearch \(a KV read\) on loopback:\s+p50\s+([\d.]+) ms",
}


def environment(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(str(tree / s) for s in SOURCES)}


def record_path(tree: Path, researches: int) -> dict[str, float]:
    script = ROOT / "scripts" / "bench_record_path.py"  # this checkout's: it adapts to either store
    out = subprocess.run(
        [sys.executable, str(script), "--researches", str(researches)],
        env=environment(tree), cwd=tree, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    found = json.loads(out.strip().splitlines()[-1])
    if len(found["ended"]) != researches:
        raise SystemExit(f"{tree}: only {len(found['ended'])} of {researches} researches ended")
    return {"loop event p50 ms": found["p50_ms"], "loop event mean ms": found["mean_ms"]}


def foundation(tree: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, str(tree / "scripts" / "bench_foundation.py"), "--rounds", "1",
         "--events", "300", "--calls", "500"],
        env=environment(tree), cwd=tree, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    values = {}
    for name, pattern in FOUNDATION_LINES.items():
        match = re.search(pattern, out)
        if match is None:
            raise SystemExit(f"{tree}: bench_foundation printed no line for {name}:\n{out}")
        values[name] = float(match.group(1))
    return values


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True, help="the commit to compare this checkout with")
    parser.add_argument("--turns", type=int, default=2)
    parser.add_argument("--researches", type=int, default=4)
    args = parser.parse_args()
    base_rev = subprocess.run(
        ["git", "rev-parse", "--short", args.base], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="airlab-bench-versions-"))
    base = work / "base"
    subprocess.run(["git", "worktree", "add", "--detach", str(base), base_rev], cwd=ROOT, check=True,
                   capture_output=True)  # fmt: skip
    samples: dict[str, dict[str, list[float]]] = {"base": {}, "this": {}}
    try:
        for turn in range(args.turns):
            for label, tree in (("base", base), ("this", ROOT)):
                measured = record_path(tree, args.researches) | foundation(tree)
                for name, value in measured.items():
                    samples[label].setdefault(name, []).append(value)
                print(f"turn {turn + 1} {label}: " + ", ".join(f"{k} {v:.3f}" for k, v in measured.items()),
                      flush=True)  # fmt: skip
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, capture_output=True)
    print(f"\n| measure (median of {args.turns} turns) | {base_rev} | this checkout | this / {base_rev} |")
    print("| --- | ---: | ---: | ---: |")
    for name in samples["this"]:
        before, after = statistics.median(samples["base"][name]), statistics.median(samples["this"][name])
        print(f"| {name} | {before:.3f} | {after:.3f} | {after / before:.2f} |")


if __name__ == "__main__":
    main()
