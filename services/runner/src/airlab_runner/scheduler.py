"""Starting queued jobs on this host: oldest first, within the concurrency limit, each in a CPU slot of its
own and with the GPUs it asked for leased, then running it through the executor and recording its end."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import threading
import time
from pathlib import Path

from tenacity import AsyncRetrying, stop_after_delay, wait_exponential

from airlab import metrics, tracing
from airlab.llm.vllm import VllmSleeper
from airlab.v1 import runner_pb2
from airlab_runner.executor import Executor, Outcome, Run
from airlab_runner.feed import Feed
from airlab_runner.gpus import GpuLeases
from airlab_runner.jobstore import JobStore, job_of, queue_order

log = logging.getLogger(__name__)
FINISH_RETRY_SECONDS = 300.0


class Scheduler:
    def __init__(
        self,
        jobs: JobStore,
        executor: Executor,
        *,
        host: str,
        work_root: Path,
        max_concurrent: int,
        poll_seconds: float,
        sleeper: VllmSleeper | None = None,
    ) -> None:
        self.jobs = jobs
        self.executor = executor
        self.host = host
        self.work_root = work_root
        self.max_concurrent = max_concurrent
        self.poll_seconds = poll_seconds
        self.sleeper = sleeper
        self.leases: GpuLeases | None = None
        # What runs here now, by job id: its update feed, its cancel flag, its task and its CPU slot.
        self.feeds: dict[str, Feed] = {}
        self.cancels: dict[str, threading.Event] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.slots: dict[str, int] = {}
        # Jobs being claimed now: recorded as running here before their task exists.
        self.claiming: set[str] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        metrics.RUNNER_SLOTS.set(max_concurrent)

    def holds(self, job_id: str) -> bool:
        """Whether this host runs the job now (or is claiming it)."""
        return job_id in self.tasks or job_id in self.claiming

    def wake(self) -> None:
        """Look at the queue now (a job was queued, or one ended)."""
        self._wake.set()

    async def run(self) -> None:
        """Start queued jobs, oldest first, within the concurrency limit and free GPUs, until stopped."""
        while not self._stopping:
            try:
                await self._schedule()
            except Exception:
                log.exception("scheduling failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop starting jobs; cancel running ones (they are reported cancelled)."""
        self._stopping = True
        self._wake.set()
        for event in self.cancels.values():
            event.set()
        if self.tasks:
            await asyncio.wait(list(self.tasks.values()), timeout=timeout)

    async def _schedule(self) -> None:
        jobs = await self.jobs.all()
        by_id = {job.id: job for job, _ in jobs}
        queued = queue_order([job for job, _ in jobs])
        metrics.RUNNER_QUEUE.set(len(queued))
        for job_id in queued:
            if len(self.tasks) >= self.max_concurrent or self._stopping:
                return
            job = by_id[job_id]
            gpus: list[str] = []
            if job.spec.resources.gpus and job.spec.backend != "kubernetes":  # a cluster places its own GPUs
                assert self.leases is not None
                acquired = await self.leases.try_acquire(job_id, job.spec.resources.gpus)
                if acquired is None:
                    continue  # wait for GPUs; jobs behind it that fit may start
                gpus = acquired
            self.claiming.add(job_id)
            try:
                if not await self.jobs.claim(job_id, gpus, self.host):
                    if self.leases is not None:
                        await self.leases.release(job_id, gpus)
                    continue
                self.slots[job_id] = min(set(range(self.max_concurrent)) - set(self.slots.values()))
                self.tasks[job_id] = asyncio.create_task(self._execute(job_id, gpus), name=f"job:{job_id}")
            finally:
                self.claiming.discard(job_id)
            metrics.RUNNER_QUEUE.dec()
            metrics.RUNNER_SLOTS_BUSY.set(len(self.tasks))
            metrics.RUNNER_GPU_LEASES.inc(len(gpus))
            if job.HasField("submitted_at"):
                waited = time.time() - job.submitted_at.ToMicroseconds() / 1e6
                metrics.RUNNER_QUEUE_WAIT.observe(max(waited, 0.0))

    async def _finish(self, job_id: str, attempt: int, outcome: Outcome) -> runner_pb2.Job:
        """Record the job's end. Through a bus outage (nats-server restarting) it is tried again for up to
        FINISH_RETRY_SECONDS: the run is done, and losing its record would leave the job running forever
        on a runner that is alive."""
        async for retrying in AsyncRetrying(
            wait=wait_exponential(multiplier=0.2, max=5),
            stop=stop_after_delay(FINISH_RETRY_SECONDS),
            before_sleep=lambda state: log.warning(
                "could not record a job's end, retrying",
                extra={"job_id": job_id, "attempt": state.attempt_number},
            ),
            reraise=True,
        ):
            with retrying:
                return await self.jobs.finish(
                    job_id, attempt, outcome.kind, outcome.reason, outcome.result, exit_code=outcome.exit_code
                )
        raise AssertionError("unreachable: AsyncRetrying reraises")

    async def _execute(self, job_id: str, gpus: list[str]) -> None:
        feed = self.feeds[job_id] = Feed()
        cancel = self.cancels[job_id] = threading.Event()
        data = await self.jobs.data(job_id)
        job, attempt = job_of(data), int(data.get("attempts", 1))
        if data.get("cancel_requested"):
            cancel.set()
        # The run is a span of the trace that asked for it (its context was kept in the job's record).
        traced = tracing.span(
            "run job",
            parent=data.get("trace"),
            attributes={"airlab.job_id": job_id, "airlab.experiment_id": job.spec.experiment_id,
                        "airlab.research_id": job.spec.research_id, "airlab.attempt": attempt},
        )  # fmt: skip
        with traced as span:
            run = Run(job, attempt, self.work_root / job_id, gpus, self.slots[job_id], feed, cancel)
            began = time.monotonic()
            heartbeat: asyncio.Task[None] | None = None
            woken: list[str] = []
            try:
                if gpus and self.leases is not None:
                    beating = self.executor.heartbeat(self.leases, job_id, gpus, cancel)
                    heartbeat = asyncio.create_task(beating)
                if gpus and self.sleeper is not None:
                    woken = await self.sleeper.sleep(gpus)
                outcome = await self.executor.execute(run)
            except Exception as exc:
                log.exception("job failed in the runner", extra={"job_id": job_id})
                outcome = Outcome(None, f"runner error: {type(exc).__name__}: {exc}", "error")
            finally:
                if heartbeat is not None:
                    heartbeat.cancel()
                if woken and self.sleeper is not None:
                    await self.sleeper.wake(woken)
                if gpus and self.leases is not None:
                    await self.leases.release(job_id, gpus)
            if span is not None:
                span.set_attribute("airlab.outcome", outcome.kind)
            final = await self._finish(job_id, attempt, outcome)
        await feed.close(final)
        del self.feeds[job_id], self.cancels[job_id]
        self.tasks.pop(job_id, None)
        self.slots.pop(job_id, None)
        metrics.RUNNER_SLOTS_BUSY.set(len(self.tasks))
        metrics.RUNNER_GPU_LEASES.dec(len(gpus))
        state = runner_pb2.JobState.Name(final.state).removeprefix("JOB_STATE_").lower()
        metrics.RUNNER_JOBS.labels(state).inc()
        metrics.RUNNER_JOB_RUN.labels(job.spec.backend or "local").observe(time.monotonic() - began)
        shutil.rmtree(run.run_dir, ignore_errors=True)
        self._wake.set()
