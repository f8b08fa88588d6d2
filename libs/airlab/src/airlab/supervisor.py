"""The embedded stack's supervisor: `python -m airlab.supervisor WORKSPACE`, started by `airlab up`.

It watches every process of the stack (nats-server, the LLM server, the five services) and starts again
whatever died, with the same command, environment and port, after a backoff that doubles while a process
keeps dying (1 s up to 30 s) and resets once it has run for a minute. Each restart is recorded in the
stack's state file (new pid, restart count), so `airlab status` shows it and `airlab down` stops what
runs now. On SIGTERM it stops watching and exits; it never stops the stack itself."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from airlab import stack
from airlab.processes import spawn

log = logging.getLogger("airlab.supervisor")
FIRST_DELAY, MAX_DELAY, STABLE_SECONDS = 1.0, 30.0, 60.0


@dataclass
class Backoff:
    delay: float = FIRST_DELAY
    not_before: float = 0.0
    started: float = 0.0


def _reap() -> None:
    """Collect the exit status of children that died (the processes this supervisor started again)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def restart(proc: stack.Proc) -> None:
    process = spawn(proc.command, log_file=Path(proc.log), detach=True, env={**os.environ, **proc.env})
    proc.pid, proc.started = process.pid, stack._start_ticks(process.pid) or 0
    proc.restarts += 1


def watch(workspace: Path, *, poll: float = 0.5) -> None:
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    backoff: dict[str, Backoff] = {}
    while not stopping:
        _reap()
        state = stack.load_state(workspace)
        if state is None:  # the stack is down
            return
        now, changed = time.monotonic(), False
        for proc in state.processes:
            if proc.name == "supervisor" or not proc.command:
                continue
            timing = backoff.setdefault(proc.name, Backoff(started=now))
            if stack._alive(proc):
                if now - timing.started > STABLE_SECONDS:
                    timing.delay = FIRST_DELAY
                continue
            if now < timing.not_before or stopping:
                continue
            log.warning("%s (pid %d) is not running: starting it again", proc.name, proc.pid)
            try:
                restart(proc)
            except OSError:
                log.exception("could not start %s again", proc.name)
            timing.started, timing.not_before = now, now + timing.delay
            timing.delay = min(timing.delay * 2, MAX_DELAY)
            changed = True
        if changed and stack.load_state(workspace) is not None:  # not while `airlab down` removes it
            stack._save_state(state)
        time.sleep(poll)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    watch(Path(sys.argv[1]))


if __name__ == "__main__":
    main()
