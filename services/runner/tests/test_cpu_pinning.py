"""Jobs run on their slot's cores with thread pools sized to them, on the local sandbox (cpuset cgroup and
affinity) and on the docker sandbox (cpuset_cpus), beside the cores a local LLM server holds."""

import json
from pathlib import Path

import pytest

from airlab.cpus import CpuSettings, plan_cpus
from airlab.v1 import runner_pb2

from .conftest import docker_env, needs_sandbox, run_to_end, spec

# Reports the cores the job may use, whether it can widen them, its scheduling policy and thread settings.
PROBE = b"""
import json, os
THREADS = ("OMP_NUM_THREADS", "LOKY_MAX_CPU_COUNT", "JOB_CPU_THREADS")
cores = sorted(os.sched_getaffinity(0))
try:
    os.sched_setaffinity(0, range(os.cpu_count()))
except OSError:
    pass
report = {
    "cores": cores,
    "widened": sorted(os.sched_getaffinity(0)),
    "idle": os.sched_getscheduler(0) == os.SCHED_IDLE,
    "threads": {k: os.environ.get(k) for k in THREADS},
}
print("CPU " + json.dumps(report))
json.dump({"metrics": {"accuracy": 1.0}, "seed": 0, "duration_seconds": 0.1}, open("result.json", "w"))
"""
SLOTS = 2
ROOT = Path("/sys/fs/cgroup")
CPUSET_CONTROLLER = (ROOT / "cpuset" / "cgroup.procs").is_file() or (
    (ROOT / "cgroup.controllers").is_file() and "cpuset" in (ROOT / "cgroup.controllers").read_text()
)

pytestmark = needs_sandbox


@pytest.fixture(params=[("local", 1), ("local", 2), ("docker", 1)], ids=lambda p: f"{p[0]}-llm{p[1]}")
def layout(request):
    """The backend, and how many cores the local LLM server holds (2 on a 2-core host: all of them)."""
    backend, llm_cores = request.param
    if backend == "docker":
        request.getfixturevalue("docker_image")
    return backend, llm_cores


@pytest.fixture
def runner_env(tmp_path, layout, request):
    backend, llm_cores = layout
    env = {
        "AIRLAB_WORKSPACE": str(tmp_path / "workspace"),
        "AIRLAB_RUNNER__MAX_CONCURRENT": str(SLOTS),
        # As `airlab up` tells the runner when it starts a local LLM server pinned to its cores.
        "AIRLAB_CPU__LLM_CORES": str(llm_cores),
    }
    if backend == "docker":
        env.update(docker_env(request.getfixturevalue("docker_image")))
    return env


def test_a_job_is_pinned_to_its_slot_with_thread_pools_of_that_size(stub, layout):
    backend, llm_cores = layout
    plan = plan_cpus(CpuSettings(llm_cores=llm_cores), local_llm=False)
    expected = plan.slot(0, SLOTS).capped(2000)
    job_spec = spec(PROBE, f"cpu-{backend}-{llm_cores}", wall_seconds=30, cpu_millis=2000)
    job_spec.backend = backend
    job, lines, _ = run_to_end(stub, job_spec)
    assert job.state == runner_pb2.JOB_STATE_SUCCEEDED, (job.reason, lines[-20:])
    report = json.loads(next(line for line in lines if line.startswith("CPU "))[4:])
    assert report["cores"] == list(expected.cores)
    assert report["threads"] == dict.fromkeys(("OMP_NUM_THREADS", "LOKY_MAX_CPU_COUNT", "JOB_CPU_THREADS"),
                                              str(expected.threads))  # fmt: skip
    assert report["idle"] == (expected.idle_priority and backend == "local")
    # The job cannot take more cores than its slot's (the cpuset cgroup, or the container's cpuset).
    if backend == "docker" or CPUSET_CONTROLLER:
        assert report["widened"] == list(expected.cores)
    if plan.experiments:  # the LLM server's cores are its own
        assert not set(report["cores"]) & set(plan.llm)
