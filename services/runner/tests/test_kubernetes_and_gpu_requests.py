"""The requests the cluster and container backends send: Jobs checked against a local Kubernetes API
emulator (kmock) and the Kubernetes schema, GPU device requests, and the error on a host without GPUs."""

import asyncio
import io
import threading
from pathlib import Path

import kubernetes
import kubernetes_validate
import pytest
from kmock import KubernetesEmulator
from kmock._internal.apps import Server

from airlab.cpus import SlotCpus
from airlab_runner.sandbox import Limits, SandboxJob
from airlab_runner.sandbox.docker import DockerSandbox, container_options
from airlab_runner.sandbox.kubernetes import KubernetesSandbox, job_manifest, job_name

RUNS = Path("/var/lib/airlab/runs")
K8S_VERSION = "1.33.0"
JOB_UID = 1_950_000_007


def two_gpu_job() -> SandboxJob:
    return SandboxJob(
        job_id="jABC",
        workdir=RUNS / "jABC" / "work",
        entrypoint="main.py",
        limits=Limits(cpu_millis=2000, memory_mib=4096, wall_seconds=600, pids=128),
        env={"EPOCHS": "3"},
        gpu_ids=["0", "1"],
        gpu_count=2,
        datasets=[(str(RUNS / "jABC" / "datasets" / "0" / "t.csv"), "/data/t.csv")],
        identity=(JOB_UID, JOB_UID),
    )


def test_the_job_manifest_is_valid_kubernetes_and_locks_the_pod_down():
    manifest = job_manifest(
        two_gpu_job(), namespace="lab", image="exp:gpu", runs_claim="runs", runs_root=RUNS
    )
    kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)
    spec = manifest["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"]) == (
        0,
        600,
        600,
    )
    pod = spec["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == JOB_UID
    container = pod["containers"][0]
    # Whole CPUs requested as limited (a Guaranteed pod: a static CPU manager gives it cores of its own),
    # and thread pools sized to them.
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "4096Mi", "nvidia.com/gpu": "2"}
    assert container["resources"]["requests"] == {"cpu": "2", "memory": "4096Mi"}
    assert {"name": "OMP_NUM_THREADS", "value": "2"} in container["env"]
    assert {"name": "JOB_CPU_THREADS", "value": "2"} in container["env"]
    assert container["securityContext"] == {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
    }
    work = next(m for m in container["volumeMounts"] if m["name"] == "work")
    assert work == {"name": "work", "mountPath": "/airlab/work", "subPath": "jABC/work"}
    # The dataset: the runner's checked copy, from the same claim, read-only.
    data = next(m for m in container["volumeMounts"] if m["mountPath"] == "/data/t.csv")
    assert data == {
        "name": "work",
        "mountPath": "/data/t.csv",
        "subPath": "jABC/datasets/0/t.csv",
        "readOnly": True,
    }
    assert {"name": "EPOCHS", "value": "3"} in container["env"]
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert spec["template"]["metadata"]["labels"]["airlab.role"] == "experiment"


def test_an_unprivileged_runner_runs_its_jobs_as_itself(monkeypatch):
    """The runner in compose and k8s is uid 10001 with no capabilities: it cannot hand work dirs to
    nobody, so its container jobs run as its own uid (owning only their work dir) instead of failing."""
    import airlab_runner.sandbox as sandbox

    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 10001)
    monkeypatch.setattr(sandbox.os, "getegid", lambda: 10001)
    assert sandbox.JobIdentities().lease("jABC") == (10001, 10001)
    job = two_gpu_job()
    job.identity = None
    assert container_options(job, "exp:gpu")["user"] == "10001:10001"
    manifest = job_manifest(job, namespace="lab", image="exp", runs_claim="runs", runs_root=RUNS)
    context = manifest["spec"]["template"]["spec"]["securityContext"]
    assert (context["runAsUser"], context["runAsGroup"], context["fsGroup"]) == (10001, 10001, 10001)


def test_docker_device_requests_and_container_lockdown_for_two_gpus():
    options = container_options(two_gpu_job(), "exp:gpu")
    (request,) = options["device_requests"]
    assert request["DeviceIDs"] == ["0", "1"] and request["Capabilities"] == [["gpu"]]
    assert options["environment"]["NVIDIA_VISIBLE_DEVICES"] == "0,1"
    assert (options["network_mode"], options["read_only"], options["cap_drop"]) == ("none", True, ["ALL"])
    assert options["user"] == f"{JOB_UID}:{JOB_UID}" and options["security_opt"] == ["no-new-privileges"]
    assert (options["mem_limit"], options["memswap_limit"], options["nano_cpus"], options["pids_limit"]) == (
        "4096m",
        "4096m",
        2_000_000_000,
        128,
    )
    assert "cpuset_cpus" not in options  # not pinned unless the runner's CPU plan gives it cores


def test_docker_pins_a_job_to_its_slot_and_sizes_its_thread_pools():
    job = two_gpu_job()
    job.cpus = SlotCpus((2, 3), 2)
    options = container_options(job, "exp:gpu")
    assert options["cpuset_cpus"] == "2,3" and "cpu_shares" not in options
    assert options["environment"]["OMP_NUM_THREADS"] == options["environment"]["LOKY_MAX_CPU_COUNT"] == "2"
    job.cpus = SlotCpus((0, 1), 2, idle_priority=True)  # cores borrowed from the LLM: the lowest weight
    assert container_options(job, "exp:gpu")["cpu_shares"] == 2


def test_a_gpu_job_on_a_docker_host_without_nvidia_runtime_fails_clearly(docker_image, tmp_path):
    job = two_gpu_job()
    job.workdir = tmp_path
    (tmp_path / "main.py").write_text("print('never runs')")
    result = DockerSandbox(image=docker_image).run(job, lambda line: None, threading.Event())
    assert result.outcome == "error"
    assert "no NVIDIA runtime" in result.detail


@pytest.fixture
async def cluster():
    """A Kubernetes API emulator on a free loopback port. It runs no controller: tests act as one."""
    async with KubernetesEmulator() as emulator, Server(emulator) as server:
        emulator.resources["batch/v1/jobs"] = {}
        emulator.resources["v1/pods"] = {}
        config = kubernetes.client.Configuration()
        config.host = str(server.url).rstrip("/")
        yield kubernetes.client.ApiClient(config)


def sandbox(api) -> KubernetesSandbox:
    return KubernetesSandbox(
        namespace="lab", image="exp:cpu", runs_claim="runs", runs_root=RUNS, api_client=api, poll_seconds=0.05
    )


async def wait_for_job(api, name):
    batch = kubernetes.client.BatchV1Api(api)
    for _ in range(200):
        try:
            return await asyncio.to_thread(batch.read_namespaced_job, name, "lab")
        except kubernetes.client.exceptions.ApiException:
            await asyncio.sleep(0.02)
    raise TimeoutError(name)


async def test_the_backend_creates_the_job_follows_it_and_deletes_it(cluster):
    job = two_gpu_job()
    running = asyncio.create_task(
        asyncio.to_thread(sandbox(cluster).run, job, lambda line: None, threading.Event())
    )
    created = await wait_for_job(cluster, job_name(job.job_id))
    sent = cluster.sanitize_for_serialization(created)
    expected = job_manifest(job, namespace="lab", image="exp:cpu", runs_claim="runs", runs_root=RUNS)
    assert (
        sent["spec"]["template"]["spec"]["containers"][0]["resources"]
        == expected["spec"]["template"]["spec"]["containers"][0]["resources"]
    )
    assert sent["spec"]["backoffLimit"] == 0
    batch = kubernetes.client.BatchV1Api(cluster)
    await asyncio.to_thread(
        batch.patch_namespaced_job_status, job_name(job.job_id), "lab", {"status": {"succeeded": 1}}
    )
    result = await asyncio.wait_for(running, 10)
    assert (result.outcome, result.exit_code) == ("exited", 0)
    with pytest.raises(kubernetes.client.exceptions.ApiException):
        await asyncio.to_thread(batch.read_namespaced_job, job_name(job.job_id), "lab")


async def test_a_job_past_its_deadline_is_a_timeout(cluster):
    job = two_gpu_job()
    running = asyncio.create_task(
        asyncio.to_thread(sandbox(cluster).run, job, lambda line: None, threading.Event())
    )
    await wait_for_job(cluster, job_name(job.job_id))
    status = {
        "status": {
            "failed": 1,
            "conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}],
        }
    }
    batch = kubernetes.client.BatchV1Api(cluster)
    await asyncio.to_thread(batch.patch_namespaced_job_status, job_name(job.job_id), "lab", status)
    result = await asyncio.wait_for(running, 10)
    assert result.outcome == "timeout" and "600 s" in result.detail


async def test_cancel_deletes_the_job(cluster):
    job = two_gpu_job()
    cancel = threading.Event()
    running = asyncio.create_task(asyncio.to_thread(sandbox(cluster).run, job, lambda line: None, cancel))
    await wait_for_job(cluster, job_name(job.job_id))
    cancel.set()
    result = await asyncio.wait_for(running, 10)
    assert result.outcome == "cancelled"
    with pytest.raises(kubernetes.client.exceptions.ApiException):
        await asyncio.to_thread(
            kubernetes.client.BatchV1Api(cluster).read_namespaced_job, job_name(job.job_id), "lab"
        )


async def test_an_unreachable_cluster_is_reported_at_startup():
    config = kubernetes.client.Configuration()
    config.host = "http://127.0.0.1:9"
    broken = sandbox(kubernetes.client.ApiClient(config))
    with pytest.raises(Exception, match="cannot manage Jobs in namespace 'lab'"):
        await asyncio.to_thread(broken.check)


def test_an_s3_dataset_is_fetched_once_into_the_runners_cache(tmp_path):
    """Against moto's S3 server: the lab's credentials fetch the object; the job only ever gets a path."""
    from minio import Minio
    from moto.server import ThreadedMotoServer

    from airlab.errors import InvalidArgument
    from airlab.settings import Settings
    from airlab_runner.datasets import S3Datasets

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        client = Minio(f"{host}:{port}", access_key="test", secret_key="test", secure=False)
        client.make_bucket("datasets")
        body = b"a,b,label\n1,2,x\n3,4,y\n"
        client.put_object("datasets", "team/table.csv", io.BytesIO(body), len(body))
        settings = Settings(
            artifacts_url=f"s3+http://{host}:{port}/airlab", s3_access_key="test", s3_secret_key="test"
        )
        fetcher = S3Datasets(settings, tmp_path / "cache")
        path = fetcher.local_copy("s3://datasets/team/table.csv", "spec.datasets[0].source")
        assert path.endswith("/table.csv") and Path(path).read_bytes() == body
        client.remove_object("datasets", "team/table.csv")
        assert fetcher.local_copy("s3://datasets/team/table.csv", "f") == path  # cached, not fetched again
        with pytest.raises(InvalidArgument, match="NoSuchKey"):
            fetcher.local_copy("s3://datasets/missing.csv", "spec.datasets[0].source")
    finally:
        server.stop()
