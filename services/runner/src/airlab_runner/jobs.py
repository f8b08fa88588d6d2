"""The runner's logic: a durable queue of experiment jobs, run in sandboxes within this host's limits.

Jobs are records in a JetStream KV bucket (`jobstore`), so the queue survives a restart: queued jobs stay
queued, and a job that was running when the runner died is queued again (or reported failed after
max_attempts). The `scheduler` starts them; the `executor` runs one and stores everything it produced
before its final state is announced. `Runner` is what the servicer and the bus handlers call: submit,
cancel, query and watch."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import logging
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats.js.errors
from nats.js.kv import KeyValue

from airlab.blobs import ArtifactStore, experiment_key
from airlab.cpus import CpuPlan
from airlab.dataset_access import DataPlaces
from airlab.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from airlab.events import now_timestamp
from airlab.ids import check_id, derived_id, new_id
from airlab.llm.vllm import VllmSleeper
from airlab.state import StateStore
from airlab.v1 import runner_pb2
from airlab_runner import contract
from airlab_runner.capacity import Capacity, check_capacity
from airlab_runner.datasets import S3Datasets
from airlab_runner.executor import Executor, log_key
from airlab_runner.gpus import GpuLeases
from airlab_runner.jobstore import CANCELLED_BUCKET, JOB_BUCKET, TERMINAL, JobStore, job_of, queue_order
from airlab_runner.sandbox import DEFAULT_JOB_UIDS, JobIdentities, Sandbox
from airlab_runner.scheduler import Scheduler
from airlab_runner.spec import check_spec, resolved_resources
from airlab_runner.staging import DatasetStager

__all__ = ["CANCELLED_BUCKET", "JOB_BUCKET", "Capacity", "Runner", "RunnerConfig", "check_capacity"]

log = logging.getLogger(__name__)


@dataclass
class RunnerConfig:
    host: str
    work_root: Path
    backend: str = "local"
    max_concurrent: int = 2
    max_log_bytes: int = 10 << 20
    max_output_bytes: int = 1 << 30
    max_disk_bytes: int = 2 << 30
    max_attempts: int = 2
    poll_seconds: float = 0.5
    lease_ttl: float = 30.0
    # How this host's cores are shared with a local LLM server; None: jobs are not pinned.
    cpu_plan: CpuPlan | None = None
    # The most one job may ask for here (a cluster checks CPU and memory against its own quotas).
    capacity: Capacity = field(default_factory=Capacity.of_host)
    # What the lab keeps and where dataset mounts may come from (airlab.dataset_access).
    places: DataPlaces = field(default_factory=DataPlaces)
    # The uids a root runner gives its jobs (runner.job_uids).
    job_uids: tuple[int, int] = DEFAULT_JOB_UIDS


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


class Runner:
    def __init__(
        self,
        store: StateStore[dict[str, Any]],
        artifacts: ArtifactStore,
        sandboxes: dict[str, Sandbox],
        config: RunnerConfig,
        *,
        leases: GpuLeases | None = None,
        sleeper: VllmSleeper | None = None,
        source: str = "runner",
    ) -> None:
        self.jobs = JobStore(store, source)
        self.artifacts = artifacts
        self.sandboxes = sandboxes
        self.config = config
        self.executor = executor = Executor(
            self.jobs,
            artifacts,
            sandboxes,
            max_log_bytes=config.max_log_bytes,
            max_output_bytes=config.max_output_bytes,
            max_disk_bytes=config.max_disk_bytes,
            max_concurrent=config.max_concurrent,
            cpu_plan=config.cpu_plan,
            poll_seconds=config.poll_seconds,
            lease_ttl=config.lease_ttl,
            stager=DatasetStager(config.places),
            identities=JobIdentities(config.job_uids),
        )
        self.scheduler = Scheduler(
            self.jobs,
            executor,
            host=config.host,
            work_root=config.work_root,
            max_concurrent=config.max_concurrent,
            poll_seconds=config.poll_seconds,
            sleeper=sleeper,
        )
        self.leases = leases
        # Set once the bus is up (main.setup); None: cancellations are not remembered (unit use).
        self.cancelled_researches: KeyValue | None = None

    @property
    def s3_datasets(self) -> S3Datasets | None:
        """Where S3 datasets are fetched (set by main.setup; None: this runner takes no S3 dataset)."""
        return self.executor.stager.s3

    @s3_datasets.setter
    def s3_datasets(self, datasets: S3Datasets | None) -> None:
        self.executor.stager.s3 = datasets

    @property
    def leases(self) -> GpuLeases | None:
        return self.scheduler.leases

    @leases.setter
    def leases(self, leases: GpuLeases | None) -> None:
        self.scheduler.leases = leases

    async def run(self) -> None:
        await self.scheduler.run()

    async def stop(self, timeout: float = 10.0) -> None:
        await self.scheduler.stop(timeout)

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
        check_spec(spec, tuple(self.sandboxes), self.config.places)
        for index, mount in enumerate(spec.datasets):
            if mount.source.startswith("s3://"):
                if self.s3_datasets is None:
                    raise FailedPrecondition("this runner cannot fetch S3 datasets")
                # Fetched now, so that a missing object is said at once; the job gets a copy when it starts.
                field = f"spec.datasets[{index}].source"
                await asyncio.to_thread(self.s3_datasets.local_copy, mount.source, field)
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
        existing = await self.jobs.find(job_id)
        if existing is not None:
            return await self._resubmitted(existing, stored, digest)
        if spec.files:
            stored.code_ref = experiment_key(spec.research_id, spec.experiment_id, "code") + "/"
            await asyncio.to_thread(self._store_code, stored.code_ref, dict(spec.files))
        elif not await asyncio.to_thread(self.artifacts.exists, stored.code_ref + spec.entrypoint):
            raise InvalidArgument("spec.code_ref", f"holds no {spec.entrypoint!r}")
        job = runner_pb2.Job(
            id=job_id, spec=stored, state=runner_pb2.JOB_STATE_QUEUED, submitted_at=now_timestamp()
        )
        try:
            await self.jobs.create(job, digest)
        except AlreadyExists:
            return await self._resubmitted(await self.jobs.data(job_id), stored, digest)
        if await self._was_cancelled(stored.research_id):
            # The research was cancelled while this job was being stored: it never starts.
            with contextlib.suppress(FailedPrecondition):
                await self.cancel(job_id)
        self.scheduler.wake()
        return await self.get(job_id)

    async def _resubmitted(
        self, data: dict[str, Any], spec: runner_pb2.ExperimentSpec, digest: str
    ) -> runner_pb2.Job:
        """One experiment is one job: the same spec again returns that job (a retried Submit), another
        spec under the same experiment id is refused."""
        job = job_of(data)
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
        if job.state in TERMINAL and await self.jobs.announce_end(data):
            # Asked again for an experiment that ended: whoever asks may never have heard (a lab restored
            # from a backup asks again for what it was waiting for), so its end is announced again.
            log.info("announced an ended job's end again", extra={"job_id": job.id})
        return await self.get(job.id)

    def _store_code(self, prefix: str, files: dict[str, bytes]) -> None:
        for path, content in files.items():
            self.artifacts.put(
                prefix + path, content, content_type="text/plain" if path.endswith(".py") else None
            )

    async def cancel(self, job_id: str) -> runner_pb2.Job:
        check_id("id", job_id, "j")
        await self.jobs.request_cancel(job_id, new_id("c"))
        if job_id in self.scheduler.cancels:
            self.scheduler.cancels[job_id].set()  # running here: the scheduler's task stops it
        return await self.get(job_id)

    async def cancel_research(self, research_id: str) -> builtins.list[str]:
        """Cancel every job of a cancelled research that this runner can stop: the queued ones (whichever
        runner gets there first), and the running ones it runs itself. Every runner handles the same
        event, so each stops its own. Returns the ids of the jobs it cancelled."""
        if self.cancelled_researches is not None:
            # Remembered first, so an experiment asked for before the cancellation is refused after it.
            await self.cancelled_researches.put(research_id, b"cancelled")
        cancelled = []
        for job, _ in await self.jobs.all():
            if job.spec.research_id != research_id or job.state in TERMINAL:
                continue
            if job.state == runner_pb2.JOB_STATE_RUNNING and job.id not in self.scheduler.cancels:
                continue  # another runner's: it cancels it on the same event
            with contextlib.suppress(FailedPrecondition):  # it ended meanwhile
                await self.cancel(job.id)
                cancelled.append(job.id)
        return cancelled

    async def adopt_orphans(self, alive: set[str]) -> list[str]:
        """Queue again (or fail, after max_attempts runs) the jobs running on a runner not in `alive`: it
        died, and nobody else would ever finish them (airlab_runner.presence)."""
        adopted = []
        for job, data in await self.jobs.all():
            host = str(data.get("host", ""))
            if job.state != runner_pb2.JOB_STATE_RUNNING or host == self.config.host or host in alive:
                continue
            log.warning("a runner died while it ran a job", extra={"job_id": job.id, "runner_host": host})
            await self.jobs.requeue(job.id, int(data.get("attempts", 0)), self.config.max_attempts, host)
            adopted.append(job.id)
        if adopted:
            self.scheduler.wake()
        return adopted

    async def recover(self) -> None:
        """After a restart: publish committed events, and queue again (or fail) the jobs this host was
        running when it died."""
        await self.jobs.flush()
        await self.requeue_lost()

    async def requeue_lost(self) -> list[str]:
        """Queue again (or fail, after max_attempts runs) the jobs recorded as running on this host that
        this host does not run: it ran them in an earlier life (a restart), or their records came back from
        a backup. Called at start and with each presence beat. Returns their ids."""
        lost = []
        for job, data in await self.jobs.all():
            if (
                job.state != runner_pb2.JOB_STATE_RUNNING
                or data.get("host") != self.config.host
                or self.scheduler.holds(job.id)
            ):
                continue
            if not await self.jobs.requeue(job.id, int(data.get("attempts", 0)), self.config.max_attempts):
                continue  # it ended meanwhile
            lost.append(job.id)
            sandbox = self.sandboxes.get(job.spec.backend)
            if sandbox is not None:
                await asyncio.to_thread(sandbox.cleanup, job.id)
            shutil.rmtree(self.config.work_root / job.id, ignore_errors=True)
            if self.leases is not None:
                await self.leases.release(job.id, list(data.get("gpus", [])))
        return lost

    # -- queries --------------------------------------------------------------------------------------------

    async def get(self, job_id: str) -> runner_pb2.Job:
        check_id("id", job_id, "j")
        job = job_of(await self.jobs.data(job_id))
        if job.state == runner_pb2.JOB_STATE_QUEUED:
            queue = queue_order([j for j, _ in await self.jobs.all()])
            job.queue_position = queue.index(job_id) + 1 if job_id in queue else 0
        return job

    async def list(self, research_id: str = "") -> builtins.list[runner_pb2.Job]:
        jobs = [j for j, _ in await self.jobs.all()]
        queue = queue_order(jobs)
        for job in jobs:
            job.queue_position = queue.index(job.id) + 1 if job.id in queue else 0
        jobs = [j for j in jobs if not research_id or j.spec.research_id == research_id]
        return sorted(jobs, key=lambda j: (j.submitted_at.ToNanoseconds(), j.id))

    async def watch(self, job_id: str) -> AsyncIterator[runner_pb2.JobUpdate]:
        job = await self.get(job_id)
        feeds = self.scheduler.feeds
        while job.id not in feeds and job.state not in TERMINAL:
            await asyncio.sleep(0.1)  # queued: wait until it starts here
            job = await self.get(job_id)
        feed = feeds.get(job_id)
        if feed is not None:
            async for update in feed.follow():
                yield update
            return
        data = await self.jobs.data(job_id)
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
