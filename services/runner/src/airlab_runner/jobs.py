"""The runner's logic: a durable queue of experiment jobs, run in sandboxes within this host's limits.

Jobs are records in a JetStream KV bucket, so the queue survives a restart: queued jobs stay queued, and a
job that was running when the runner died is queued again (or reported failed after max_attempts).
Everything a job produces is stored as artifacts before its final state is announced."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import logging
import os
import shutil
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats.js.errors
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp
from nats.js.kv import KeyValue

from airlab.blobs import ArtifactStore, experiment_key
from airlab.cpus import CpuPlan, SlotCpus, available_cores
from airlab.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from airlab.events import body_type, follow_up_id, make_event, now_timestamp
from airlab.ids import check_id, derived_id, new_id
from airlab.llm.vllm import VllmSleeper
from airlab.settings import RunnerSettings
from airlab.state import Change, StateStore
from airlab.v1 import events_pb2, runner_pb2
from airlab_runner import contract
from airlab_runner.datasets import S3Datasets
from airlab_runner.feed import Feed
from airlab_runner.gpus import GpuLeases
from airlab_runner.sandbox import Limits, Sandbox, SandboxJob, SandboxResult
from airlab_runner.spec import check_spec, resolved_resources

log = logging.getLogger(__name__)

JOB_BUCKET = "airlab_jobs"
# Researches that were cancelled: their experiments are refused, on every runner.
CANCELLED_BUCKET = "airlab_cancelled_researches"
State = runner_pb2.JobState
TERMINAL = {runner_pb2.JOB_STATE_SUCCEEDED, runner_pb2.JOB_STATE_FAILED, runner_pb2.JOB_STATE_CANCELLED}
MAX_PROGRESS_EVENTS = 500
LOG_FILE = "output.log"


def log_key(attempt: int) -> str:
    """Where an attempt's output goes, under the experiment's prefix (each attempt keeps its own)."""
    return f"logs/attempt-{attempt}.log"


@dataclass(frozen=True)
class Capacity:
    cores: int
    memory_mib: int
    # The longest wall-clock limit a job may ask for (runner.max_job_wall_seconds).
    wall_seconds: int

    @classmethod
    def of_host(cls, wall_seconds: int | None = None) -> Capacity:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") >> 20
        if wall_seconds is None:
            wall_seconds = RunnerSettings.model_fields["max_job_wall_seconds"].default
        return cls(len(available_cores()), memory, wall_seconds)


def check_capacity(resources: runner_pb2.Resources, capacity: Capacity, *, on_host: bool = True) -> None:
    """Refuse, naming the field, a job that asks for more time than a job may have here, or (when it runs
    on this host) more cores or memory than the host has."""
    if on_host and resources.cpu_millis > capacity.cores * 1000:
        raise InvalidArgument(
            "spec.resources.cpu_millis",
            f"{resources.cpu_millis} asked for; this host has {capacity.cores} core(s)",
        )
    if on_host and resources.memory_mib > capacity.memory_mib:
        raise InvalidArgument(
            "spec.resources.memory_mib",
            f"{resources.memory_mib} MiB asked for; this host has {capacity.memory_mib} MiB",
        )
    if resources.wall_seconds > capacity.wall_seconds:
        raise InvalidArgument(
            "spec.resources.wall_seconds",
            f"{resources.wall_seconds} s asked for; a job may have at most {capacity.wall_seconds} s here",
        )


@dataclass
class RunnerConfig:
    host: str
    work_root: Path
    backend: str = "local"
    max_concurrent: int = 2
    max_log_bytes: int = 10 << 20
    max_output_bytes: int = 1 << 30
    max_attempts: int = 2
    poll_seconds: float = 0.5
    lease_ttl: float = 30.0
    # How this host's cores are shared with a local LLM server; None: jobs are not pinned.
    cpu_plan: CpuPlan | None = None
    # The most one job may ask for here (a cluster checks CPU and memory against its own quotas).
    capacity: Capacity = field(default_factory=Capacity.of_host)


def job_id_for(research_id: str, experiment_id: str) -> str:
    """Each experiment of a research runs as one job, whose id follows from theirs."""
    return derived_id("j", f"{research_id}/{experiment_id}")


def code_digest(files: dict[str, bytes]) -> str:
    """A checksum of a spec's files (paths and contents); empty for a spec that refers to stored code."""
    if not files:
        return ""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
    return digest.hexdigest()


def _job_of(data: dict[str, Any]) -> runner_pb2.Job:
    return json_format.ParseDict(data["job"], runner_pb2.Job(), ignore_unknown_fields=True)


def _data_of(job: runner_pb2.Job, **extra: Any) -> dict[str, Any]:
    return {"job": json_format.MessageToDict(job, preserving_proto_field_name=True), **extra}


class LogSink:
    """The job's combined output: kept in a host file the job cannot reach, up to a size limit."""

    def __init__(self, path: Path, max_bytes: int, on_line: Callable[[str], None]) -> None:
        self.handle = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.max_bytes = max_bytes
        self.written = 0
        self.truncated = 0
        self.on_line = on_line

    def __call__(self, line: str) -> None:
        size = len(line.encode()) + 1
        if self.written + size > self.max_bytes:
            self.truncated += 1
            return
        self.written += size
        self.handle.write(line + "\n")
        self.on_line(line)

    def close(self) -> None:
        if self.truncated:
            self.handle.write(
                f"[airlab: {self.truncated} more lines dropped at the {self.max_bytes >> 20} MiB limit]\n"
            )
        self.handle.close()


class Runner:
    def __init__(
        self,
        store: StateStore,
        artifacts: ArtifactStore,
        sandboxes: dict[str, Sandbox],
        config: RunnerConfig,
        *,
        leases: GpuLeases | None = None,
        sleeper: VllmSleeper | None = None,
        source: str = "runner",
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.sandboxes = sandboxes
        self.config = config
        self.leases = leases
        self.sleeper = sleeper
        self.source = source
        self.s3_datasets: S3Datasets | None = None
        # Set once the bus is up (main.setup); None: cancellations are not remembered (unit use).
        self.cancelled_researches: KeyValue | None = None
        self.feeds: dict[str, Feed] = {}
        self.cancels: dict[str, threading.Event] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        # The CPU slot (index into the host's CPU plan) of each running job.
        self.slots: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._stopping = False

    def _event(self, kind: str, job: runner_pb2.Job, cause: str, **payload: Any) -> events_pb2.Event:
        # Every experiment.* body carries the job and experiment ids; the rest is the kind's own.
        body = body_type(f"experiment.{kind}")(job_id=job.id, experiment_id=job.spec.experiment_id, **payload)
        return make_event(
            f"experiment.{kind}", job.spec.research_id, body,
            event_id=follow_up_id(cause, kind), correlation_id=cause, source=self.source,
        )  # fmt: skip

    # -- commands -------------------------------------------------------------------------------------------

    async def _was_cancelled(self, research_id: str) -> bool:
        if self.cancelled_researches is None or not research_id:
            return False
        try:
            await self.cancelled_researches.get(research_id)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return False
        return True

    async def submit(self, spec: runner_pb2.ExperimentSpec) -> runner_pb2.Job:
        for index, mount in enumerate(spec.datasets):
            if mount.source.startswith("s3://"):
                if self.s3_datasets is None:
                    raise FailedPrecondition("this runner cannot fetch S3 datasets")
                field = f"spec.datasets[{index}].source"
                mount.source = await asyncio.to_thread(self.s3_datasets.local_copy, mount.source, field)
        check_spec(spec, tuple(self.sandboxes))
        if await self._was_cancelled(spec.research_id):
            raise FailedPrecondition(f"research {spec.research_id} was cancelled: its experiments do not run")
        stored = runner_pb2.ExperimentSpec()
        stored.CopyFrom(spec)
        stored.ClearField("files")
        if spec.code_ref:
            stored.code_ref = spec.code_ref.rstrip("/") + "/"
        stored.backend = spec.backend or self.config.backend
        stored.resources.CopyFrom(resolved_resources(spec.resources))
        # Local and docker jobs take GPUs from this host's inventory; a cluster places its own.
        on_host = stored.backend != "kubernetes"
        if (
            on_host
            and stored.resources.gpus
            and (self.leases is None or stored.resources.gpus > len(self.leases.inventory))
        ):
            have = len(self.leases.inventory) if self.leases else 0
            raise InvalidArgument(
                "spec.resources.gpus", f"{stored.resources.gpus} asked for; this runner has {have}"
            )
        check_capacity(stored.resources, self.config.capacity, on_host=on_host)
        job_id = job_id_for(spec.research_id, spec.experiment_id)
        digest = code_digest(dict(spec.files))
        existing = await self.store.find(job_id)
        if existing is not None:
            return await self._resubmitted(existing.data, stored, digest)
        if spec.files:
            stored.code_ref = experiment_key(spec.research_id, spec.experiment_id, "code") + "/"
            await asyncio.to_thread(self._store_code, stored.code_ref, dict(spec.files))
        elif not await asyncio.to_thread(self.artifacts.exists, stored.code_ref + spec.entrypoint):
            raise InvalidArgument("spec.code_ref", f"holds no {spec.entrypoint!r}")
        job = runner_pb2.Job(
            id=job_id, spec=stored, state=runner_pb2.JOB_STATE_QUEUED, submitted_at=now_timestamp()
        )
        event = self._event("queued", job, f"{job_id}.submit")
        try:
            await self.store.create(job_id, _data_of(job, attempts=0, host="", code_sha256=digest), [event])
        except AlreadyExists:
            return await self._resubmitted((await self.store.get(job_id)).data, stored, digest)
        if await self._was_cancelled(stored.research_id):
            # The research was cancelled while this job was being stored: it never starts.
            with contextlib.suppress(FailedPrecondition):
                await self.cancel(job_id)
        self._wake.set()
        return await self.get(job_id)

    async def _resubmitted(
        self, data: dict[str, Any], spec: runner_pb2.ExperimentSpec, digest: str
    ) -> runner_pb2.Job:
        """One experiment is one job: the same spec again returns that job (a retried Submit), another
        spec under the same experiment id is refused."""
        job = _job_of(data)
        if spec.code_ref and spec.code_ref != job.spec.code_ref:
            raise AlreadyExists(
                f"experiment {spec.experiment_id} of {spec.research_id} was submitted as job {job.id}"
            )
        compared = runner_pb2.ExperimentSpec()
        compared.CopyFrom(spec)
        compared.code_ref = job.spec.code_ref
        if compared != job.spec or digest != data.get("code_sha256", ""):
            raise AlreadyExists(
                f"experiment {spec.experiment_id} of {spec.research_id} was submitted as job {job.id} "
                "with another spec: give a new experiment id"
            )
        return await self.get(job.id)

    def _store_code(self, prefix: str, files: dict[str, bytes]) -> None:
        for path, content in files.items():
            self.artifacts.put(
                prefix + path, content, content_type="text/plain" if path.endswith(".py") else None
            )

    async def cancel(self, job_id: str) -> runner_pb2.Job:
        check_id("id", job_id, "j")
        cause = new_id("c")

        def cancel(data: dict[str, Any]) -> Change:
            job = _job_of(data)
            if job.state in TERMINAL:
                raise FailedPrecondition(f"job {job_id} already ended ({State.Name(job.state)})")
            if job.state == runner_pb2.JOB_STATE_QUEUED:
                job.state = runner_pb2.JOB_STATE_CANCELLED
                job.reason = "cancelled before it started"
                job.finished_at.CopyFrom(now_timestamp())
                return Change({**data, **_data_of(job)}, [self._event("cancelled", job, cause)])
            return Change({**data, "cancel_requested": True})  # the running task stops it

        await self.store.mutate(job_id, cancel, cause_id=cause)
        if job_id in self.cancels:
            self.cancels[job_id].set()
        return await self.get(job_id)

    async def cancel_research(self, research_id: str) -> builtins.list[str]:
        """Cancel every job of a cancelled research that this runner can stop: the queued ones (whichever
        runner gets there first), and the running ones it runs itself. Every runner handles the same
        event, so each stops its own. Returns the ids of the jobs it cancelled."""
        if self.cancelled_researches is not None:
            # Remembered first, so an experiment asked for before the cancellation is refused after it.
            await self.cancelled_researches.put(research_id, b"cancelled")
        cancelled = []
        for job, _ in await self._all():
            if job.spec.research_id != research_id or job.state in TERMINAL:
                continue
            if job.state == runner_pb2.JOB_STATE_RUNNING and job.id not in self.cancels:
                continue  # another runner's: it cancels it on the same event
            with contextlib.suppress(FailedPrecondition):  # it ended meanwhile
                await self.cancel(job.id)
                cancelled.append(job.id)
        return cancelled

    # -- queries --------------------------------------------------------------------------------------------

    async def _all(self) -> builtins.list[tuple[runner_pb2.Job, dict[str, Any]]]:
        found = []
        for key in await self.store.keys():
            record = await self.store.find(key)
            if record is not None:
                found.append((_job_of(record.data), record.data))
        return found

    @staticmethod
    def _queue(jobs: builtins.list[runner_pb2.Job]) -> builtins.list[str]:
        queued = [j for j in jobs if j.state == runner_pb2.JOB_STATE_QUEUED]
        return [j.id for j in sorted(queued, key=lambda j: (j.submitted_at.ToNanoseconds(), j.id))]

    async def get(self, job_id: str) -> runner_pb2.Job:
        check_id("id", job_id, "j")
        job = _job_of((await self.store.get(job_id)).data)
        if job.state == runner_pb2.JOB_STATE_QUEUED:
            queue = self._queue([j for j, _ in await self._all()])
            job.queue_position = queue.index(job_id) + 1 if job_id in queue else 0
        return job

    async def list(self, research_id: str = "") -> list[runner_pb2.Job]:
        jobs = [j for j, _ in await self._all()]
        queue = self._queue(jobs)
        for job in jobs:
            job.queue_position = queue.index(job.id) + 1 if job.id in queue else 0
        jobs = [j for j in jobs if not research_id or j.spec.research_id == research_id]
        return sorted(jobs, key=lambda j: (j.submitted_at.ToNanoseconds(), j.id))

    async def watch(self, job_id: str) -> AsyncIterator[runner_pb2.JobUpdate]:
        job = await self.get(job_id)
        while job.id not in self.feeds and job.state not in TERMINAL:
            await asyncio.sleep(0.1)  # queued: wait until it starts here
            job = await self.get(job_id)
        feed = self.feeds.get(job_id)
        if feed is not None:
            async for update in feed.follow():
                yield update
            return
        data = (await self.store.get(job_id)).data
        for update in await asyncio.to_thread(self._stored_updates, job, data):
            yield update
        yield runner_pb2.JobUpdate(final=await self.get(job_id))

    def _stored_updates(
        self, job: runner_pb2.Job, data: dict[str, Any]
    ) -> builtins.list[runner_pb2.JobUpdate]:
        """A finished job's updates, from its stored log and metrics."""
        updates = []
        prefix = experiment_key(job.spec.research_id, job.spec.experiment_id)
        attempt = int(data.get("attempts", 1))
        if self.artifacts.exists(f"{prefix}/{log_key(attempt)}"):
            for line in (
                self.artifacts.get(f"{prefix}/{log_key(attempt)}").decode(errors="replace").splitlines()
            ):
                updates.append(runner_pb2.JobUpdate(log_line=line))
        if self.artifacts.exists(f"{prefix}/{contract.METRICS_FILE}"):
            lines = (
                self.artifacts.get(f"{prefix}/{contract.METRICS_FILE}").decode(errors="replace").splitlines()
            )
            for number, line in enumerate(lines, start=1):
                with contextlib.suppress(contract.ContractError):
                    for point in contract.parse_metric_line(line, number):
                        metric = runner_pb2.MetricPoint(name=point.name, value=point.value, step=point.step)
                        updates.append(runner_pb2.JobUpdate(metric=metric))
        return updates

    # -- scheduling -----------------------------------------------------------------------------------------

    async def recover(self) -> None:
        """After a restart: publish committed events, and queue again (or fail) the jobs this host was
        running when it died."""
        await self.store.flush_all()
        for job, data in await self._all():
            if job.state != runner_pb2.JOB_STATE_RUNNING or data.get("host") != self.config.host:
                continue
            attempts = int(data.get("attempts", 0))
            cause = f"{job.id}.recover.{attempts}"

            def requeue(data: dict[str, Any], attempts: int = attempts, cause: str = cause) -> Change | None:
                job = _job_of(data)
                if job.state != runner_pb2.JOB_STATE_RUNNING:
                    return None
                if attempts < self.config.max_attempts and not data.get("cancel_requested"):
                    job.state = runner_pb2.JOB_STATE_QUEUED
                    job.reason = f"queued again: the runner stopped while attempt {attempts} ran"
                    return Change(
                        {**data, **_data_of(job)}, [self._event("queued", job, cause, requeued=True)]
                    )
                job.state = runner_pb2.JOB_STATE_FAILED
                job.reason = f"the runner stopped while it ran, {attempts} time(s)"
                job.finished_at.CopyFrom(now_timestamp())
                return Change(
                    {**data, **_data_of(job)}, [self._event("failed", job, cause, reason=job.reason)]
                )

            await self.store.mutate(job.id, requeue, cause_id=cause)
            sandbox = self.sandboxes.get(job.spec.backend)
            if sandbox is not None:
                await asyncio.to_thread(sandbox.cleanup, job.id)
            shutil.rmtree(self.config.work_root / job.id, ignore_errors=True)
            if self.leases is not None:
                await self.leases.release(job.id, list(data.get("gpus", [])))

    async def run(self) -> None:
        """The scheduler: start queued jobs, oldest first, within the concurrency limit and free GPUs."""
        while not self._stopping:
            try:
                await self._schedule()
            except Exception:
                log.exception("scheduling failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.poll_seconds)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop starting jobs; cancel running ones (they are reported cancelled)."""
        self._stopping = True
        self._wake.set()
        for event in self.cancels.values():
            event.set()
        if self.tasks:
            await asyncio.wait(list(self.tasks.values()), timeout=timeout)

    async def _schedule(self) -> None:
        jobs = await self._all()
        by_id = {job.id: (job, data) for job, data in jobs}
        for job_id in self._queue([job for job, _ in jobs]):
            if len(self.tasks) >= self.config.max_concurrent or self._stopping:
                return
            job, _ = by_id[job_id]
            gpus: list[str] = []
            if job.spec.resources.gpus and job.spec.backend != "kubernetes":  # a cluster places its own GPUs
                assert self.leases is not None
                acquired = await self.leases.try_acquire(job_id, job.spec.resources.gpus)
                if acquired is None:
                    continue  # wait for GPUs; jobs behind it that fit may start
                gpus = acquired
            if not await self._claim(job_id, gpus):
                if self.leases is not None:
                    await self.leases.release(job_id, gpus)
                continue
            self.slots[job_id] = min(set(range(self.config.max_concurrent)) - set(self.slots.values()))
            self.tasks[job_id] = asyncio.create_task(self._execute(job_id, gpus), name=f"job:{job_id}")

    async def _claim(self, job_id: str, gpus: builtins.list[str]) -> bool:
        def claim(data: dict[str, Any]) -> Change | None:
            job = _job_of(data)
            if job.state != runner_pb2.JOB_STATE_QUEUED:
                return None
            attempts = int(data.get("attempts", 0)) + 1
            job.state = runner_pb2.JOB_STATE_RUNNING
            job.started_at.CopyFrom(now_timestamp())
            job.reason = ""
            event = self._event("started", job, f"{job_id}.start.{attempts}", gpus=gpus, attempt=attempts)
            return Change(
                {**data, **_data_of(job), "attempts": attempts, "host": self.config.host, "gpus": gpus},
                [event],
            )

        _, changed = await self.store.mutate(job_id, claim)
        return changed

    # -- running a job --------------------------------------------------------------------------------------

    async def _execute(self, job_id: str, gpus: builtins.list[str]) -> None:
        feed = self.feeds[job_id] = Feed()
        cancel = self.cancels[job_id] = threading.Event()
        record = await self.store.get(job_id)
        job, attempt = _job_of(record.data), int(record.data.get("attempts", 1))
        if record.data.get("cancel_requested"):
            cancel.set()
        run_dir = self.config.work_root / job_id
        heartbeat: asyncio.Task[None] | None = None
        woken: list[str] = []
        try:
            workdir = await asyncio.to_thread(self._prepare, job, run_dir)
            if gpus and self.leases is not None:
                heartbeat = asyncio.create_task(self._heartbeat(job_id, gpus))
            if gpus and self.sleeper is not None:
                woken = await self.sleeper.sleep(gpus)
            result, reason, outcome = await self._run_in_sandbox(
                job, attempt, workdir, run_dir, gpus, feed, cancel
            )
        except Exception as exc:
            log.exception("job failed in the runner", extra={"job_id": job_id})
            result, reason, outcome = None, f"runner error: {type(exc).__name__}: {exc}", "error"
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
            if woken and self.sleeper is not None:
                await self.sleeper.wake(woken)
            if gpus and self.leases is not None:
                await self.leases.release(job_id, gpus)
        final = await self._finish(job_id, attempt, outcome, reason, result)
        await feed.close(final)
        del self.feeds[job_id], self.cancels[job_id]
        self.tasks.pop(job_id, None)
        self.slots.pop(job_id, None)
        shutil.rmtree(run_dir, ignore_errors=True)
        self._wake.set()

    def _prepare(self, job: runner_pb2.Job, run_dir: Path) -> Path:
        """A fresh work dir holding the job's code."""
        shutil.rmtree(run_dir, ignore_errors=True)
        workdir = run_dir / "work"
        workdir.mkdir(parents=True)
        prefix = job.spec.code_ref.rstrip("/") + "/"
        for info in self.artifacts.list(prefix):
            target = (workdir / info.key[len(prefix) :]).resolve()
            if not target.is_relative_to(workdir.resolve()):
                raise ValueError(f"artifact {info.key} would land outside the work dir")
            target.parent.mkdir(parents=True, exist_ok=True)
            self.artifacts.download(info.key, target)
        return workdir

    async def _heartbeat(self, job_id: str, gpus: builtins.list[str]) -> None:
        assert self.leases is not None
        while True:
            await asyncio.sleep(self.config.lease_ttl / 3)
            try:
                await self.leases.heartbeat(job_id, gpus)
            except LookupError:
                log.error("lost a GPU lease; cancelling the job", extra={"job_id": job_id})
                self.cancels[job_id].set()
                return

    async def _run_in_sandbox(
        self,
        job: runner_pb2.Job,
        attempt: int,
        workdir: Path,
        run_dir: Path,
        gpus: builtins.list[str],
        feed: Feed,
        cancel: threading.Event,
    ) -> tuple[contract.Result | None, str, str]:
        loop = asyncio.get_running_loop()
        resources = job.spec.resources
        sandbox_job = SandboxJob(
            job_id=job.id,
            workdir=workdir,
            entrypoint=job.spec.entrypoint,
            limits=Limits(
                cpu_millis=resources.cpu_millis,
                memory_mib=resources.memory_mib,
                wall_seconds=resources.wall_seconds,
            ),
            env=dict(job.spec.env),
            datasets=[(m.source, m.target) for m in job.spec.datasets],
            gpu_ids=gpus,
            gpu_count=resources.gpus,
            image=job.spec.image,
            cpus=self._cpus(job),
        )

        def stream_line(line: str) -> None:
            loop.call_soon_threadsafe(feed.push, runner_pb2.JobUpdate(log_line=line))

        sink = LogSink(run_dir / LOG_FILE, self.config.max_log_bytes, stream_line)
        tail = MetricsTail(
            workdir / contract.METRICS_FILE, feed, lambda point, cause: self._progress(job, point, cause)
        )
        following = asyncio.create_task(self._follow_metrics(tail))
        try:
            outcome: SandboxResult = await asyncio.to_thread(
                self.sandboxes[job.spec.backend].run, sandbox_job, sink, cancel
            )
        finally:
            sink.close()
            following.cancel()
        await tail.poll()  # what the job wrote last
        result, contract_error = await asyncio.to_thread(self._collect, job, attempt, workdir, run_dir)
        if outcome.outcome == "cancelled":
            return None, "cancelled", "cancelled"
        if outcome.outcome != "exited":
            return None, outcome.detail, outcome.outcome
        if outcome.exit_code != 0:
            last = _last_line(run_dir / LOG_FILE)
            return None, f"exited with code {outcome.exit_code}" + (f": {last}" if last else ""), "exited"
        if contract_error:
            return None, contract_error, "invalid"
        return result, "", "exited"

    def _cpus(self, job: runner_pb2.Job) -> SlotCpus | None:
        """The cores of the job's slot, and no more threads than its CPU limit allows (a cluster places its
        own pods: only the thread count is set there, by the sandbox)."""
        plan = self.config.cpu_plan
        if plan is None or job.spec.backend == "kubernetes":
            return None
        slot = plan.slot(self.slots.get(job.id, 0), self.config.max_concurrent)
        return slot.capped(job.spec.resources.cpu_millis)

    async def _progress(self, job: runner_pb2.Job, point: contract.MetricPoint, cause: str) -> None:
        event = self._event(
            "progress", job, f"{job.id}.{cause}", name=point.name, value=point.value, step=point.step
        )
        await self.store.publisher.publish(event)

    async def _follow_metrics(self, tail: MetricsTail) -> None:
        while True:
            await tail.poll()
            await asyncio.sleep(self.config.poll_seconds)

    def _collect(
        self, job: runner_pb2.Job, attempt: int, workdir: Path, run_dir: Path
    ) -> tuple[contract.Result | None, str]:
        """Store the log, metrics, result and model/plot files; check them against the contract."""
        prefix = experiment_key(job.spec.research_id, job.spec.experiment_id)
        self.artifacts.put_file(f"{prefix}/{log_key(attempt)}", run_dir / LOG_FILE, content_type="text/plain")
        problems = []
        for name in (contract.METRICS_FILE, contract.RESULT_FILE):
            path = workdir / name
            if path.is_file() and not path.is_symlink():
                if path.stat().st_size <= contract.MAX_METRICS_BYTES:
                    self.artifacts.put_file(f"{prefix}/{name}", path)
                else:
                    problems.append(f"{name} is larger than {contract.MAX_METRICS_BYTES >> 20} MiB: not kept")
        try:
            for path in contract.output_files(workdir, self.config.max_output_bytes):
                self.artifacts.put_file(f"{prefix}/{path.relative_to(workdir).as_posix()}", path)
        except contract.ContractError as exc:
            problems.append(str(exc))
        result = None
        try:
            contract.read_metrics(workdir)
            result = contract.read_result(workdir)
        except contract.ContractError as exc:
            problems.insert(0, str(exc))
        return result, "; ".join(problems)

    async def _finish(
        self, job_id: str, attempt: int, outcome: str, reason: str, result: contract.Result | None
    ) -> runner_pb2.Job:
        cause = f"{job_id}.finish.{attempt}"

        def finish(data: dict[str, Any]) -> Change | None:
            job = _job_of(data)
            if job.state != runner_pb2.JOB_STATE_RUNNING:
                return None
            job.finished_at.CopyFrom(now_timestamp())
            job.reason = reason
            prefix = experiment_key(job.spec.research_id, job.spec.experiment_id) + "/"
            # Where the job's time went: waiting in the queue (for a slot or a GPU lease), then running.
            times = {"run_seconds": _seconds(job.started_at, job.finished_at),
                     "queued_seconds": _seconds(job.submitted_at, job.started_at)}  # fmt: skip
            if outcome == "cancelled" or data.get("cancel_requested"):
                job.state = runner_pb2.JOB_STATE_CANCELLED
                job.reason = "cancelled"
                event = self._event("cancelled", job, cause, artifacts=prefix)
            elif result is not None:
                job.state = runner_pb2.JOB_STATE_SUCCEEDED
                job.exit_code = 0
                event = self._event(
                    "finished", job, cause, metrics=result.metrics, seed=result.seed,
                    duration_seconds=result.duration_seconds, artifacts=prefix, **times,
                )  # fmt: skip
            else:
                job.state = runner_pb2.JOB_STATE_FAILED
                event = self._event(
                    "failed", job, cause, reason=reason, outcome=outcome, artifacts=prefix, **times
                )
            return Change(
                {
                    **data,
                    **_data_of(job),
                    "result": result.model_dump(include={"metrics", "seed", "duration_seconds"})
                    if result
                    else None,
                },
                [event],
            )

        record, _ = await self.store.mutate(job_id, finish, cause_id=cause)
        return _job_of(record.data)


class MetricsTail:
    """Reads the metric points a job appends to metrics.jsonl as it runs: to watchers, and (the first
    MAX_PROGRESS_EVENTS) as experiment.progress events. Broken lines are skipped here and reported when
    the run ends."""

    def __init__(
        self,
        path: Path,
        feed: Feed,
        announce: Callable[[contract.MetricPoint, str], Awaitable[None]],
    ) -> None:
        self.path, self.feed, self.announce = path, feed, announce
        self.offset = 0
        self.line_number = 0
        self.announced = 0

    def _read_new(self) -> bytes:
        if self.path.is_symlink() or not self.path.is_file() or self.path.stat().st_size <= self.offset:
            return b""
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            chunk = handle.read(contract.MAX_METRICS_BYTES)
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        return complete

    async def poll(self) -> None:
        for raw in (await asyncio.to_thread(self._read_new)).decode(errors="replace").splitlines():
            self.line_number += 1
            try:
                points = contract.parse_metric_line(raw, self.line_number) if raw.strip() else []
            except contract.ContractError:
                continue
            for point in points:
                metric = runner_pb2.MetricPoint(name=point.name, value=point.value, step=point.step)
                self.feed.push(runner_pb2.JobUpdate(metric=metric))
                if self.announced < MAX_PROGRESS_EVENTS:
                    self.announced += 1
                    await self.announce(point, f"metric.{self.line_number}.{point.name}")


def _seconds(start: Timestamp, end: Timestamp) -> float:
    """Seconds between two stored instants; 0 when either was never set."""
    if not start.seconds or not end.seconds:
        return 0.0
    return round(max(0.0, (end.ToNanoseconds() - start.ToNanoseconds()) / 1e9), 3)


def _last_line(path: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
        return lines[-1][:300] if lines else ""
    return ""
