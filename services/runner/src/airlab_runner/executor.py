"""Running one job: its work dir, the sandbox, its log and metrics as they come, and everything it produced
stored and checked against the experiment contract before its outcome is known."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from airlab.blobs import ArtifactStore, experiment_key
from airlab.cpus import CpuPlan, SlotCpus
from airlab.dataset_access import DataPlaces
from airlab.errors import FailedPrecondition, InvalidArgument
from airlab.redact import error_text
from airlab.results import RunResult
from airlab.v1 import runner_pb2
from airlab_runner import contract
from airlab_runner.disk import DiskWatch
from airlab_runner.feed import Feed
from airlab_runner.gpus import GpuLeases
from airlab_runner.jobstore import JobStore
from airlab_runner.quota import StorageQuota
from airlab_runner.sandbox import JobIdentities, Limits, Sandbox, SandboxJob, SandboxResult
from airlab_runner.staging import DatasetStager

log = logging.getLogger(__name__)
MAX_PROGRESS_EVENTS = 500
LOG_FILE = "output.log"


def log_key(attempt: int) -> str:
    """Where an attempt's output goes, under the experiment's prefix (each attempt keeps its own)."""
    return f"logs/attempt-{attempt}.log"


@dataclass
class Run:
    """One attempt of a job on this host."""

    job: runner_pb2.Job
    attempt: int
    run_dir: Path
    gpus: list[str]
    slot: int
    feed: Feed
    cancel: threading.Event


@dataclass
class Outcome:
    result: RunResult | None
    reason: str
    # "exited" (with a result when it kept the contract), "invalid", "cancelled", "timeout", "oom", "error".
    kind: str
    # The job's process's exit status as a shell reports it (128 + N for signal N), when it ended by itself
    # or was killed at its memory limit; None when the runner stopped it or it never started.
    exit_code: int | None = None


def shell_status(code: int | None) -> int | None:
    """A process's end as a shell says it: Popen's -N (killed by signal N) is 128 + N."""
    return None if code is None else 128 - code if code < 0 else code


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


class Executor:
    def __init__(
        self,
        jobs: JobStore,
        artifacts: ArtifactStore,
        sandboxes: dict[str, Sandbox],
        *,
        max_log_bytes: int,
        max_output_bytes: int,
        max_disk_bytes: int,
        max_concurrent: int,
        cpu_plan: CpuPlan | None,
        poll_seconds: float,
        lease_ttl: float,
        stager: DatasetStager | None = None,
        identities: JobIdentities | None = None,
    ) -> None:
        self.jobs = jobs
        self.artifacts = artifacts
        self.sandboxes = sandboxes
        self.max_log_bytes = max_log_bytes
        self.max_output_bytes = max_output_bytes
        self.max_disk_bytes = max_disk_bytes
        self.max_concurrent = max_concurrent
        self.cpu_plan = cpu_plan
        self.poll_seconds = poll_seconds
        self.lease_ttl = lease_ttl
        self.stager = stager or DatasetStager(DataPlaces())
        self.identities = identities or JobIdentities()
        # Set once the bus is up (main.setup); None: no per-research quota (unit use).
        self.quota: StorageQuota | None = None

    async def execute(self, run: Run) -> Outcome:
        """Run the job as an identity of its own (released when it ended)."""
        identity = self.identities.lease(run.job.id)
        try:
            return await self._execute(run, identity)
        finally:
            self.identities.release(identity)

    async def _execute(self, run: Run, identity: tuple[int, int]) -> Outcome:
        """Prepare the work dir, run the job in its sandbox, store and check what it produced."""
        workdir = await asyncio.to_thread(self.prepare, run.job, run.run_dir)
        job, run_dir = run.job, run.run_dir
        try:
            datasets = await asyncio.to_thread(self.stager.stage, job.spec.datasets, run_dir)
        except (InvalidArgument, FailedPrecondition) as exc:
            return Outcome(None, f"its dataset was refused when the job started: {exc}", "error")
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
            datasets=datasets,
            gpu_ids=run.gpus,
            gpu_count=resources.gpus,
            image=job.spec.image,
            cpus=self.cpus(job, run.slot),
            identity=identity,
        )

        def stream_line(line: str) -> None:
            loop.call_soon_threadsafe(run.feed.push, runner_pb2.JobUpdate(log_line=line))

        sink = LogSink(run_dir / LOG_FILE, self.max_log_bytes, stream_line)
        tail = MetricsTail(
            workdir / contract.METRICS_FILE, run.feed, lambda point, cause: self._progress(job, point, cause)
        )
        following = asyncio.create_task(self._follow_metrics(tail))
        disk = DiskWatch(workdir, self.max_disk_bytes, run.cancel)
        try:
            with disk:
                ended: SandboxResult = await asyncio.to_thread(
                    self.sandboxes[job.spec.backend].run, sandbox_job, sink, disk.stop
                )
        finally:
            sink.close()
            following.cancel()
        await tail.poll()  # what the job wrote last
        if disk.exceeded:
            # Nothing of it is kept but its log: the files are what broke the quota.
            prefix = experiment_key(job.spec.research_id, job.spec.experiment_id)
            await asyncio.to_thread(self._store_records, prefix, run.attempt, workdir, run_dir)
            return Outcome(None, disk.reason(), "disk")
        result, contract_error = await self.collect(job, run.attempt, workdir, run_dir)
        if ended.outcome == "cancelled":
            return Outcome(None, "cancelled", "cancelled")
        code = shell_status(ended.exit_code)
        if ended.outcome != "exited":
            return Outcome(None, ended.detail, ended.outcome, code)
        if code != 0:
            last = _last_line(run_dir / LOG_FILE)
            # The job's last line reaches events, reports and the coder's prompts: no data values in it.
            why = f"exited with code {code}" + (f": {error_text(last, limit=500)}" if last else "")
            return Outcome(None, why, "exited", code)
        if contract_error:
            return Outcome(None, contract_error, "invalid", code)
        return Outcome(result, "", "exited", code)

    def prepare(self, job: runner_pb2.Job, run_dir: Path) -> Path:
        """A fresh work dir holding the job's code."""
        shutil.rmtree(run_dir, ignore_errors=True)
        workdir = run_dir / "work"
        workdir.mkdir(parents=True)
        run_dir.chmod(0o700)  # the job's files and dataset copies: the runner's and the job's alone
        prefix = job.spec.code_ref.rstrip("/") + "/"
        for info in self.artifacts.list(prefix):
            target = (workdir / info.key[len(prefix) :]).resolve()
            if not target.is_relative_to(workdir.resolve()):
                raise ValueError(f"artifact {info.key} would land outside the work dir")
            target.parent.mkdir(parents=True, exist_ok=True)
            self.artifacts.download(info.key, target)
        return workdir

    def cpus(self, job: runner_pb2.Job, slot: int) -> SlotCpus | None:
        """The cores of the job's slot, and no more threads than its CPU limit allows (a cluster places its
        own pods: only the thread count is set there, by the sandbox)."""
        if self.cpu_plan is None or job.spec.backend == "kubernetes":
            return None
        return self.cpu_plan.slot(slot, self.max_concurrent).capped(job.spec.resources.cpu_millis)

    async def heartbeat(
        self, leases: GpuLeases, job_id: str, gpus: list[str], cancel: threading.Event
    ) -> None:
        """Keep the job's GPU leases alive; cancel the job when one is lost."""
        while True:
            await asyncio.sleep(self.lease_ttl / 3)
            try:
                await leases.heartbeat(job_id, gpus)
            except LookupError:
                log.error("lost a GPU lease; cancelling the job", extra={"job_id": job_id})
                cancel.set()
                return

    async def _progress(self, job: runner_pb2.Job, point: contract.MetricPoint, cause: str) -> None:
        event = self.jobs.event(
            "progress", job, f"{job.id}.{cause}", name=point.name, value=point.value, step=point.step
        )
        await self.jobs.announce(event)

    async def _follow_metrics(self, tail: MetricsTail) -> None:
        while True:
            await tail.poll()
            await asyncio.sleep(self.poll_seconds)

    async def collect(
        self, job: runner_pb2.Job, attempt: int, workdir: Path, run_dir: Path
    ) -> tuple[RunResult | None, str]:
        """Store the log, metrics, result and model/plot files; check them against the contract."""
        prefix = experiment_key(job.spec.research_id, job.spec.experiment_id)
        problems = await asyncio.to_thread(self._store_records, prefix, attempt, workdir, run_dir)
        try:
            outputs = await asyncio.to_thread(contract.output_files, workdir, self.max_output_bytes)
        except contract.ContractError as exc:
            problems.append(str(exc))
            outputs = []
        if outputs and self.quota is not None:
            refusal = await self.quota.take(job.spec.research_id, sum(p.stat().st_size for p in outputs))
            if refusal:
                problems.append(refusal)
                outputs = []
        for path in outputs:
            key = f"{prefix}/{path.relative_to(workdir).as_posix()}"
            await asyncio.to_thread(self.artifacts.put_file, key, path)
        result = None
        try:
            contract.read_metrics(workdir)
            result = contract.read_result(workdir)
        except contract.ContractError as exc:
            problems.insert(0, str(exc))
        return result, "; ".join(problems)

    def _store_records(self, prefix: str, attempt: int, workdir: Path, run_dir: Path) -> list[str]:
        """The log, metrics.jsonl and result.json: bounded per job and always kept, so a failure stays
        readable."""
        self.artifacts.put_file(f"{prefix}/{log_key(attempt)}", run_dir / LOG_FILE, content_type="text/plain")
        problems = []
        for name in (contract.METRICS_FILE, contract.RESULT_FILE):
            path = workdir / name
            if path.is_file() and not path.is_symlink():
                if path.stat().st_size <= contract.MAX_METRICS_BYTES:
                    self.artifacts.put_file(f"{prefix}/{name}", path)
                else:
                    problems.append(f"{name} is larger than {contract.MAX_METRICS_BYTES >> 20} MiB: not kept")
        return problems


def _last_line(path: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
        return lines[-1][:300] if lines else ""
    return ""
