"""The embedded stack: nats-server, the five services and the dashboard as separate OS processes on one
machine, with their state in the workspace directory. `up` returns once all report SERVING, and leaves a
supervisor (`airlab.supervisor`) that restarts whatever crashes; `down` stops the supervisor first, then
everything that runs now, and leaves nothing."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from airlab import auth, bus_access, metrics, tls
from airlab.cpus import CpuPlan, plan_cpus
from airlab.grpc_client import health_status
from airlab.natsd import NatsServerError, start_nats
from airlab.processes import NotReady, spawn, wait_ready
from airlab.settings import SERVICE_NAMES, Settings
from airlab.tls import TlsFiles, cli_files

STATE_FILE = "stack.json"


class StackError(RuntimeError):
    pass


@dataclass
class Proc:
    name: str
    pid: int
    # Start time of the process (clock ticks since boot), so a recycled pid is never signalled.
    started: int
    address: str
    log: str
    # How to start it again: its command, and the variables set for it over the environment of
    # `airlab up` (no secrets: paths and addresses).
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    restarts: int = 0
    # Its Prometheus endpoint (airlab.metrics), once it serves one: http://127.0.0.1:PORT/metrics.
    metrics: str = ""


@dataclass
class StackState:
    workspace: str
    nats_url: str
    processes: list[Proc]
    started_in_seconds: float
    # Every hop over TLS with the workspace's certificates (airlab.tls); false only with tls.plaintext.
    tls: bool = False
    # The local llama.cpp servers' URLs by their names in llm_servers.yaml.
    llm_urls: dict[str, str] = field(default_factory=dict)

    def client_tls(self) -> TlsFiles | None:
        """What a client on this machine connects to this stack with (the CLI's certificate)."""
        return cli_files(Path(self.workspace)) if self.tls else None

    def address_of(self, name: str) -> str:
        for proc in self.processes:
            if proc.name == name:
                return proc.address
        raise StackError(f"no {name} in the stack")


def _start_ticks(pid: int) -> int | None:
    """The process's start time, or None if it is gone (a zombie counts as gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else int(fields[19])


def _alive(proc: Proc) -> bool:
    return _start_ticks(proc.pid) == proc.started


def state_path(workspace: Path) -> Path:
    return workspace / "run" / STATE_FILE


def load_state(workspace: Path) -> StackState | None:
    path = state_path(workspace)
    if not path.is_file():
        return None
    raw = json.loads(path.read_text())
    raw["processes"] = [Proc(**p) for p in raw["processes"]]
    return StackState(**raw)


def _save_state(state: StackState) -> None:
    path = state_path(Path(state.workspace))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    tmp.replace(path)


def _signal(proc: Proc, sig: signal.Signals) -> None:
    if _alive(proc):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)  # each was started in its own session: its children go too


def _stop(procs: list[Proc], timeout: float) -> None:
    for proc in procs:
        _signal(proc, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in procs):
        time.sleep(0.05)
    for proc in procs:
        _signal(proc, signal.SIGKILL)
    while any(_alive(p) for p in procs):
        time.sleep(0.02)


def runner_names(count: int) -> list[str]:
    """The stack's runner processes: "runner", then "runner-2", ... ."""
    return ["runner", *(f"runner-{n}" for n in range(2, count + 1))]


def _runner_env(settings: Settings, workspace: Path, name: str, count: int) -> dict[str, str]:
    """What tells runners on one machine apart, as if each were a host of its own: its host name (in the
    job records and the shared presence bucket), its work root and its own slice of the job uids (no two
    running jobs share a uid). One runner keeps the defaults."""
    if count == 1 or _service_of(name) != "runner":
        return {}
    index = runner_names(count).index(name)
    first, last = settings.runner.job_uids
    span = (last - first + 1) // count
    uids = [first + index * span, first + (index + 1) * span - 1]
    env = {"AIRLAB_RUNNER__JOB_UIDS": json.dumps(uids)}
    if index:
        env["AIRLAB_RUNNER__HOST"] = f"{socket.gethostname()}-{name}"
        env["AIRLAB_RUNNER__WORK_DIR"] = str(workspace / f"runs-{name}")
    return env


def up(settings: Settings, *, report: Callable[[str], None] = lambda _: None, runners: int = 1) -> StackState:
    """Start nats-server, the five services (`runners` runner processes sharing the queue) and the
    dashboard; wait until every service reports SERVING."""
    workspace = settings.workspace.resolve()
    current = load_state(workspace)
    if current and any(_alive(p) for p in current.processes):
        raise StackError(f"a stack is already running in {workspace}: run 'airlab down' first")
    if not workspace.exists():
        workspace.mkdir(parents=True, mode=0o700)
    if workspace.stat().st_mode & 0o077:
        # Private: its uploads, logs, keys and stack.json are no other local user's to read.
        workspace.chmod(0o700)
        report(f"made the workspace {workspace} private to its owner (0700)")
    for sub in ("run", "logs", "nats"):
        (workspace / sub).mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    ports = settings.stack_ports
    # Every gRPC call needs a token signed with this key (the CLI reads the admin token beside it), and
    # each service's bus user has a password derived from it.
    credentials = auth.credentials_dir(workspace)
    key_file, _ = auth.ensure_credentials(credentials)
    # A certificate per process from the workspace's own authority (made once), unless told plain text.
    certificates = {} if settings.tls.plaintext else {
        name: tls.issue(tls.directory_of(workspace), name) for name in tls.STACK_NAMES
    }  # fmt: skip

    def own_tls(name: str) -> dict[str, str]:
        return tls.environment(certificates[name]) if certificates else {}

    nats_config = bus_access.write_server_config(
        auth.read_key(key_file), credentials / "nats.conf", certificates.get("nats")
    )
    try:
        nats = start_nats(
            workspace / "nats",
            port=ports.get("nats", 0),
            log_file=workspace / "logs" / "nats.log",
            detach=True,
            config=nats_config,
        )
    except NatsServerError as exc:
        raise StackError(str(exc)) from exc
    procs = [
        Proc(
            "nats", nats.pid, _start_ticks(nats.pid) or 0, nats.url, str(workspace / "logs" / "nats.log"),
            command=nats.command,
        )
    ]  # fmt: skip
    report(f"nats-server {nats.url}" + (" (TLS, client certificates required)" if certificates else ""))
    state = StackState(str(workspace), nats.url, procs, 0.0, tls=bool(certificates))
    client = state.client_tls()
    try:
        llm_urls, cpus = _start_local_llm(settings, workspace, procs, report)
        state.llm_urls = llm_urls
        env = {"AIRLAB_LLM_URLS": json.dumps(llm_urls)} if llm_urls else {}
        env["AIRLAB_AUTH__KEY_FILE"] = str(key_file)
        if cpus is not None:  # the runner pins experiments around the LLM server's cores
            env["AIRLAB_CPU__LLM_CORES"] = str(len(cpus.llm))
        names = [n for s in SERVICE_NAMES for n in (runner_names(runners) if s == "runner" else [s])]
        pending = {
            name: _spawn(
                name,
                settings,
                workspace,
                nats.url,
                ports.get(name, 0),
                env | own_tls(_service_of(name)) | _runner_env(settings, workspace, name, runners),
            )
            for name in names
        }
        procs.extend(pending.values())
        _save_state(state)
        _wait_serving(pending, workspace, began + settings.stack_start_timeout, report, client)
        for proc in pending.values():  # started again, a service listens where its clients look for it
            proc.env["AIRLAB_GRPC_PORT"] = proc.address.rsplit(":", 1)[1]
            metrics_file = metrics.port_file_beside(workspace / "run" / f"{proc.name}.port")
            if metrics_file.is_file():
                metrics_port = int(metrics_file.read_text())
                proc.metrics = f"http://127.0.0.1:{metrics_port}/metrics"
                proc.env["AIRLAB_METRICS_PORT"] = str(metrics_port)
        # The dashboard's lab page reads the services' metrics endpoints.
        metrics_urls = {proc.name: proc.metrics for proc in pending.values() if proc.metrics}
        dashboard = _start_dashboard(
            settings, workspace, pending["manager"].address, began, report, own_tls("dashboard"), client,
            metrics_urls,
        )  # fmt: skip
        procs.append(dashboard)
        _save_state(state)
        procs.append(_start_supervisor(workspace))
    except BaseException:
        _stop(procs[::-1], timeout=5)
        state_path(workspace).unlink(missing_ok=True)
        raise
    state.started_in_seconds = round(time.monotonic() - began, 3)
    _save_state(state)
    return state


def _start_local_llm(
    settings: Settings, workspace: Path, procs: list[Proc], report: Callable[[str], None]
) -> tuple[dict[str, str], CpuPlan | None]:
    """Start a llama.cpp server for each local model an agent routes to (a llamacpp server without a URL):
    "llm" for the default model, "llm-2" and on for others, all on the LLM's cores. Returns each local
    server's URL by its name in llm_servers.yaml."""
    from airlab.extras import MissingExtra
    from airlab.llm.config import LLMConfig
    from airlab.llm.local import LocalModelError, start_llama_server

    config = LLMConfig.load().with_urls(settings.llm_urls)
    models = config.local_models()
    if not models:
        return {}, None
    cpus = plan_cpus(settings.cpu, local_llm=True)
    urls: dict[str, str] = {}
    for index, (model, servers) in enumerate(models.items()):
        name = "llm" if index == 0 else f"llm-{index + 1}"
        log = workspace / "logs" / f"{name}.log"
        try:
            server = start_llama_server(
                model,
                port=settings.stack_ports.get(name, 0),
                cores=cpus.llm,
                log_file=log,
                detach=True,
                report=report,
            )
        except (LocalModelError, MissingExtra) as exc:
            raise StackError(f"local LLM {model}: {exc}") from exc
        procs.append(
            Proc(
                name, server.process.pid, _start_ticks(server.process.pid) or 0, server.url, str(log),
                command=server.command,
            )
        )  # fmt: skip
        report(f"{name:<9} {server.url} ({model}, llama.cpp, cores {_cores(cpus.llm)}; {', '.join(servers)})")
        urls |= dict.fromkeys(servers, server.url)
    return urls, cpus


def is_local_llm(name: str) -> bool:
    """Whether a stack process is one of the local llama.cpp servers ("llm", "llm-2", ...)."""
    return name == "llm" or name.startswith("llm-")


def _cores(cores: tuple[int, ...]) -> str:
    return ",".join(map(str, cores)) or "all"


def _service_of(name: str) -> str:
    """The service a stack process runs ("runner-2" is a runner)."""
    return "runner" if name.startswith("runner-") else name


def _spawn(
    name: str, settings: Settings, workspace: Path, nats_url: str, port: int, extra_env: dict[str, str]
) -> Proc:
    port_file = workspace / "run" / f"{name}.port"
    port_file.unlink(missing_ok=True)
    metrics_file = metrics.port_file_beside(port_file)
    metrics_file.unlink(missing_ok=True)
    log_path = workspace / "logs" / f"{name}.log"
    own = {
        "AIRLAB_NATS_URL": nats_url,
        "AIRLAB_GRPC_HOST": "127.0.0.1",
        "AIRLAB_GRPC_PORT": str(port),
        "AIRLAB_PORT_FILE": str(port_file),
        # Each on a port of its own (a port in airlab up's own environment would be taken by the first).
        "AIRLAB_METRICS_HOST": "127.0.0.1",
        "AIRLAB_METRICS_PORT": "-1" if settings.metrics_port < 0 else "0",
        "AIRLAB_METRICS_PORT_FILE": str(metrics_file),
        "AIRLAB_WORKSPACE": str(workspace),
        **extra_env,
    }
    command = [sys.executable, "-m", f"airlab_{_service_of(name)}"]
    process = spawn(command, log_file=log_path, detach=True, env={**os.environ, **own})
    return Proc(name, process.pid, _start_ticks(process.pid) or 0, "", str(log_path), command, own)


def _start_dashboard(
    settings: Settings,
    workspace: Path,
    lab_address: str,
    began: float,
    report: Callable[[str], None],
    tls_env: dict[str, str],
    client: tls.TlsFiles | None,
    metrics_urls: dict[str, str],
) -> Proc:
    """The dashboard on loopback, for the Lab API at `lab_address` (over https with `tls_env`'s
    certificate); returns once it answers."""
    port_file = workspace / "run" / "dashboard.port"
    port_file.unlink(missing_ok=True)
    log_path = workspace / "logs" / "dashboard.log"
    own = {
        "AIRLAB_DASHBOARD__HOST": "127.0.0.1",
        "AIRLAB_DASHBOARD__PORT": str(settings.stack_ports.get("dashboard", 0)),
        "AIRLAB_DASHBOARD__LAB_ADDRESS": lab_address,
        "AIRLAB_DASHBOARD__METRICS_URLS": json.dumps(metrics_urls),
        "AIRLAB_PORT_FILE": str(port_file),
        "AIRLAB_WORKSPACE": str(workspace),
        **tls_env,
    }
    command = [sys.executable, "-m", "airlab_dashboard"]
    process = spawn(command, log_file=log_path, detach=True, env={**os.environ, **own})
    proc = Proc("dashboard", process.pid, _start_ticks(process.pid) or 0, "", str(log_path), command, own)

    def answering() -> str | None:
        if not port_file.is_file() or not port_file.read_text().strip():
            return None
        scheme = "https" if client else "http"
        url = f"{scheme}://127.0.0.1:{int(port_file.read_text())}"
        return url if _http_health(url + "/healthz", client) == "SERVING" else None

    try:
        proc.address = wait_ready(
            lambda: None if _alive(proc) else -1,
            answering,
            what="dashboard",
            timeout=max(began + settings.stack_start_timeout - time.monotonic(), 5.0),
            detail=lambda: f"last lines of {log_path}:\n{_tail(str(log_path))}",
        )
    except NotReady as exc:
        _stop([proc], timeout=5)
        raise StackError(f"not SERVING: {exc}") from None
    proc.env["AIRLAB_DASHBOARD__PORT"] = proc.address.rsplit(":", 1)[1]  # the same address after a restart
    report(f"dashboard {proc.address} (sign in with the token in {workspace / 'run' / 'auth' / 'token'})")
    return proc


def _start_supervisor(workspace: Path) -> Proc:
    log = workspace / "logs" / "supervisor.log"
    command = [sys.executable, "-m", "airlab.supervisor", str(workspace)]
    process = spawn(command, log_file=log, detach=True)
    return Proc("supervisor", process.pid, _start_ticks(process.pid) or 0, "", str(log), command)


def _wait_serving(
    pending: dict[str, Proc],
    workspace: Path,
    deadline: float,
    report: Callable[[str], None],
    client: tls.TlsFiles | None,
) -> None:
    """Every service started at once: wait for each in turn, all within the same deadline."""
    for name, proc in pending.items():
        port_file = workspace / "run" / f"{name}.port"

        def serving(proc: Proc = proc, port_file: Path = port_file) -> str | None:
            if not proc.address and port_file.is_file():
                proc.address = f"127.0.0.1:{int(port_file.read_text())}"
            if proc.address and health_status(proc.address, timeout=0.5, tls=client) == "SERVING":
                return proc.address
            return None

        def exited(proc: Proc = proc) -> int | None:
            return None if _alive(proc) else -1

        def last_lines(proc: Proc = proc) -> str:
            return f"last lines of {proc.log}:\n{_tail(proc.log)}"

        try:
            wait_ready(
                exited,
                serving,
                what=name,
                timeout=max(deadline - time.monotonic(), 0.0),
                detail=last_lines,
            )
        except NotReady as exc:
            raise StackError(f"not SERVING: {exc}") from None
        report(f"{name:<9} {proc.address} SERVING")


def _tail(path: str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def down(settings: Settings, timeout: float = 15.0) -> list[str]:
    """Stop the services (graceful drain, then SIGKILL after `timeout`), then nats-server."""
    workspace = settings.workspace.resolve()
    state = load_state(workspace)
    if state is None:
        return []
    running = [p.name for p in state.processes if _alive(p)]
    # The supervisor first, so nothing is started again; then whatever runs now (the supervisor may have
    # restarted some: the state file has their pids).
    _stop([p for p in state.processes if p.name == "supervisor"], timeout)
    state = load_state(workspace) or state
    services = [
        p for p in state.processes if p.name not in ("nats", "supervisor") and not is_local_llm(p.name)
    ]
    _stop(services, timeout)
    _stop([p for p in state.processes if p.name == "nats" or is_local_llm(p.name)], timeout)
    state_path(workspace).unlink(missing_ok=True)
    return running


def _http_health(url: str, client: tls.TlsFiles | None = None) -> str:
    import httpx

    verify: Any = client.client_context() if client and url.startswith("https:") else True
    try:
        return "SERVING" if httpx.get(url, timeout=2, verify=verify).status_code == 200 else "NOT_SERVING"
    except httpx.HTTPError:
        return "UNREACHABLE"


def processes(settings: Settings) -> list[Proc]:
    """The stack's processes as they run now (pids after any restart, restart counts)."""
    state = load_state(settings.workspace.resolve())
    return state.processes if state else []


def status(settings: Settings) -> dict[str, tuple[str, str]]:
    """name -> (address, health) for every process of the stack."""
    state = load_state(settings.workspace.resolve())
    if state is None:
        return {}
    result = {}
    for proc in state.processes:
        if not _alive(proc):
            result[proc.name] = (proc.address, "DEAD")
        elif proc.name in ("nats", "supervisor"):
            result[proc.name] = (proc.address, "RUNNING")
        elif is_local_llm(proc.name):
            result[proc.name] = (proc.address, _http_health(f"{proc.address}/models"))
        elif proc.name == "dashboard":
            result[proc.name] = (proc.address, _http_health(f"{proc.address}/healthz", state.client_tls()))
        else:
            result[proc.name] = (proc.address, health_status(proc.address, tls=state.client_tls()))
    return result
