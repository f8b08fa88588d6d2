"""The lab under faults, as its users run it: several researches at once on the embedded stack with two
or more runners, while a chaos loop SIGKILLs a random process of the stack (any service, any runner,
nats-server, the dashboard) at random intervals and the stack's supervisor starts it again. At the end,
what happened, from the researches' own events:

- researches started, completed, failed;
- experiments requested, finished, lost (requested in a completed research with no end) and run twice
  (finished more than once);
- kills by process and the supervisor's restarts;
- the longest time no research made progress;
- the p50 and p99 of the manager's reaction: from an event to the first event the manager published in
  answer (its handling, queueing and any redelivery after a kill included);
- whether a backup taken halfway restores to a lab that completes its researches: after the soak, the
  lab's bus storage and memory are thrown away (the artifact store stays, as a backup's home does), a
  fresh stack starts, the backup is restored, and the researches that were running when it was taken must
  complete, none of their experiments finishing twice.

The LLM is a fake server by default (named as such: the soak is about the lab's plumbing, not a model's
mood); `use_local_model` runs the local model instead. Every loop here is bounded in count and time.
Used by `make soak` (scripts/soak.py) and, short, by tests/test_soak.py."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from airlab import backup, stack
from airlab.client import Lab
from airlab.events import body_of
from airlab.settings import Settings
from airlab.v1 import loop_pb2, research_pb2

ENDED = (
    research_pb2.RESEARCH_STATE_COMPLETED,
    research_pb2.RESEARCH_STATE_FAILED,
    research_pb2.RESEARCH_STATE_CANCELLED,
)
GOALS = (
    "beat the logistic-regression baseline on wine",
    "beat the logistic-regression baseline on breast cancer",
    "beat the logistic-regression baseline on digits",
)
# Processes the chaos loop may kill: the supervisor is left alone (it is what starts the others again).
SPARED = ("supervisor",)
BACKUP_NAME = "soak-halfway"
FAKE_IDEA = {
    "title": "Random forest",
    "change": "replace the logistic regression with a random forest",
    "expected_effect": "a higher score on non-linear boundaries",
    "rationale": "trees capture interactions a linear model misses",
    "search_space": {"n_estimators": {"low": 10, "high": 200, "integer": True}},
}
FAKE_CODE = """```python
def build_model(params, seed):
    return ensemble.RandomForestClassifier(n_estimators=int(params["n_estimators"]), random_state=seed)
```"""


@dataclass
class SoakConfig:
    # Researches kept running at once for `minutes` (one that ends is followed by a new one), then the last
    # ones are waited for (up to `grace_minutes`).
    researches: int = 10
    runners: int = 2
    kills: int = 100
    minutes: float = 30.0
    grace_minutes: float = 10.0
    # Experiments per research (the baseline's runs included).
    budget: int = 8
    use_local_model: bool = False
    seed: int = 0
    workspace: Path | None = None
    # Take a backup halfway and check that it restores to a lab that completes its researches.
    check_backup: bool = True


@dataclass
class Ends:
    """How researches ended: completed, failed ("<id>: <reason>"), not ended ("<id>: <state>")."""

    completed: int = 0
    failed: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)

    def count(self, research_id: str, research: research_pb2.Research) -> None:
        if research.state == research_pb2.RESEARCH_STATE_COMPLETED:
            self.completed += 1
        elif research.state in ENDED:
            self.failed.append(f"{research_id}: {research.state_reason}")
        else:
            self.unfinished.append(f"{research_id}: {research_pb2.ResearchState.Name(research.state)}")


@dataclass
class RestoreCheck(Ends):
    backup_at_seconds: float = 0.0
    running: int = 0  # researches running when the backup was taken
    requests_sent: int = 0
    run_twice: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""  # why the check could not be made

    @property
    def holds(self) -> bool:
        return not self.error and self.completed == self.running and not self.run_twice

    def line(self) -> str:
        if self.error:
            return f"backup check: {self.error}"
        return (
            f"backup taken at {self.backup_at_seconds:.0f} s with {self.running} researches running: "
            f"restored into a fresh stack, {self.requests_sent} awaited requests sent again; "
            f"{self.completed} of {self.running} completed in {self.seconds:.0f} s, "
            f"{len(self.failed)} failed, {len(self.unfinished)} unfinished, "
            f"{len(self.run_twice)} experiments run twice"
        )


@dataclass
class SoakSummary(Ends):
    started: int = 0
    requested: int = 0
    finished: int = 0
    lost: list[str] = field(default_factory=list)
    run_twice: list[str] = field(default_factory=list)
    kills: dict[str, int] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    longest_stall_seconds: float = 0.0
    reaction_p50_ms: float = 0.0
    reaction_p99_ms: float = 0.0
    wall_seconds: float = 0.0
    restore: RestoreCheck | None = None

    @property
    def holds(self) -> bool:
        """Every research completed, no experiment lost or run twice, and the backup (when one was taken)
        restored to a lab that completed its researches."""
        soaked = (
            self.completed == self.started and not self.lost and not self.run_twice and not self.unfinished
        )
        return soaked and (self.restore is None or self.restore.holds)

    def lines(self) -> list[str]:
        kills = ", ".join(f"{name} {n}" for name, n in sorted(self.kills.items())) or "none"
        restarts = ", ".join(f"{name} {n}" for name, n in sorted(self.restarts.items()) if n) or "none"
        restore = self.restore or RestoreCheck()
        return [
            f"researches: {self.started} started, {self.completed} completed, {len(self.failed)} failed, "
            f"{len(self.unfinished)} unfinished",
            f"experiments: {self.requested} requested, {self.finished} finished, {len(self.lost)} lost, "
            f"{len(self.run_twice)} run twice",
            f"kills ({sum(self.kills.values())}): {kills}",
            f"restarts by the supervisor: {restarts}",
            f"longest time no research made progress: {self.longest_stall_seconds:.1f} s",
            f"manager's reaction (event -> its answer): p50 {self.reaction_p50_ms:.0f} ms, "
            f"p99 {self.reaction_p99_ms:.0f} ms",
            f"wall time: {self.wall_seconds:.0f} s",
            *([self.restore.line()] if self.restore else []),
            *(f"failed: {line}" for line in self.failed),
            *(f"lost: {line}" for line in self.lost),
            *(f"run twice: {line}" for line in self.run_twice),
            *(f"after the restore, failed: {line}" for line in restore.failed),
            *(f"after the restore, unfinished: {line}" for line in restore.unfinished),
            *(f"after the restore, run twice: {line}" for line in restore.run_twice),
        ]


class Chaos:
    """Kills a random process of the stack at random intervals, `kills` times at most, until stopped."""

    def __init__(self, workspace: Path, kills: int, seconds: float, rng: random.Random) -> None:
        self.workspace = workspace
        self.kills_left = kills
        # Spread over the expected run, a little faster, so the kills land while researches run.
        self.mean_interval = max(seconds / max(kills, 1) * 0.8, 0.2)
        self.rng = rng
        self.killed: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while self.kills_left > 0 and not self._stop.wait(self.rng.uniform(0.2, 1.8) * self.mean_interval):
            state = stack.load_state(self.workspace)
            if state is None:
                return
            alive = [p for p in state.processes if p.name not in SPARED and p.command and stack._alive(p)]
            if not alive:
                continue
            victim = self.rng.choice(alive)
            try:
                os.kill(victim.pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            self.killed[victim.name] += 1
            self.kills_left -= 1


def _environment(config: SoakConfig, llm_url: str) -> dict[str, str]:
    env = {
        # Quick enough to notice a dead runner within a few seconds of a kill.
        "AIRLAB_RUNNER__PRESENCE_TTL_SECONDS": "6",
        "AIRLAB_RESEARCH__STRATEGY__PATIENCE_ROUNDS": "1",
    }
    if llm_url:
        env["AIRLAB_LLM_URLS"] = json.dumps({"local-cpu": llm_url})
    return env


def run(config: SoakConfig, report: Callable[[str], None] = print) -> SoakSummary:
    """Run the soak; the stack is stopped at the end, whatever happened."""
    from airlab.testing import FakeOpenAIServer, agent_replies  # the fake LLM server (a dev dependency)

    rng = random.Random(config.seed)
    workspace = config.workspace or Path(tempfile.mkdtemp(prefix="airlab-soak-"))
    fake = None if config.use_local_model else FakeOpenAIServer(responder=agent_replies(FAKE_IDEA, FAKE_CODE))
    previous = {k: os.environ.get(k) for k in _environment(config, "x")}
    os.environ.update(_environment(config, fake.url if fake else ""))
    began = time.monotonic()
    summary = SoakSummary()
    settings = Settings(workspace=workspace)
    halfway = _Halfway(settings, began + config.minutes * 30, report) if config.check_backup else None
    try:
        try:
            stack.up(settings, report=report, runners=config.runners)
            chaos = Chaos(workspace, config.kills, config.minutes * 60, rng)
            report(
                f"soak: {config.researches} researches at once, {config.runners} runners, "
                f"up to {config.kills} kills"
            )
            with Lab.connect(workspace=workspace) as lab:
                chaos.start()
                try:
                    ids, summary.longest_stall_seconds = _keep_running(lab, config, began, report, halfway)
                finally:
                    chaos.stop()
                summary.started = len(ids)
                summary.kills = dict(chaos.killed)
                _tally(lab, ids, summary)
            summary.restarts = _restarts_once_all_run(workspace)
        finally:
            stack.down(settings)
        if halfway is not None:
            summary.restore = halfway.check(config, began, report)
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if fake is not None:
            fake.close()
    summary.wall_seconds = time.monotonic() - began
    return summary


def _restarts_once_all_run(workspace: Path, timeout: float = 60.0) -> dict[str, int]:
    """The supervisor's restarts by process, once every process runs again (or the timeout passed: the
    supervisor backs off up to 30 s from a process it saw die again and again)."""
    deadline = time.monotonic() + timeout
    while True:
        state = stack.load_state(workspace)
        if state is None:
            return {}
        if all(stack._alive(p) for p in state.processes) or time.monotonic() > deadline:
            return {p.name: p.restarts for p in state.processes}
        time.sleep(0.5)


def _get(lab: Lab, research_id: str) -> research_pb2.Research | None:
    """The research, or None while the manager cannot answer (it may have just been killed)."""
    try:
        return lab.get(research_id)
    except Exception:
        return None


def _start(lab: Lab, config: SoakConfig, number: int) -> str:
    """Start research `number`; retried while the manager is down (the request id makes it start once)."""
    goal = GOALS[number % len(GOALS)]
    for _ in range(120):
        try:
            return lab.start(goal, max_experiments=config.budget, request_id=f"soak-{number}").id
        except Exception:
            time.sleep(0.5)
    raise RuntimeError(f"could not start research {number}: the manager did not answer for a minute")


def _keep_running(
    lab: Lab, config: SoakConfig, began: float, report: Callable[[str], None], halfway: _Halfway | None
) -> tuple[list[str], float]:
    """Keep `config.researches` running until `config.minutes` passed, then wait for them to end (up to
    the grace time). The researches started, and the longest stretch in which none made progress."""
    ids = [_start(lab, config, n) for n in range(config.researches)]
    busy_until = began + config.minutes * 60
    deadline = busy_until + config.grace_minutes * 60
    seen: dict[str, tuple[int, int, int]] = {}
    last_progress = time.monotonic()
    longest = last_report = 0.0
    while time.monotonic() < deadline:
        states = {rid: _get(lab, rid) for rid in ids}
        now = time.monotonic()
        for rid, research in states.items():
            if research is None:
                continue
            mark = (research.state, research.progress.experiments_finished, research.progress.round)
            if seen.get(rid) != mark:
                seen[rid], last_progress = mark, now
        running = [rid for rid, r in states.items() if r is None or r.state not in ENDED]
        if now < busy_until:
            for _ in range(config.researches - len(running)):
                ids.append(_start(lab, config, len(ids)))
                last_progress = time.monotonic()
        elif not running:
            break
        longest = max(longest, now - last_progress)
        if halfway is not None:
            halfway.take_when_due()
        if now - last_report > 30:
            ended = len(ids) - len(running)
            report(f"soak: {ended}/{len(ids)} researches ended, longest stall so far {longest:.0f} s")
            last_report = now
        time.sleep(1.0)
    return ids, longest


class _Halfway:
    """The backup taken halfway through the soak (under the chaos: retried while the bus is down), and the
    check that it restores to a lab that completes the researches it holds as running."""

    def __init__(self, settings: Settings, due: float, report: Callable[[str], None]) -> None:
        self.settings = settings
        self.due = due
        self.report = report
        self.taken_at = 0.0
        self.error = ""

    def take_when_due(self) -> None:
        if self.taken_at or self.error or time.monotonic() < self.due:
            return
        for _ in range(30):
            state = stack.load_state(self.settings.workspace)
            try:
                if state is None:
                    raise RuntimeError("the stack is not running")
                asyncio.run(backup.back_up_lab(self.settings, state.nats_url, BACKUP_NAME))
            except Exception as exc:  # a kill may land on nats-server meanwhile: try again
                self.error = f"the backup could not be taken: {type(exc).__name__}: {exc}"
                time.sleep(1.0)
                continue
            self.taken_at, self.error = time.monotonic(), ""
            self.report(f"soak: took backup {BACKUP_NAME}")
            return

    def check(self, config: SoakConfig, began: float, report: Callable[[str], None]) -> RestoreCheck:
        result = RestoreCheck(backup_at_seconds=self.taken_at - began if self.taken_at else 0.0)
        if not self.taken_at:
            result.error = self.error or "no backup was taken (the soak ended before halfway)"
            return result
        workspace = self.settings.workspace.resolve()
        # The bus's storage and the memory are lost; the artifact store, the backup's home, is not.
        shutil.rmtree(workspace / "nats", ignore_errors=True)
        shutil.rmtree(self.settings.resolved_memory_url(), ignore_errors=True)
        try:
            state = stack.up(self.settings, report=report, runners=config.runners)
            restored = asyncio.run(backup.restore_lab(self.settings, state.nats_url, BACKUP_NAME))
            result.running, result.requests_sent = len(restored.running), restored.requests_sent
            report(f"soak: restored {BACKUP_NAME}; {result.running} researches were running")
            started = time.monotonic()
            with Lab.connect(workspace=workspace) as lab:
                deadline = started + config.grace_minutes * 60
                while time.monotonic() < deadline:
                    states = [_get(lab, rid) for rid in restored.running]
                    if all(r is not None and r.state in ENDED for r in states):
                        break
                    time.sleep(1.0)
                result.seconds = time.monotonic() - started
                for rid in restored.running:
                    result.count(rid, _settled(lab, rid))
                    events = list(lab.events(rid, follow=False, timeout=60))
                    finished = Counter(
                        body_of(e).experiment_id for e in events if e.type == "experiment.finished"
                    )
                    result.run_twice += [f"{rid}/{x}" for x, n in sorted(finished.items()) if n > 1]
        except Exception as exc:
            result.error = f"the restore check failed: {type(exc).__name__}: {exc}"
        finally:
            stack.down(self.settings)
        return result


def _tally(lab: Lab, ids: list[str], summary: SoakSummary) -> None:
    reactions: list[float] = []
    for rid in ids:
        research = _settled(lab, rid)
        summary.count(rid, research)
        events = list(lab.events(rid, follow=False, timeout=60))
        requested = {
            body_of(e).experiment_id
            for e in events
            if e.type == "experiment.requested" and body_of(e).kind != loop_pb2.EXPERIMENT_KIND_SMOKE
        }
        ends = Counter(
            body_of(e).experiment_id
            for e in events
            if e.type in ("experiment.finished", "experiment.failed", "experiment.cancelled")
        )
        finished = Counter(body_of(e).experiment_id for e in events if e.type == "experiment.finished")
        summary.requested += len(requested)
        summary.finished += sum(1 for x in requested if finished[x])
        if research.state == research_pb2.RESEARCH_STATE_COMPLETED:
            summary.lost += [f"{rid}/{x}" for x in sorted(requested) if not ends[x]]
        summary.run_twice += [f"{rid}/{x}" for x in sorted(requested) if finished[x] > 1]
        times = {e.id: e.time.ToNanoseconds() for e in events}
        answered: set[str] = set()
        for event in events:  # in stream order: the first answer to each cause
            cause = event.correlation_id
            if event.source == "manager" and cause in times and cause not in answered:
                answered.add(cause)
                reactions.append((event.time.ToNanoseconds() - times[cause]) / 1e6)
    if reactions:
        summary.reaction_p50_ms = statistics.median(reactions)
        summary.reaction_p99_ms = sorted(reactions)[min(len(reactions) - 1, int(0.99 * len(reactions)))]


def _settled(lab: Lab, research_id: str, attempts: int = 30) -> research_pb2.Research:
    for _ in range(attempts):
        research = _get(lab, research_id)
        if research is not None:
            return research
        time.sleep(1.0)
    raise RuntimeError(f"the manager did not answer for research {research_id}")
