"""Service images built from the repository with a real dockerd, run as containers, all SERVING.

No registry can be reached here, so the images are built on a base made locally with debootstrap
(scripts/build-base-image) from wheels built beforehand (make wheels), and NATS runs from an image made
the same way. MinIO, Qdrant and vLLM images cannot be pulled: this smoke stack does without them (the
services fall back to their embedded alternatives), as the test's name says. The containers share one
network namespace with no interface but loopback: nothing leaves it."""

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

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
        *[(s, "deploy/docker/service.Dockerfile", ["--build-arg", f"SERVICE={s}"]) for s in SERVICES],
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
