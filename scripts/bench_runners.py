"""One runner against two (and more) sharing the experiment queue, side by side in one run: the same batch
of independent jobs, each runner with the same slots, timed from the first job's submission to the last
one's end (the jobs' own timestamps).

The jobs sleep: on this 2-core machine, jobs that compute would be bound by the two cores, not by the
runners, so sleeping jobs show what the runners add (slots and scheduling) apart from the machine's cores.
With jobs that compute, the gain holds only while the runners are on hosts (or cores) of their own.

Usage: .venv/bin/python scripts/bench_runners.py [--jobs 8] [--seconds 2] [--slots 1] [--runners 1,2]"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import grpc

from airlab.natsd import start_nats
from airlab.testing import ServiceLauncher
from airlab.v1 import runner_pb2, runner_pb2_grpc

FIRST_UID = 1_950_000_000


def sleeping(seconds: float) -> bytes:
    return (
        f"import json, time\ntime.sleep({seconds})\n"
        f'json.dump({{"metrics": {{"accuracy": 0.9}}, "seed": 0, "duration_seconds": {seconds}}}, '
        'open("result.json", "w"))\n'
    ).encode()


def measure(count: int, jobs: int, seconds: float, slots: int) -> float:
    """Wall seconds for `jobs` sleeping jobs on `count` runners of `slots` slots each."""
    work = Path(tempfile.mkdtemp(prefix="airlab-bench-runners-"))
    nats = start_nats(work / "nats")
    launcher = ServiceLauncher(nats.url, work / "services")
    launcher.workdir.mkdir()
    try:
        runners = [
            launcher.start(
                "runner",
                env={
                    "AIRLAB_RUNNER__HOST": f"bench-{n}",
                    "AIRLAB_RUNNER__WORK_DIR": str(work / f"runs-{n}"),
                    "AIRLAB_RUNNER__JOB_UIDS": f"[{FIRST_UID + n * 1000}, {FIRST_UID + n * 1000 + 999}]",
                    "AIRLAB_RUNNER__MAX_CONCURRENT": str(slots),
                },
            )
            for n in range(count)
        ]
        with grpc.insecure_channel(runners[0].address) as channel:
            stub = runner_pb2_grpc.RunnerServiceStub(channel)
            research = f"rbench{count}"
            for n in range(jobs):
                spec = runner_pb2.ExperimentSpec(
                    research_id=research, experiment_id=f"x{n}", files={"main.py": sleeping(seconds)},
                    entrypoint="main.py",
                )  # fmt: skip
                stub.Submit(runner_pb2.SubmitRequest(spec=spec))
            deadline = time.monotonic() + jobs * seconds * 3 + 60
            while time.monotonic() < deadline:
                listed = stub.ListJobs(runner_pb2.ListJobsRequest(research_id=research)).jobs
                if all(j.state == runner_pb2.JOB_STATE_SUCCEEDED for j in listed):
                    break
                failed = [j.reason for j in listed if j.state == runner_pb2.JOB_STATE_FAILED]
                if failed:
                    raise SystemExit(f"{count} runner(s): a job failed: {failed[0]}")
                time.sleep(0.2)
            else:
                raise SystemExit(f"{count} runner(s): the jobs did not all succeed in time")
            used = {j.runner for j in listed}
            if len(used) != count:
                raise SystemExit(f"{count} runner(s), but the jobs ran on {sorted(used)}")
            first = min(j.submitted_at.ToNanoseconds() for j in listed)
            last = max(j.finished_at.ToNanoseconds() for j in listed)
            return (last - first) / 1e9
    finally:
        launcher.stop_all()
        nats.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--slots", type=int, default=1)
    parser.add_argument("--runners", default="1,2")
    args = parser.parse_args()
    counts = [int(c) for c in args.runners.split(",")]
    walls = {count: measure(count, args.jobs, args.seconds, args.slots) for count in counts}
    ideal = args.jobs * args.seconds / args.slots
    print(f"{args.jobs} jobs sleeping {args.seconds:g} s, {args.slots} slot(s) per runner")
    print("| runners | wall seconds | vs 1 runner | ideal |")
    print("| ---: | ---: | ---: | ---: |")
    base = walls.get(1) or next(iter(walls.values()))
    for count, wall in walls.items():
        print(f"| {count} | {wall:.1f} | {wall / base:.2f} | {ideal / count:.1f} |")


if __name__ == "__main__":
    main()
