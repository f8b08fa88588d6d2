"""Starting the lab's own background processes (nats-server, the LLM server, the services)."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path


def spawn(
    command: Sequence[str],
    *,
    log_file: Path | None = None,
    detach: bool = False,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start `command` with its output appended to `log_file` (or discarded). `detach` gives it a session
    of its own, so it outlives the caller and its whole process group can be signalled."""
    output = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen(
            list(command),
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=detach,
            env=dict(env) if env is not None else None,
        )
    finally:
        if log_file:
            output.close()  # type: ignore[union-attr]


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM (a clean shutdown), then SIGKILL if it lingers past `timeout`."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
