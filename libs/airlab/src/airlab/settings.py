"""Settings from the environment (AIRLAB_*) and from airlab.yaml, in that order of precedence. Config
files are looked up by config_dirs(): AIRLAB_CONFIG_DIR, ./configs, the user's config directory, then the
defaults packaged with the library."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from airlab.cpus import CpuSettings
from airlab.literature import LiteratureSettings
from airlab.strategy import KNOBS, PRESETS, Strategy

SERVICE_NAMES = ("idea", "manager", "coder", "reviewer", "runner")


# The defaults shipped with the library: what runs when nothing else is configured.
PACKAGED_CONFIGS = Path(__file__).parent / "defaults"
CONFIG_FILES = ("airlab.yaml", "agents.yaml", "llm_servers.yaml", "datasets.yaml")


class ConfigError(ValueError):
    """A configuration that cannot be used, said with where it came from and what to do."""


def user_config_dir() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "airlab"


def user_data_dir() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "airlab"


def config_dirs() -> list[tuple[str, Path]]:
    """Where each config file is looked for, in order; the first directory that has it wins, file by file:
    AIRLAB_CONFIG_DIR (what `--config-dir` sets), ./configs, the user's config directory, and last the
    defaults packaged with the library (which always have every file)."""
    dirs: list[tuple[str, Path]] = []
    explicit = os.environ.get("AIRLAB_CONFIG_DIR")
    if explicit:
        if not Path(explicit).is_dir():
            raise ConfigError(f"AIRLAB_CONFIG_DIR (or --config-dir) is {explicit!r}: not a directory")
        dirs.append(("AIRLAB_CONFIG_DIR", Path(explicit)))
    dirs.append(("./configs", Path("configs")))
    dirs.append(("user config", user_config_dir()))
    dirs.append(("packaged default", PACKAGED_CONFIGS))
    return dirs


def find_config(name: str) -> tuple[str, Path]:
    """The file `name` is read from, and which place of config_dirs() it came from."""
    for origin, folder in config_dirs():
        if (folder / name).is_file():
            return origin, folder / name
    places = ", ".join(str(folder) for _, folder in config_dirs())
    raise ConfigError(f"no {name} in {places}: the packaged defaults are missing, reinstall airlab")


def load_yaml(name: str) -> dict[str, Any]:
    """One YAML config file, from the first place of config_dirs() that has it."""
    _, path = find_config(name)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def default_workspace() -> Path:
    """./.airlab inside a checkout of the repository (or where one exists already), else the user's data
    directory, so `airlab` works from any directory."""
    if Path(".airlab").is_dir() or Path("libs/airlab/pyproject.toml").is_file():
        return Path(".airlab")
    return user_data_dir() / "workspace"


class BusSettings(BaseModel):
    stream: str = "AIRLAB"
    # Published events with the same id inside this window are stored once.
    duplicate_window_seconds: float = Field(default=7200, gt=0)
    # Deliveries of one message before it goes to the dead-letter subject.
    max_deliver: int = Field(default=5, ge=1, le=100)
    # Seconds a handler has before its message is delivered again.
    ack_wait_seconds: float = Field(default=30, gt=0)
    # Events kept in the stream, in days.
    retention_days: float = Field(default=365, gt=0)
    # How long an agent keeps trying to publish a finished answer through a bus outage.
    publish_retry_seconds: float = Field(default=600, gt=0)


class ResearchDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_experiments: int = Field(default=12, ge=1, le=1000)
    max_wall_seconds: int = Field(default=3600, ge=60)
    max_tokens: int = Field(default=2_000_000, ge=1000)
    max_cost_usd: float = Field(default=5.0, ge=0)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1, max_length=20)
    test_fraction: float = Field(default=0.25, gt=0, le=0.5)
    # How the loop spends the budget: a named preset (airlab.strategy.PRESETS), and any knobs changed on top
    # of it (`strategy: {exploit: false}`; AIRLAB_RESEARCH__STRATEGY__EXPLOIT=false).
    preset: str = "default"
    strategy: Strategy = Field(default_factory=Strategy)
    code_attempts: int = Field(default=3, ge=1, le=10)
    # Ask a person after this many ideas in a row failed to become working code.
    escalate_after_failures: int = Field(default=3, ge=1, le=100)
    stop_when_goal_met: bool = True
    experiment_cpu_millis: int = Field(default=1000, ge=100)
    experiment_memory_mib: int = Field(default=2048, ge=64)
    experiment_wall_seconds: int = Field(default=600, ge=1)
    # Whole GPUs each experiment of a PyTorch research asks for: set it where runners have GPUs (the plan
    # carries it; the runner leases them). 0: PyTorch experiments run on CPU.
    experiment_gpus: int = Field(default=0, ge=0, le=16)

    @model_validator(mode="before")
    @classmethod
    def _strategy_from_preset(cls, data: Any) -> Any:
        """The preset first, then the knobs the settings change. A knob set at the top level (where
        earlier versions had them) still counts, with a warning naming its new place."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        name = data.get("preset", "default")
        if name not in PRESETS:
            raise ValueError(f"research.preset: no strategy preset {name!r}: one of {', '.join(PRESETS)}")
        changed = data.get("strategy") or {}
        if isinstance(changed, Strategy):
            changed = changed.model_dump(exclude_unset=True)
        moved = {knob: data.pop(knob) for knob in KNOBS if knob in data}
        for knob in moved:
            warnings.warn(
                f"research.{knob} is now research.strategy.{knob} (AIRLAB_RESEARCH__STRATEGY__"
                f"{knob.upper()}); the old name still works for now",
                FutureWarning,  # shown by default: services and the CLI print it
                stacklevel=2,
            )
        data["strategy"] = {**PRESETS[name], **moved, **dict(changed)}
        return data


class RunnerSettings(BaseModel):
    # Names this runner in job records, so a restarted runner finds the jobs it was running; empty: hostname.
    host: str = ""
    # The sandbox a spec without a backend gets, and the backends this runner offers.
    backend: Literal["local", "docker", "kubernetes"] = "local"
    backends: list[Literal["local", "docker", "kubernetes"]] = Field(default_factory=lambda: ["local"])  # type: ignore[arg-type]
    # Jobs running at once on this host.
    max_concurrent: int = Field(default=2, ge=1, le=256)
    # Where jobs' work dirs live while they run; empty: WORKSPACE/runs.
    work_dir: str = ""
    # The Python that runs experiments in the local sandbox; empty: the runner's own.
    python: str = ""
    cgroup_parent: str = "airlab"
    max_log_mib: int = Field(default=10, ge=1)
    # What one job may keep of models, plots and predictions, in all.
    max_output_mib: int = Field(default=1024, ge=1)
    # What one job's files may take on disk while it runs (its work dir; a job past it is stopped and fails).
    max_job_disk_mib: int = Field(default=2048, ge=1)
    # What one research may keep of them over all its jobs, on every runner together.
    max_research_storage_mib: int = Field(default=20480, ge=1)
    # The longest wall-clock limit one job may ask for on this runner (2 days).
    max_job_wall_seconds: int = Field(default=172_800, ge=1, le=604_800)
    # Directories host-path datasets must come from (after resolving symlinks); empty: any file outside the
    # lab's workspace and the system's own directories that every user may read (airlab.dataset_access).
    dataset_roots: list[str] = Field(default_factory=list)
    # The uids (first, last) a root runner gives its jobs, one per running job; any that is a host account
    # is skipped. The default is clear of distributions' accounts (below 65536), systemd's dynamic users
    # (61184-65519), container ranges (systemd-nspawn's end at 1879048191) and systemd's "foreign" range.
    job_uids: tuple[int, int] = (1_950_000_000, 1_950_009_999)
    # Runs of a job whose runner died while it ran, before it is reported failed.
    max_attempts: int = Field(default=2, ge=1, le=10)
    # A runner renews its presence every third of this; one silent for longer is dead, and the other
    # runners queue its running jobs again (airlab_runner.presence).
    presence_ttl_seconds: float = Field(default=30, gt=0)
    # GPU ids when nvidia-smi is absent (a simulated inventory in tests).
    gpus: list[str] = Field(default_factory=list)
    lease_ttl_seconds: float = Field(default=30, gt=0)
    # GPU id -> base URL of the local vLLM server that uses it (slept while a job has the GPU).
    vllm_servers: dict[str, str] = Field(default_factory=dict)
    docker_url: str = "unix:///var/run/docker.sock"
    docker_image: str = "airlab-experiment:cpu"
    kubernetes_namespace: str = "airlab"
    kubernetes_image: str = "airlab-experiment:cpu"
    # A ReadWriteMany claim mounted at the runner's work dir and shared (by sub-path) with its job pods.
    kubernetes_runs_claim: str = "airlab-runs"


class DashboardSettings(BaseModel):
    # Loopback unless told otherwise (its container sets AIRLAB_DASHBOARD__HOST=0.0.0.0).
    host: str = "127.0.0.1"
    # 0 binds a free port (written to port_file, as for the gRPC services).
    port: int = Field(default=8080, ge=0, le=65535)
    # The Lab API it calls with each signed-in user's token: what they may see is the manager's decision.
    lab_address: str = "127.0.0.1:50051"
    # Largest CSV a user may upload from the start form.
    max_upload_mib: int = Field(default=100, ge=1)
    # Each service's metrics endpoint (http://HOST:PORT/metrics) by service name, for the "lab" page;
    # `airlab up` sets them. Empty: the page says it has none.
    metrics_urls: dict[str, str] = Field(default_factory=dict)


class TrackingSettings(BaseModel):
    # An MLflow tracking server (http://HOST:PORT, serving artifacts): each research becomes a parent run and
    # each experiment a child run once its report is written. Empty: no tracking.
    mlflow_uri: str = ""
    mlflow_experiment: str = "airlab"


class AuthSettings(BaseModel):
    # The lab's signing key (0600). Unset: the service answers every caller as the local admin (unit tests
    # and single-user development only). `airlab up` sets it.
    key_file: str = ""
    # The same key given as hex (e.g. from a container's secret environment); wins over key_file.
    key: str = ""
    # The token a client sends (the CLI and airlab.client); unset: the workspace's run/auth/token.
    token: str = ""
    # The revoked tokens every call is checked against (`airlab token revoke`); unset: revoked.json beside
    # key_file (none when the key is given as hex: set it to a shared file then).
    revoked_file: str = ""


class TlsSettings(BaseModel):
    # This process's certificate and key and the lab's authority (PEM). Unset: plain text (airlab.tls).
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    # `airlab up` starts the stack without TLS only when this says so (the README and `airlab status` say
    # what it costs: tokens, bus passwords and data in clear on the wire).
    plaintext: bool = False


class Settings(BaseSettings):
    """Every setting a service or the CLI reads. Env vars win over airlab.yaml."""

    model_config = SettingsConfigDict(env_prefix="AIRLAB_", env_nested_delimiter="__", extra="ignore")

    service: str = "airlab"
    nats_url: str = "nats://127.0.0.1:4222"
    # Loopback unless told otherwise (containers set AIRLAB_GRPC_HOST=0.0.0.0 in their image).
    grpc_host: str = "127.0.0.1"
    # 0 binds a free port; the bound port is written to port_file when one is given.
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    port_file: Path | None = None
    workspace: Path = Field(default_factory=default_workspace)
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    # Seconds in-flight calls and handlers get to finish after SIGTERM.
    drain_seconds: float = Field(default=10, ge=0)
    bus: BusSettings = Field(default_factory=BusSettings)
    research: ResearchDefaults = Field(default_factory=ResearchDefaults)
    runner: RunnerSettings = Field(default_factory=RunnerSettings)
    # Fixed ports for `airlab up`, by service name ("nats" included); missing or 0 means a free port.
    stack_ports: dict[str, int] = Field(default_factory=dict)
    # Seconds `airlab up` waits for every service to report SERVING.
    stack_start_timeout: float = Field(default=30, gt=0)
    # Each service's Prometheus endpoint (airlab.metrics): loopback and a free port by default (written to
    # metrics_port_file); compose and k8s serve it on 0.0.0.0:9464 for their Prometheus. -1: no endpoint.
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=0, ge=-1, le=65535)
    metrics_port_file: Path | None = None
    # An OpenTelemetry collector's OTLP/HTTP endpoint (http://host:4318): each service exports its spans
    # there (airlab.tracing). Empty: no tracing, at no cost.
    otel_endpoint: str = ""

    # Base URLs of LLM servers known only at run time (the local one `airlab up` starts), by server name.
    llm_urls: dict[str, str] = Field(default_factory=dict)
    # How this host's cores are shared between the local LLM server and experiments (airlab.cpus).
    cpu: CpuSettings = Field(default_factory=CpuSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    tls: TlsSettings = Field(default_factory=TlsSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    # Related work (OpenAlex, arXiv, Semantic Scholar) for the idea agent and the paper (airlab.literature).
    literature: LiteratureSettings = Field(default_factory=LiteratureSettings)

    # Artifacts: s3://HOST:PORT/BUCKET (TLS), s3+http://..., or file:///DIR; empty: WORKSPACE/artifacts.
    artifacts_url: str = ""
    s3_access_key: SecretStr = SecretStr("")
    s3_secret_key: SecretStr = SecretStr("")
    s3_region: str | None = None
    # Memory: http(s)://QDRANT:6333, or a directory for Qdrant's local mode; empty: WORKSPACE/memory.
    memory_url: str = ""
    qdrant_api_key: SecretStr = SecretStr("")
    # Embeddings: an OpenAI-compatible base URL (".../v1"); empty: the in-process local model.
    embeddings_url: str = ""
    embeddings_model: str = "multilingual-e5-small-q4"
    embeddings_api_key: SecretStr = SecretStr("")

    def resolved_artifacts_url(self) -> str:
        return self.artifacts_url or (self.workspace.resolve() / "artifacts").as_uri()

    def resolved_memory_url(self) -> str:
        return self.memory_url or str(self.workspace.resolve() / "memory")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_source = YamlConfigSettingsSource(settings_cls, yaml_file=find_config("airlab.yaml")[1])
        return (init_settings, env_settings, yaml_source, file_secret_settings)


def described(settings: Settings) -> list[tuple[str, str, str]]:
    """Every setting as (dotted key, value, where it came from: an AIRLAB_* variable, the airlab.yaml that
    was read, or the default). Secrets show masked."""
    origin, _ = find_config("airlab.yaml")
    from_file = load_yaml("airlab.yaml")
    rows: list[tuple[str, str, str]] = []

    def walk(model: BaseModel, keys: list[str], data: Any) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            here = [*keys, name]
            found = data.get(name) if isinstance(data, dict) else None
            if isinstance(value, BaseModel):
                walk(value, here, found)
                continue
            variable = "AIRLAB_" + "__".join(here).upper()
            if variable in os.environ:
                source = f"env {variable}"
            elif isinstance(data, dict) and name in data:
                source = f"airlab.yaml, {origin}"
            elif here[:2] == ["research", "strategy"] and name in PRESETS[settings.research.preset]:
                source = f"preset {settings.research.preset}"
            else:
                source = "default"
            shown = "**********" if isinstance(value, SecretStr) and value.get_secret_value() else value
            rows.append((".".join(here), str(shown), source))

    walk(settings, [], from_file)
    return rows
