"""Starting the lab's own background processes (nats-server, the LLM server, the services)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")


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


class NotReady(RuntimeError):
    """A started process exited, or did not become ready in time; the message says which."""


def wait_ready(
    exit_code: Callable[[], int | None],
    probe: Callable[[], T | None],
    *,
    what: str,
    timeout: float,
    interval: float = 0.02,
    detail: Callable[[], str] = lambda: "",
) -> T:
    """Poll `probe` until it returns something (what the process offers: its URL, its address) while the
    process runs (`exit_code`: None while it does, e.g. Popen.poll). NotReady when it exits first or
    `timeout` passes; `detail` adds e.g. its log's tail."""
    deadline = time.monotonic() + timeout
    while True:
        code = exit_code()
        if code is not None:
            raise NotReady(f"{what} exited with {code}{_more(detail)}")
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise NotReady(f"{what} was not ready within {timeout:.0f} s{_more(detail)}")
        time.sleep(interval)


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """Whether `url` answers 200 now (a server still starting does not)."""
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def _more(detail: Callable[[], str]) -> str:
    text = detail()
    return f":\n{text}" if text else ""
