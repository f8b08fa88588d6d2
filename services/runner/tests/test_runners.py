"""Several runners on one queue, as separate processes against one nats-server: each job runs on exactly
one of them, and the jobs of a runner that dies (SIGKILL, mid-job) are queued again and finished by the
other. With no runner left alive to notice, a restarted runner queues its own again (tested elsewhere)."""

import time

import grpc

from airlab.testing import wait_until
from airlab.v1 import runner_pb2, runner_pb2_grpc

from .conftest import needs_sandbox, spec

pytestmark = needs_sandbox

FIRST_UID = 1_950_000_000


def sleeping(seconds: float) -> bytes:
    return f"""
import json, time
time.sleep({seconds})
result = {{"metrics": {{"accuracy": 0.9}}, "seed": 0, "duration_seconds": {seconds}}}
json.dump(result, open("result.json", "w"))
""".encode()


def start_runner(services, tmp_path, name: str, number: int):
    """A runner of its own host name, work root and uids (as `airlab up --runners N` gives each)."""
    first = FIRST_UID + number * 1000
    return services.start(
        "runner",
        env={
            "AIRLAB_WORKSPACE": str(tmp_path / "workspace"),
            "AIRLAB_RUNNER__HOST": name,
            "AIRLAB_RUNNER__WORK_DIR": str(tmp_path / f"runs-{name}"),
            "AIRLAB_RUNNER__JOB_UIDS": f"[{first}, {first + 999}]",
            "AIRLAB_RUNNER__MAX_CONCURRENT": "2",
            "AIRLAB_RUNNER__PRESENCE_TTL_SECONDS": "1.5",
        },
    )


def jobs_of(stub, research: str) -> list[runner_pb2.Job]:
    return list(stub.ListJobs(runner_pb2.ListJobsRequest(research_id=research)).jobs)


def test_runners_share_the_queue_and_a_dead_runners_job_finishes_on_another(services, tmp_path):
    first = start_runner(services, tmp_path, "runner-a", 0)
    second = start_runner(services, tmp_path, "runner-b", 1)
    with grpc.insecure_channel(second.address) as channel:
        stub = runner_pb2_grpc.RunnerServiceStub(channel)
        # Four jobs of 2 s through one runner's API: both runners take them from the shared queue.
        for n in range(4):
            stub.Submit(runner_pb2.SubmitRequest(spec=spec(sleeping(2), f"x{n}", research="rshared")))
        wait_until(
            lambda: all(j.state == runner_pb2.JOB_STATE_SUCCEEDED for j in jobs_of(stub, "rshared")),
            timeout=60, interval=0.2,
        )  # fmt: skip
        assert {j.runner for j in jobs_of(stub, "rshared")} == {"runner-a", "runner-b"}

        # A long job; its runner is killed while it runs: the other runner queues it again and runs it.
        long_job = stub.Submit(runner_pb2.SubmitRequest(spec=spec(sleeping(3), "long", research="rorphan")))
        state = lambda: stub.GetJob(runner_pb2.GetJobRequest(id=long_job.id)).state  # noqa: E731
        wait_until(lambda: state() == runner_pb2.JOB_STATE_RUNNING, timeout=30, interval=0.1)
        running_on = stub.GetJob(runner_pb2.GetJobRequest(id=long_job.id)).runner
        victim, survivor = (first, second) if running_on == "runner-a" else (second, first)
        victim.kill()
        killed_at = time.monotonic()
    with grpc.insecure_channel(survivor.address) as channel:
        stub = runner_pb2_grpc.RunnerServiceStub(channel)
        wait_until(
            lambda: stub.GetJob(runner_pb2.GetJobRequest(id=long_job.id)).state
            == runner_pb2.JOB_STATE_SUCCEEDED,
            timeout=60, interval=0.2,
        )  # fmt: skip
        done = stub.GetJob(runner_pb2.GetJobRequest(id=long_job.id))
        assert done.runner not in ("", running_on) and "queued again" not in done.reason
        # Noticed within a few presence periods of the kill (a TTL of 1.5 s), then run from the start.
        assert time.monotonic() - killed_at < 20
        # Exactly one job per experiment: the shared ones and the adopted one, each finished once.
        assert len(jobs_of(stub, "rshared")) == 4 and len(jobs_of(stub, "rorphan")) == 1
