"""The runner service over gRPC with a real nats-server and the local sandbox: queue, limits, cancel,
watch, artifacts, events, restart recovery and bad input."""

import asyncio
import json
import time
from pathlib import Path

import grpc
import pytest

from airlab.blobs import LocalArtifactStore
from airlab.bus import EventBus
from airlab.events import event_from_dict, make_event
from airlab.state import JSON_OBJECTS, Change, StateStore
from airlab.testing import wait_until
from airlab.v1 import events_pb2, runner_pb2, runner_pb2_grpc
from airlab_runner.jobstore import END_KEY, JOB_BUCKET, data_of, job_of

from .conftest import GOOD_JOB, docker_env, needs_sandbox, run_to_end, spec

pytestmark = needs_sandbox
SLEEPY = b"import time\nprint('started', flush=True)\ntime.sleep(30)"


def events_of(nats_url, research_id):
    async def read():
        bus = EventBus(nats_url, source="test")
        await bus.connect()
        found = [e async for e in bus.read(f"airlab.experiment.*.{research_id}")]
        await bus.close()
        return found

    return asyncio.run(read())


def test_a_job_runs_and_everything_it_made_is_stored(stub, runner_env, nats_server):
    job, lines, metrics = run_to_end(stub, spec(GOOD_JOB, "x1", research="rgood"))
    assert job.state == runner_pb2.JOB_STATE_SUCCEEDED, job.reason
    assert lines == ["epoch 0", "epoch 1", "epoch 2"]
    assert [(m.name, m.step) for m in metrics] == [("loss", 0), ("loss", 1), ("loss", 2)]
    store = LocalArtifactStore(Path(runner_env["AIRLAB_WORKSPACE"]) / "artifacts")
    prefix = "research/rgood/experiments/x1/"
    assert sorted(i.key[len(prefix) :] for i in store.list(prefix)) == [
        "code/main.py",
        "logs/attempt-1.log",
        "metrics.jsonl",
        "models/weights.bin",
        "result.json",
    ]
    assert json.loads(store.get(prefix + "result.json"))["metrics"] == {"accuracy": 0.9}
    types = [e.type for e in events_of(nats_server.url, "rgood")]
    assert types[0] == "experiment.queued" and types[1] == "experiment.started"
    assert types.count("experiment.progress") == 3 and types[-1] == "experiment.finished"
    finished = events_of(nats_server.url, "rgood")[-1]
    assert (
        finished.experiment_finished.metrics["accuracy"] == 0.9
        and finished.experiment_finished.job_id == job.id
    )
    # The validation score after each epoch travels with the outcome (a search's early stopping reads it).
    assert list(finished.experiment_finished.validation_curve) == [0.5, 0.7, 0.9]
    assert finished.experiment_finished.stopped_at_epoch == 0

    # A finished job's watch replays its stored output; a retried submit returns the same job.
    replay = list(stub.WatchJob(runner_pb2.WatchJobRequest(id=job.id), timeout=10))
    assert [u.log_line for u in replay if u.HasField("log_line")] == lines
    assert replay[-1].final.state == runner_pb2.JOB_STATE_SUCCEEDED
    again = stub.Submit(runner_pb2.SubmitRequest(spec=spec(GOOD_JOB, "x1", research="rgood")))
    assert again.id == job.id and again.state == runner_pb2.JOB_STATE_SUCCEEDED
    with pytest.raises(grpc.RpcError) as clash:
        stub.Submit(runner_pb2.SubmitRequest(spec=spec(b"print(1)", "x1", research="rgood")))
    assert clash.value.code() == grpc.StatusCode.ALREADY_EXISTS


@pytest.fixture
def runner_env(tmp_path):
    return {
        "AIRLAB_WORKSPACE": str(tmp_path / "workspace"),
        "AIRLAB_RUNNER__HOST": "test-host",
        "AIRLAB_RUNNER__MAX_CONCURRENT": "1",
    }


def test_concurrency_limit_queue_positions_and_cancel(stub):
    first = stub.Submit(runner_pb2.SubmitRequest(spec=spec(SLEEPY, "slow-1")))
    second = stub.Submit(runner_pb2.SubmitRequest(spec=spec(SLEEPY, "slow-2")))
    third = stub.Submit(runner_pb2.SubmitRequest(spec=spec(SLEEPY, "slow-3")))
    get = lambda job: stub.GetJob(runner_pb2.GetJobRequest(id=job.id))  # noqa: E731
    wait_until(lambda: get(first).state == runner_pb2.JOB_STATE_RUNNING)
    assert (get(second).queue_position, get(third).queue_position) == (1, 2)
    assert get(second).state == runner_pb2.JOB_STATE_QUEUED  # one at a time on this runner

    cancelled = stub.CancelJob(runner_pb2.CancelJobRequest(id=second.id))
    assert cancelled.state == runner_pb2.JOB_STATE_CANCELLED
    assert get(third).queue_position == 1
    began = time.monotonic()
    stub.CancelJob(runner_pb2.CancelJobRequest(id=first.id))
    wait_until(lambda: get(first).state == runner_pb2.JOB_STATE_CANCELLED, timeout=10)
    assert time.monotonic() - began < 5  # killed, not waited out
    wait_until(lambda: get(third).state == runner_pb2.JOB_STATE_RUNNING)
    with pytest.raises(grpc.RpcError) as again:
        stub.CancelJob(runner_pb2.CancelJobRequest(id=first.id))
    assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    listed = stub.ListJobs(runner_pb2.ListJobsRequest(research_id="rtest")).jobs
    assert [j.id for j in listed] == [first.id, second.id, third.id]
    stub.CancelJob(runner_pb2.CancelJobRequest(id=third.id))


def test_a_runner_killed_mid_job_queues_it_again_and_loses_no_queued_job(services, runner_env):
    runner = services.start("runner", env=runner_env)
    with grpc.insecure_channel(runner.address) as channel:
        stub = runner_pb2_grpc.RunnerServiceStub(channel)
        code = b"import json, os, time\nopen('/airlab/work/started', 'w')\ntime.sleep(2)\n" + GOOD_JOB
        running = stub.Submit(runner_pb2.SubmitRequest(spec=spec(code, "survivor")))
        queued = stub.Submit(runner_pb2.SubmitRequest(spec=spec(GOOD_JOB, "waiting")))
        wait_until(
            lambda: stub.GetJob(runner_pb2.GetJobRequest(id=running.id)).state == runner_pb2.JOB_STATE_RUNNING
        )
    runner.kill()
    cgroups = Path("/sys/fs/cgroup/memory/airlab") / running.id
    if not cgroups.parent.exists():
        cgroups = Path("/sys/fs/cgroup/airlab") / running.id  # cgroup v2

    restarted = services.start("runner", env=runner_env)
    with grpc.insecure_channel(restarted.address) as channel:
        stub = runner_pb2_grpc.RunnerServiceStub(channel)
        get = lambda job: stub.GetJob(runner_pb2.GetJobRequest(id=job.id))  # noqa: E731
        wait_until(lambda: get(running).state == runner_pb2.JOB_STATE_SUCCEEDED, timeout=60)
        assert not cgroups.exists()  # nothing of either attempt is left in the cgroup tree
        wait_until(lambda: get(queued).state == runner_pb2.JOB_STATE_SUCCEEDED, timeout=60)
    store = LocalArtifactStore(Path(runner_env["AIRLAB_WORKSPACE"]) / "artifacts")
    logs = sorted(i.key for i in store.list("research/rtest/experiments/survivor/logs/"))
    assert logs == ["research/rtest/experiments/survivor/logs/attempt-2.log"]  # the killed attempt left none


def test_a_job_restored_as_running_here_runs_again_and_an_ended_one_is_announced_again(
    services, runner_env, nats_server
):
    """A backup taken mid-run restores a job recorded as running on this runner, which does not run it:
    it is queued again and runs (attempt 2). The job keeps the end event it announced, which a request
    for the ended experiment gets again (in a restored lab's fresh stream; here the stream drops the
    repeated id)."""
    runner = services.start("runner", env={**runner_env, "AIRLAB_RUNNER__PRESENCE_TTL_SECONDS": "1.5"})
    with grpc.insecure_channel(runner.address) as channel:
        stub = runner_pb2_grpc.RunnerServiceStub(channel)
        job, _, _ = run_to_end(stub, spec(GOOD_JOB, "restored", research="rrestore"))
        assert job.state == runner_pb2.JOB_STATE_SUCCEEDED

        async def as_backed_up_mid_run() -> None:
            bus = EventBus(nats_server.url, source="test")
            await bus.connect()
            store = await StateStore(bus, JOB_BUCKET, JSON_OBJECTS, kind="job").open()

            def running(data):
                mid_run = job_of(data)
                mid_run.state = runner_pb2.JOB_STATE_RUNNING
                mid_run.ClearField("finished_at")
                kept = {k: v for k, v in data.items() if k not in (END_KEY, "result")}
                return Change({**kept, **data_of(mid_run), "attempts": 1, "host": "test-host"})

            await store.mutate(job.id, running)
            await bus.close()

        asyncio.run(as_backed_up_mid_run())
        get = lambda: stub.GetJob(runner_pb2.GetJobRequest(id=job.id))  # noqa: E731
        wait_until(lambda: get().state == runner_pb2.JOB_STATE_SUCCEEDED, timeout=60)
        store = LocalArtifactStore(Path(runner_env["AIRLAB_WORKSPACE"]) / "artifacts")
        assert store.exists("research/rrestore/experiments/restored/logs/attempt-2.log")

        # What a repeated request is answered with: the end event as it was announced.
        ends = [e for e in events_of(nats_server.url, "rrestore") if e.type == "experiment.finished"]
        assert len(ends) == 2 and ends[0].id != ends[1].id  # the first run's end, and the second's

        async def kept_end() -> dict:
            bus = EventBus(nats_server.url, source="test")
            await bus.connect()
            store = await StateStore(bus, JOB_BUCKET, JSON_OBJECTS, kind="job").open()
            data = (await store.get(job.id)).value
            await bus.close()
            return data[END_KEY]

        announced = ends[1]
        announced.ClearField("sequence")  # the stream's, set when read back
        assert event_from_dict(asyncio.run(kept_end())) == announced
        again = stub.Submit(runner_pb2.SubmitRequest(spec=spec(GOOD_JOB, "restored", research="rrestore")))
        assert again.state == runner_pb2.JOB_STATE_SUCCEEDED


BAD = [
    (spec(b"x", ""), "spec.experiment_id"),
    (spec(b"x", "e", research="a b"), "spec.research_id"),
    (runner_pb2.ExperimentSpec(research_id="r", experiment_id="e", entrypoint="main.py"), "spec.files"),
    (
        runner_pb2.ExperimentSpec(
            research_id="r", experiment_id="e", files={"../x.py": b""}, entrypoint="x.py"
        ),
        "spec.files",
    ),
    (
        runner_pb2.ExperimentSpec(research_id="r", experiment_id="e", files={"a.py": b""}, entrypoint="b.py"),
        "spec.entrypoint",
    ),
    (spec(b"x", "e", memory_mib=10), "spec.resources.memory_mib"),
    (spec(b"x", "e", gpus=1), "spec.resources.gpus"),
    (spec(b"x", "e", wall_seconds=10**7), "spec.resources.wall_seconds"),
]


def test_jobs_beyond_the_hosts_capacity_are_refused(stub):
    """More cores or memory than this machine has, or more time than a job may have here (2 days)."""
    for resources, field, says in (
        ({"cpu_millis": 256_000}, "cpu_millis", "core(s)"),
        ({"memory_mib": 1_048_576}, "memory_mib", "MiB asked for; this host has"),
        ({"wall_seconds": 604_800}, "wall_seconds", "at most 172800 s"),
    ):
        with pytest.raises(grpc.RpcError) as refused:
            stub.Submit(runner_pb2.SubmitRequest(spec=spec(SLEEPY, f"big-{field}", **resources)))
        details = refused.value.details()
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert details.startswith(f"spec.resources.{field}") and says in details, details
    assert list(stub.ListJobs(runner_pb2.ListJobsRequest()).jobs) == []


@pytest.mark.parametrize(("bad_spec", "field"), BAD)
def test_bad_specs_are_refused_naming_the_field(stub, bad_spec, field):
    with pytest.raises(grpc.RpcError) as refused:
        stub.Submit(runner_pb2.SubmitRequest(spec=bad_spec))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith(field), refused.value.details()
    assert list(stub.ListJobs(runner_pb2.ListJobsRequest()).jobs) == []


def test_credentials_and_unknown_backends_are_refused(stub):
    for name in ("AWS_SECRET_ACCESS_KEY", "AIRLAB_S3_SECRET_KEY", "HF_TOKEN", "lower"):
        bad = spec(b"x", "e")
        bad.env[name] = "v"
        with pytest.raises(grpc.RpcError) as refused:
            stub.Submit(runner_pb2.SubmitRequest(spec=bad))
        assert refused.value.details().startswith(f"spec.env.{name}")
    other = spec(b"x", "e")
    other.backend = "kubernetes"
    with pytest.raises(grpc.RpcError) as refused:
        stub.Submit(runner_pb2.SubmitRequest(spec=other))
    assert "not enabled" in refused.value.details()
    for call in (stub.GetJob, stub.CancelJob):
        with pytest.raises(grpc.RpcError) as missing:
            call(
                runner_pb2.GetJobRequest(id="j" + "0" * 26)
                if call == stub.GetJob
                else runner_pb2.CancelJobRequest(id="j" + "0" * 26)
            )
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_runner_without_its_sandbox_refuses_to_start(services, runner_env):
    env = {**runner_env, "PATH": "/nonexistent"}
    runner = services.start("runner", env=env, wait=False)
    assert runner.process.wait(30) == 2
    assert "bwrap" in runner.log.read_text()


def test_gpu_jobs_take_leases_from_the_inventory_and_fail_clearly_without_nvidia(
    services, runner_env, docker_image
):
    env = {**runner_env, **docker_env(docker_image), "AIRLAB_RUNNER__GPUS": '["0", "1"]'}
    runner = services.start("runner", env=env)
    with grpc.insecure_channel(runner.address) as channel:
        stub = runner_pb2_grpc.RunnerServiceStub(channel)
        local = spec(b"import os\nprint('GPUS', os.environ['CUDA_VISIBLE_DEVICES'])", "gpu-local", gpus=2)
        job, lines, _ = run_to_end(stub, local)
        assert "GPUS 0,1" in lines, (job.reason, lines)
        on_docker = spec(b"print('never')", "gpu-docker", gpus=2)
        on_docker.backend = "docker"
        job, _, _ = run_to_end(stub, on_docker)
        assert job.state == runner_pb2.JOB_STATE_FAILED and "no NVIDIA runtime" in job.reason
        with pytest.raises(grpc.RpcError) as too_many:
            stub.Submit(runner_pb2.SubmitRequest(spec=spec(b"x", "gpu-3", gpus=3)))
        assert too_many.value.details().startswith("spec.resources.gpus")
        # Both GPUs were given back: another 2-GPU job runs.
        job, lines, _ = run_to_end(stub, spec(b"print('again')", "gpu-again", gpus=2))
        assert lines == ["again"] and job.started_at.seconds > 0


def test_the_pytorch_template_runs_in_the_sandbox_seeded_and_by_the_contract(stub, runner_env):
    from airlab.job_templates import template_source

    code = template_source("pytorch_train_template.py").encode()
    store = LocalArtifactStore(Path(runner_env["AIRLAB_WORKSPACE"]) / "artifacts")
    results = []
    for run in ("a", "b"):
        job_spec = spec(code, f"template-{run}", memory_mib=2048, wall_seconds=300)
        config = {"model": "cnn", "params": {"epochs": 4, "learning_rate": 0.01, "channels": 8}, "seed": 7}
        job_spec.files["config.json"] = json.dumps(config).encode()
        job, _, metrics = run_to_end(stub, job_spec, timeout=300)
        assert job.state == runner_pb2.JOB_STATE_SUCCEEDED, job.reason
        assert sorted({m.step for m in metrics}) == [0, 1, 2, 3]
        results.append(json.loads(store.get(f"research/rtest/experiments/template-{run}/result.json")))
        assert store.exists(f"research/rtest/experiments/template-{run}/models/model.pt")
    assert results[0]["metrics"] == results[1]["metrics"]  # seeded: the same seed, the same result
    assert results[0]["metrics"]["accuracy"] > 0.85 and results[0]["seed"] == 7
    assert results[0]["device"] == "cpu" and results[0]["parameters"] > 0


def test_a_job_can_run_code_already_in_the_artifact_store(stub, runner_env):
    store = LocalArtifactStore(Path(runner_env["AIRLAB_WORKSPACE"]) / "artifacts")
    store.put("research/rtest/experiments/shared/code/main.py", GOOD_JOB)
    by_ref = runner_pb2.ExperimentSpec(
        research_id="rtest", experiment_id="by-ref", code_ref="research/rtest/experiments/shared/code",
        entrypoint="main.py",
    )  # fmt: skip
    job, lines, _ = run_to_end(stub, by_ref)
    assert job.state == runner_pb2.JOB_STATE_SUCCEEDED and lines[0] == "epoch 0"
    assert job.spec.code_ref == "research/rtest/experiments/shared/code/"
    missing = runner_pb2.ExperimentSpec(
        research_id="rtest", experiment_id="none", code_ref="nowhere", entrypoint="main.py"
    )
    with pytest.raises(grpc.RpcError) as refused:
        stub.Submit(runner_pb2.SubmitRequest(spec=missing))
    assert refused.value.details().startswith("spec.code_ref: holds no 'main.py'")


def test_a_cancelled_research_stops_its_running_and_queued_jobs(stub, nats_server):
    """CancelResearch announces research.cancelled; the runner stops every job of that research within
    seconds, and leaves other researches' jobs alone."""
    running = stub.Submit(runner_pb2.SubmitRequest(spec=spec(SLEEPY, "c-1", research="rgone")))
    queued = stub.Submit(runner_pb2.SubmitRequest(spec=spec(SLEEPY, "c-2", research="rgone")))
    other = stub.Submit(runner_pb2.SubmitRequest(spec=spec(SLEEPY, "c-3", research="rkept")))
    get = lambda job: stub.GetJob(runner_pb2.GetJobRequest(id=job.id))  # noqa: E731
    wait_until(lambda: get(running).state == runner_pb2.JOB_STATE_RUNNING)

    async def announce():
        bus = EventBus(nats_server.url, source="test")
        await bus.connect()
        await bus.publish(
            make_event(
                "research.cancelled", "rgone", events_pb2.ResearchCancelled(reason="a person cancelled it")
            )
        )
        await bus.close()

    began = time.monotonic()
    asyncio.run(announce())
    wait_until(lambda: get(running).state == runner_pb2.JOB_STATE_CANCELLED, timeout=10)
    assert get(queued).state == runner_pb2.JOB_STATE_CANCELLED
    assert time.monotonic() - began < 5
    wait_until(lambda: get(other).state == runner_pb2.JOB_STATE_RUNNING, timeout=10)
    stub.CancelJob(runner_pb2.CancelJobRequest(id=other.id))
    # An experiment of the cancelled research asked for afterwards (a request still in flight) is refused.
    with pytest.raises(grpc.RpcError) as late:
        stub.Submit(runner_pb2.SubmitRequest(spec=spec(SLEEPY, "c-4", research="rgone")))
    assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "rgone was cancelled" in late.value.details()
