"""Entrypoint of the runner service: `airlab-runner` (or `python -m airlab_runner`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from pathlib import Path

from airlab import bus_access, experiments
from airlab.blobs import artifact_store_from
from airlab.cpus import plan_cpus
from airlab.dataset_access import DataPlaces
from airlab.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from airlab.events import body_of, follow_up_id, make_event, type_filter
from airlab.llm.vllm import VllmSleeper
from airlab.service import ServiceContext, StartupError, run_service
from airlab.settings import RunnerSettings
from airlab.state import JSON_OBJECTS, StateStore
from airlab.v1 import events_pb2, runner_pb2_grpc
from airlab_runner.datasets import S3Datasets
from airlab_runner.gpus import LEASE_BUCKET, GpuLeases, detect_gpus
from airlab_runner.jobs import CANCELLED_BUCKET, JOB_BUCKET, Capacity, Runner, RunnerConfig
from airlab_runner.presence import RunnerPresence
from airlab_runner.quota import STORAGE_BUCKET, StorageQuota
from airlab_runner.sandbox import Sandbox, SandboxUnavailable, sandbox_for
from airlab_runner.servicer import RunnerServicer

log = logging.getLogger(__name__)


def build_sandboxes(settings: RunnerSettings, work_root: Path) -> dict[str, Sandbox]:
    """The sandbox of every enabled backend, each checked: a backend that cannot run here stops the
    runner with the reason, so nothing ever runs unsandboxed."""
    sandboxes: dict[str, Sandbox] = {}
    for backend in dict.fromkeys([settings.backend, *settings.backends]):
        try:
            sandboxes[backend] = sandbox_for(backend, settings, work_root)
            sandboxes[backend].check()
        except SandboxUnavailable as exc:
            raise StartupError(f"{backend} sandbox: {exc}") from exc
    return sandboxes


(REQUESTS_CONSUMER,) = bus_access.DURABLES["runner"]
# One durable consumer per runner host: every runner must see a cancellation to stop the jobs it runs.
CANCELS_CONSUMER = "runner-cancels"


def request_handler(runner: Runner, context: ServiceContext):
    """Agents ask for experiments with `experiment.requested`; a spec the runner refuses becomes an
    `experiment.failed` with the reason, so the requester never waits for a job that does not exist."""

    async def handle(event: events_pb2.Event) -> None:
        try:
            await runner.submit(experiments.spec_of(event))
        except (InvalidArgument, AlreadyExists, FailedPrecondition, ValueError, KeyError) as exc:
            await context.bus.publish(
                make_event(
                    "experiment.failed",
                    event.research_id,
                    events_pb2.ExperimentOutcome(
                        experiment_id=body_of(event).experiment_id,
                        reason=f"refused by the runner: {exc}",
                        outcome="refused",
                    ),
                    event_id=follow_up_id(event, "refused"),
                    correlation_id=event.id,
                    source=context.name,
                )
            )

    return handle


def setup(context: ServiceContext) -> None:
    settings = context.settings
    runner_settings = settings.runner
    store = StateStore(context.bus, JOB_BUCKET, JSON_OBJECTS, kind="job")
    config = RunnerConfig(
        host=runner_settings.host or socket.gethostname(),
        work_root=Path(runner_settings.work_dir or settings.workspace / "runs").resolve(),
        backend=runner_settings.backend,
        max_concurrent=runner_settings.max_concurrent,
        max_log_bytes=runner_settings.max_log_mib << 20,
        max_output_bytes=runner_settings.max_output_mib << 20,
        max_disk_bytes=runner_settings.max_job_disk_mib << 20,
        max_attempts=runner_settings.max_attempts,
        lease_ttl=runner_settings.lease_ttl_seconds,
        # `airlab up` says how many cores its local LLM server holds (AIRLAB_CPU__LLM_CORES).
        cpu_plan=plan_cpus(settings.cpu, local_llm=False),
        capacity=Capacity.of_host(runner_settings.max_job_wall_seconds),
        places=DataPlaces.of(settings),
        job_uids=runner_settings.job_uids,
    )
    runner = Runner(
        store,
        artifact_store_from(settings),
        build_sandboxes(runner_settings, config.work_root),
        config,
        sleeper=VllmSleeper(runner_settings.vllm_servers) if runner_settings.vllm_servers else None,
        source=context.name,
    )
    # Inside the runs dir: on the docker backend that path is the same on the host, so it can be mounted.
    runner.s3_datasets = S3Datasets(settings, config.work_root / ".datasets")
    context.host.add(
        runner_pb2_grpc.add_RunnerServiceServicer_to_server, RunnerServicer(runner), "airlab.v1.RunnerService"
    )
    scheduler: list[asyncio.Task[None]] = []
    presence = RunnerPresence(context.bus, config.host, ttl=runner_settings.presence_ttl_seconds)

    async def start() -> None:
        await store.open()
        inventory = detect_gpus(runner_settings.gpus)
        if inventory:
            kv = await context.bus.key_value(LEASE_BUCKET, history=1)
            runner.leases = GpuLeases(kv, inventory, holder=config.host, ttl=config.lease_ttl)
        runner.cancelled_researches = await context.bus.key_value(CANCELLED_BUCKET, history=1)
        runner.executor.quota = StorageQuota(
            await context.bus.key_value(STORAGE_BUCKET, history=1),
            runner_settings.max_research_storage_mib << 20,
        )
        await presence.open()
        await presence.beat(config.max_concurrent)
        await runner.recover()
        scheduler.append(asyncio.create_task(runner.run(), name="scheduler"))
        scheduler.append(asyncio.create_task(keep_present(), name="presence"))
        await context.bus.consume(
            REQUESTS_CONSUMER, [type_filter(experiments.REQUESTED)], request_handler(runner, context)
        )

        async def research_cancelled(event: events_pb2.Event) -> None:
            stopped = await runner.cancel_research(event.research_id)
            if stopped:
                log.info("cancelled the jobs of a cancelled research", extra={"jobs": stopped})

        host = re.sub(r"[^A-Za-z0-9_-]", "-", config.host)
        await context.bus.consume(
            f"{CANCELS_CONSUMER}-{host}", [type_filter("research.cancelled")], research_cancelled
        )

    async def keep_present() -> None:
        """Renew this runner's presence, take over the jobs of runners that died, and queue again the jobs
        recorded as running here that do not (a restored backup's)."""
        while True:
            await asyncio.sleep(presence.ttl / 3)
            try:
                await presence.beat(config.max_concurrent)
                adopted = await runner.adopt_orphans(await presence.alive())
                if adopted:
                    log.warning("queued again the jobs of a runner that died", extra={"jobs": adopted})
                lost = await runner.requeue_lost()
                if lost:
                    log.warning("queued again jobs it does not run", extra={"jobs": lost})
            except Exception:  # a bus outage: the next round tries again
                log.warning("could not renew this runner's presence", exc_info=True)

    async def stop() -> None:
        await runner.stop()
        for task in scheduler:
            task.cancel()
        with contextlib.suppress(Exception):
            await presence.leave()

    context.on_start(start)
    context.on_stop(stop)


def main() -> None:
    run_service("runner", setup)


if __name__ == "__main__":
    main()
