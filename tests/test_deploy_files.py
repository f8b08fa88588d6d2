"""Static checks of the deployment files: Dockerfiles pass hadolint, the Kubernetes overlays render and
validate against the Kubernetes schema, the compose files hold together."""

import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HADOLINT = Path(sys.executable).parent / "hadolint"


@pytest.mark.parametrize(
    "dockerfile", sorted((ROOT / "deploy" / "docker").glob("*.Dockerfile")), ids=lambda p: p.name
)
def test_dockerfiles_pass_hadolint(dockerfile):
    result = subprocess.run([str(HADOLINT), str(dockerfile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# -- Kubernetes: each overlay rendered as `kubectl apply -k` would, every object validated --------------

K8S = ROOT / "deploy" / "k8s"
K8S_VERSION = "1.33"


def render(directory: Path) -> list[dict]:
    """A kustomization's objects: its resources (files or nested kustomizations), its generated
    ConfigMaps, all in its namespace. Only the kustomize features these manifests use."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    objects: list[dict] = []
    for resource in kustomization.get("resources", []):
        path = (directory / resource).resolve()
        assert path.exists(), f"{directory}: resource {resource} is missing"
        if path.is_dir():
            objects += render(path)
        else:
            objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for generator in kustomization.get("configMapGenerator", []):
        data = {}
        for literal in generator.get("literals", []):
            key, value = literal.split("=", 1)
            data[key] = value
        for name in generator.get("files", []):
            data[name] = (directory / name).read_text()
        objects.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": data}
        )
    for obj in objects:
        if obj["kind"] != "Namespace" and "namespace" in kustomization:
            obj["metadata"]["namespace"] = kustomization["namespace"]
    return objects


@pytest.mark.parametrize("overlay", ["gpu", "cpu"])
def test_kubernetes_overlays_validate_and_hold_together(overlay):
    objects = render(K8S / "overlays" / overlay)
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    by_kind: dict[str, set[str]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], set()).add(obj["metadata"]["name"])
    assert {"manager", "idea", "coder", "reviewer", "runner"} <= by_kind["Deployment"]
    assert {"nats", "minio", "qdrant"} <= by_kind["StatefulSet"]
    assert ("vllm" in by_kind["Deployment"]) == (overlay == "gpu")
    # Everything a pod refers to exists.
    for obj in objects:
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        spec = obj["spec"]["template"]["spec"]
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in by_kind["ConfigMap"]
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in by_kind["PersistentVolumeClaim"]
        for container in spec["containers"]:
            for source in container.get("envFrom", []):
                ref = source.get("configMapRef") or source.get("secretRef")
                assert ref["name"] in by_kind["ConfigMap"] | by_kind["Secret"]
            if obj["metadata"]["name"] in ("manager", "idea", "coder", "reviewer", "runner"):
                assert container["readinessProbe"]["grpc"]["port"] == 50051
                assert container["securityContext"]["readOnlyRootFilesystem"] is True
                assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        if obj["metadata"]["name"] == "runner":
            assert spec["serviceAccountName"] == "airlab-runner"
    role = next(o for o in objects if o["kind"] == "Role" and o["metadata"]["name"] == "airlab-runner")
    assert sorted(tuple(r["resources"]) for r in role["rules"]) == [("jobs",), ("pods",), ("pods/log",)]
    policy = next(
        o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "experiments-isolated"
    )
    assert policy["spec"]["podSelector"]["matchLabels"] == {"airlab.role": "experiment"}
    assert policy["spec"]["egress"] == [] and policy["spec"]["ingress"] == []


# -- Compose: the files hold together (no compose plugin here to run `docker compose config`) -----------

COMPOSE = ROOT / "deploy" / "compose"


def test_compose_files_hold_together():
    main = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    cpu = yaml.safe_load((COMPOSE / "compose.cpu.yaml").read_text())
    services = main["services"]
    assert {"nats", "minio", "qdrant", "vllm", "manager", "idea", "coder", "reviewer", "runner"} == set(
        services
    )
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services and condition["condition"] in ("service_healthy", "service_started")
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits on {dependency}'s health"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith(("/", ".", "$")):
                assert source in main["volumes"], f"{name}: volume {source} is not declared"
            elif source.startswith("./"):
                assert (COMPOSE / source).is_file(), f"{name}: {source} is missing"
    gpu = services["vllm"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"] and "--enable-sleep-mode" in services["vllm"]["command"]
    assert "/health" in " ".join(services["vllm"]["healthcheck"]["test"])
    assert "/var/run/docker.sock:/var/run/docker.sock" in services["runner"]["volumes"]
    assert cpu["services"]["vllm"]["profiles"] == ["gpu"]
    assert set(cpu["services"]) <= set(services)
    # Every variable the files use is documented in .env.example.
    documented = {
        line.split("=")[0]
        for line in (COMPOSE / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    used = set(
        re.findall(
            r"\$\{([A-Z0-9_]+)",
            (COMPOSE / "compose.yaml").read_text() + (COMPOSE / "compose.cpu.yaml").read_text(),
        )
    )
    assert used <= documented, f"not in .env.example: {sorted(used - documented)}"
