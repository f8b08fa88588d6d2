"""Service images built from the repository with a real dockerd, run as containers, all SERVING.

No registry can be reached here, so the images are built on a base made locally with debootstrap
(scripts/build-base-image) from wheels built beforehand (make wheels), and NATS runs from an image made
the same way. MinIO, Qdrant and vLLM images cannot be pulled: this smoke stack does without them (the
services fall back to their embedded alternatives), as the test's name says. The containers share one
network namespace with no interface but loopback: nothing leaves it."""

import json
import os
import secrets
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from airlab import auth, bus_access, tls
from airlab.grpc_client import channel, health_status
from airlab.llm.local import free_port
from airlab.testing import wait_until
from airlab.v1 import lab_pb2, lab_pb2_grpc, research_pb2

# Seven image builds (pip installs from wheels) on a 2-core CI machine take about five minutes, and the
# module's first test pays for them in its setup.
pytestmark = pytest.mark.timeout(1200)

ROOT = Path(__file__).resolve().parents[1]
BASE = os.environ.get("AIRLAB_BASE_IMAGE", "airlab-base:bookworm-v2")
SERVICES = ("idea", "manager", "coder", "reviewer", "runner")


def docker(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


@pytest.fixture(scope="module")
def images():
    if (
        docker("image", "inspect", BASE, check=False).returncode != 0
        or not (ROOT / "build" / "wheels").is_dir()
    ):
        message = f"needs a Docker Engine with {BASE} and build/wheels (scripts/start-dockerd, make wheels)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    built = {}
    for name, dockerfile, args in [
        ("nats", "deploy/docker/nats.Dockerfile", []),
        *[
            (s, "deploy/docker/service.Dockerfile", ["--build-arg", f"SERVICE={s}"])
            for s in (*SERVICES, "dashboard")
        ],
    ]:
        tag = f"airlab-{name}:smoke"
        result = docker(
            "build",
            "-q",
            "--force-rm",  # a failed build leaves no container behind
            "-f",
            dockerfile,
            "--build-arg",
            f"BASE_IMAGE={BASE}",
            "--build-arg",
            "OFFLINE=1",  # from build/wheels: no network here
            *args,
            "-t",
            tag,
            str(ROOT),
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        built[name] = tag
    return built


def test_service_images_run_as_containers_and_serve_without_minio_qdrant_or_vllm(images):
    run = uuid.uuid4().hex[:8]
    names = []
    try:
        began = time.monotonic()
        nats = f"airlab-smoke-nats-{run}"
        docker("run", "-d", "--name", nats, "--network", "none", images["nats"])
        names.append(nats)
        for port, service in enumerate(SERVICES, start=50051):
            name = f"airlab-smoke-{service}-{run}"
            env = {"AIRLAB_NATS_URL": "nats://127.0.0.1:4222", "AIRLAB_GRPC_PORT": str(port)}
            flags = []
            if service == "runner":
                # As in compose: the runner drives the host's Docker Engine through its socket.
                env |= {
                    "AIRLAB_RUNNER__BACKEND": "docker",
                    "AIRLAB_RUNNER__BACKENDS": '["docker"]',
                    "AIRLAB_RUNNER__DOCKER_IMAGE": BASE,
                }
                socket_group = str(os.stat("/var/run/docker.sock").st_gid)
                flags += ["-v", "/var/run/docker.sock:/var/run/docker.sock", "--group-add", socket_group]
            flags += [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
            # A read-only root; the service's workspace is a volume (it takes the image's ownership of it).
            volume = f"type=volume,src={name},dst=/var/lib/airlab"
            docker("run", "-d", "--name", name, "--network", f"container:{nats}", "--read-only",
                   "--mount", volume, "--cap-drop", "ALL", *flags, images[service])  # fmt: skip
            names.append(name)
        deadline = time.monotonic() + 60
        pending = {s: f"airlab-smoke-{s}-{run}" for s in SERVICES}
        while pending and time.monotonic() < deadline:
            for service, name in list(pending.items()):
                check = docker("exec", name, "python3", "-m", "airlab.healthcheck", check=False)
                if check.stdout.strip() == "SERVING":
                    del pending[service]
            time.sleep(0.2)
        elapsed = time.monotonic() - began
        logs = {s: docker("logs", n, check=False).stderr[-1500:] for s, n in pending.items()}
        assert not pending, f"not SERVING: {json.dumps(logs, indent=1)}"
        sizes = {
            s: int(docker("image", "inspect", "-f", "{{.Size}}", images[s]).stdout) >> 20 for s in images
        }
        print(
            f"smoke stack: 5 services SERVING {elapsed:.1f} s after the first container started; MiB {sizes}"
        )
    finally:
        for name in names:
            docker("rm", "-f", "--volumes", name, check=False)
            docker("volume", "rm", name, check=False)


def test_a_research_runs_through_the_containers_to_a_report(images, llama_server, tmp_path):
    """The lab as compose runs it, minus what cannot be pulled here: nats-server with the lab's users,
    the five services as containers (read-only roots, no capabilities, uid 10001), the runner driving the
    host's Docker Engine through its socket and running every experiment in a container of its own (as its
    own uid: it cannot chown), the agents on the llama.cpp server. A research goes from the gRPC call to a
    completed report. The containers share the host's loopback (no bridge here) and nothing else: the
    artifact directory and the runs directory are bind mounts given to uid 10001, as compose's runs-dir
    step does. Every hop is TLS, with the files compose's one-shot makes (`airlab tls-files`): the
    services and the dashboard serve with them, nats-server asks every client for them."""
    run = uuid.uuid4().hex[:8]
    key = secrets.token_bytes(32)
    runs, artifacts, auth_dir = tmp_path / "runs", tmp_path / "artifacts", tmp_path / "nats-auth"
    for directory in (runs, artifacts):
        directory.mkdir()
        os.chown(directory, 10001, 10001)
    lab_tls = tls.write_deploy_files(tmp_path / "lab-tls", owner=(10001, 10001))
    nats_tls = tmp_path / "nats-tls"  # nats-server's own copy: its image runs it as uid 10002
    shutil.copytree(lab_tls.ca.parent, nats_tls, ignore=shutil.ignore_patterns("authority"))
    inside = tls.TlsFiles(*(Path("/etc/airlab-tls") / name for name in tls.DEPLOY_FILES))
    nats_config = bus_access.write_server_config(key, auth_dir / "auth.conf", inside)
    # The nats image's user (0700 and 0600, as airlab up makes them).
    for path in (auth_dir, nats_config, nats_tls, *nats_tls.iterdir()):
        os.chown(path, 10002, 10002)
    nats_port = free_port()
    ports = {service: free_port() for service in SERVICES}
    names = []
    try:
        nats = f"airlab-smoke-nats-{run}"
        docker("run", "-d", "--name", nats, "--network", "host", "-v", f"{auth_dir}:/etc/nats-auth:ro",
               "-v", f"{nats_tls}:/etc/airlab-tls:ro", images["nats"], "nats-server", "--jetstream",
               "--store_dir", "/data", "--addr", "127.0.0.1", "--port", str(nats_port),
               "--config", "/etc/nats-auth/auth.conf")  # fmt: skip
        names.append(nats)
        common = {
            "AIRLAB_NATS_URL": f"nats://127.0.0.1:{nats_port}",
            "AIRLAB_GRPC_HOST": "127.0.0.1",
            "AIRLAB_AUTH__KEY": key.hex(),
            "AIRLAB_ARTIFACTS_URL": "file:///var/lib/airlab-artifacts",
            "AIRLAB_LLM_URLS": json.dumps({"local-cpu": llama_server.url}),
            "AIRLAB_RESEARCH__SEEDS": "[0, 1]",
            "AIRLAB_RESEARCH__STRATEGY__PORTFOLIO_SHARE": "0.3",
            **tls.environment(inside),
        }
        for service in SERVICES:
            env = {**common, "AIRLAB_GRPC_PORT": str(ports[service])}
            flags = [
                "-v",
                f"{artifacts}:/var/lib/airlab-artifacts",
                "-v",
                f"{lab_tls.ca.parent}:/etc/airlab-tls:ro",
            ]
            if service == "runner":
                env |= {
                    "AIRLAB_RUNNER__BACKEND": "docker",
                    "AIRLAB_RUNNER__BACKENDS": '["docker"]',
                    # Experiments need scikit-learn: the reviewer's image has it (the runner's does not).
                    "AIRLAB_RUNNER__DOCKER_IMAGE": images["reviewer"],
                    "AIRLAB_RUNNER__WORK_DIR": str(runs),
                }
                socket_group = str(os.stat("/var/run/docker.sock").st_gid)
                flags += ["-v", "/var/run/docker.sock:/var/run/docker.sock", "--group-add", socket_group,
                          "-v", f"{runs}:{runs}"]  # fmt: skip
            flags += [arg for key_, value in env.items() for arg in ("-e", f"{key_}={value}")]
            name = f"airlab-smoke-{service}-{run}"
            docker("run", "-d", "--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp",
                   "--mount", f"type=volume,src={name},dst=/var/lib/airlab", "--cap-drop", "ALL",
                   "--security-opt", "no-new-privileges", *flags, images[service])  # fmt: skip
            names.append(name)
        # The dashboard's container, for the Lab API at the manager's address.
        dashboard_port = free_port()
        dashboard = f"airlab-smoke-dashboard-{run}"
        dashboard_env = {
            **common,
            "AIRLAB_DASHBOARD__LAB_ADDRESS": f"127.0.0.1:{ports['manager']}",
            "AIRLAB_DASHBOARD__PORT": str(dashboard_port),
        }
        env_flags = [arg for k, v in dashboard_env.items() for arg in ("-e", f"{k}={v}")]
        docker("run", "-d", "--name", dashboard, "--network", "host", "--read-only", "--tmpfs", "/tmp",
               "--mount", f"type=volume,src={dashboard},dst=/var/lib/airlab", "--cap-drop", "ALL",
               "-v", f"{artifacts}:/var/lib/airlab-artifacts",
               "-v", f"{lab_tls.ca.parent}:/etc/airlab-tls:ro", *env_flags, images["dashboard"])  # fmt: skip
        names.append(dashboard)
        token = auth.issue(key, "smoke", "admin")
        deadline = time.monotonic() + 90
        pending = set(SERVICES)
        while pending and time.monotonic() < deadline:
            pending = {s for s in pending if health_status(f"127.0.0.1:{ports[s]}", tls=lab_tls) != "SERVING"}
            time.sleep(0.5)
        logs = {n: docker("logs", n, check=False).stderr[-2000:] for n in names}
        assert not pending, f"not SERVING: {sorted(pending)}: {json.dumps(logs, indent=1)}"
        assert health_status(f"127.0.0.1:{ports['manager']}") == "UNREACHABLE"  # no plain text
        with channel(f"127.0.0.1:{ports['manager']}", token=token, tls=lab_tls) as lab_channel:
            lab = lab_pb2_grpc.LabServiceStub(lab_channel)
            research = lab.StartResearch(
                lab_pb2.StartResearchRequest(
                    goal="as good as possible on wine",
                    budget=research_pb2.Budget(max_experiments=8),
                )
            )
            done_states = {research_pb2.RESEARCH_STATE_COMPLETED, research_pb2.RESEARCH_STATE_FAILED}

            def done() -> bool:
                return lab.GetResearch(lab_pb2.GetResearchRequest(id=research.id)).state in done_states

            wait_until(done, timeout=900, interval=1)
            final = lab.GetResearch(lab_pb2.GetResearchRequest(id=research.id))
            report = lab.GetReport(lab_pb2.GetReportRequest(id=research.id, pdf=True))
        logs = {n: docker("logs", n, check=False).stderr[-1500:] for n in names}
        assert final.state == research_pb2.RESEARCH_STATE_COMPLETED, (final.state_reason, logs)
        summary = json.loads(report.summary_json)
        assert summary["counts"]["finished"] >= 2 and "# " in report.markdown
        assert final.progress.experiments_finished == summary["counts"]["finished"]
        # The reviewer's image typesets the paper (Typst's fonts are built in: no system fonts needed).
        assert report.pdf.startswith(b"%PDF"), report.paper_status
        # Every run was a container of the experiment image (started by the runner through the socket),
        # and the bus refused no service.
        stored = sorted(p.relative_to(artifacts).as_posix() for p in artifacts.rglob("result.json"))
        assert len(stored) >= summary["counts"]["finished"], stored
        assert "Violation" not in docker("logs", nats, check=False).stderr
        # The research in the dashboard's container, signed in with the same token.
        web = f"https://127.0.0.1:{dashboard_port}"
        with httpx.Client(base_url=web, timeout=30, verify=lab_tls.client_context()) as browser:
            wait_until(lambda: browser.get("/healthz").status_code == 200, timeout=60, interval=0.5)
            assert browser.post("/login", data={"token": token}).status_code == 303
            page = browser.get(f"/researches/{research.id}")
            assert page.status_code == 200 and "completed" in page.text and "Experiments" in page.text
    finally:
        for name in names:
            docker("rm", "-f", "--volumes", name, check=False)
            docker("volume", "rm", name, check=False)
