import os
import shutil

import grpc
import pytest

from airlab.v1 import runner_pb2, runner_pb2_grpc

CANNOT_SANDBOX = shutil.which("bwrap") is None or os.geteuid() != 0
SANDBOX_REASON = (
    "the local sandbox needs bubblewrap and permission to create cgroups (make setup installs it)"
)
# Skipped on a machine that cannot sandbox; never in CI, where a missing sandbox must fail the run.
needs_sandbox = pytest.mark.skipif(not os.environ.get("CI") and CANNOT_SANDBOX, reason=SANDBOX_REASON)

# A job that follows the contract: metric points as it goes, then result.json and a model file.
GOOD_JOB = b"""
import json, os, time
for step in range(3):
    print("epoch", step, flush=True)
    with open("metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": step, "loss": 1 / (step + 1)}) + "\\n")
    time.sleep(0.2)
os.makedirs("models", exist_ok=True)
open("models/weights.bin", "wb").write(b"w" * 100)
json.dump({"metrics": {"accuracy": 0.9}, "seed": 0, "duration_seconds": 0.6,
           "validation_curve": [0.5, 0.7, 0.9]}, open("result.json", "w"))
"""


def docker_ready(image: str) -> str:
    """'' if a Docker Engine answers and has `image`, else why not."""
    try:
        import docker

        client = docker.from_env(timeout=5)
        client.images.get(image)
    except Exception as exc:
        return f"no Docker Engine with {image} ({type(exc).__name__}): scripts/start-dockerd provides both"
    return ""


@pytest.fixture(scope="session")
def docker_image() -> str:
    """The docker sandbox's test image; .ci/run starts dockerd and builds it, so CI never skips."""
    image = os.environ.get("AIRLAB_BASE_IMAGE", "airlab-base:bookworm-v2")
    problem = docker_ready(image)
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    return image


@pytest.fixture(params=["local", "docker"])
def backend(request):
    """Each sandbox a test runs its jobs in: the local one, and docker (with the test image)."""
    if request.param == "docker":
        request.getfixturevalue("docker_image")
    return request.param


def docker_env(image: str) -> dict[str, str]:
    return {"AIRLAB_RUNNER__BACKENDS": '["local", "docker"]', "AIRLAB_RUNNER__DOCKER_IMAGE": image}


def spec(code: bytes, experiment: str, research: str = "rtest", **resources) -> runner_pb2.ExperimentSpec:
    return runner_pb2.ExperimentSpec(
        research_id=research,
        experiment_id=experiment,
        files={"main.py": code},
        entrypoint="main.py",
        resources=runner_pb2.Resources(**resources),
    )


def run_to_end(stub, job_spec, timeout=60):
    """Submit, follow the job to its end; returns (final job, log lines, metric points)."""
    job = stub.Submit(runner_pb2.SubmitRequest(spec=job_spec))
    lines, metrics, final = [], [], None
    for update in stub.WatchJob(runner_pb2.WatchJobRequest(id=job.id), timeout=timeout):
        kind = update.WhichOneof("update")
        if kind == "log_line":
            lines.append(update.log_line)
        elif kind == "metric":
            metrics.append(update.metric)
        else:
            final = update.final
    return final, lines, metrics


@pytest.fixture
def runner_env(tmp_path):
    return {"AIRLAB_WORKSPACE": str(tmp_path / "workspace"), "AIRLAB_RUNNER__HOST": "test-host"}


@pytest.fixture
def runner(services, runner_env):
    return services.start("runner", env=runner_env)


@pytest.fixture
def stub(runner):
    with grpc.insecure_channel(runner.address) as channel:
        yield runner_pb2_grpc.RunnerServiceStub(channel)
