"""The runner's job records: one KV record per job (a Job message plus its attempts, host, GPUs, result),
changed only by compare-and-set transitions that carry the experiment.* events they cause, so a crash
neither loses nor repeats a job's state change or its announcement."""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from airlab import tracing
from airlab.blobs import experiment_key
from airlab.errors import FailedPrecondition
from airlab.events import body_type, event_from_dict, event_to_dict, follow_up_id, make_event, now_timestamp
from airlab.results import RunResult
from airlab.state import Change, StateStore
from airlab.v1 import events_pb2, runner_pb2

JOB_BUCKET = "airlab_jobs"
# Researches that were cancelled: their experiments are refused, on every runner.
CANCELLED_BUCKET = "airlab_cancelled_researches"
State = runner_pb2.JobState
TERMINAL = {runner_pb2.JOB_STATE_SUCCEEDED, runner_pb2.JOB_STATE_FAILED, runner_pb2.JOB_STATE_CANCELLED}
# The event that announced a job's end, kept in its record: a request for an experiment that already ended
# (sent again by a restore, whose bus never carried the first announcement) is answered with it again.
END_KEY = "end_event"


def job_of(data: dict[str, Any]) -> runner_pb2.Job:
    return json_format.ParseDict(data["job"], runner_pb2.Job(), ignore_unknown_fields=True)


def data_of(job: runner_pb2.Job, **extra: Any) -> dict[str, Any]:
    return {"job": json_format.MessageToDict(job, preserving_proto_field_name=True), **extra}


def queue_order(jobs: list[runner_pb2.Job]) -> list[str]:
    """Queued jobs' ids, oldest first: the order they start in."""
    queued = [j for j in jobs if j.state == runner_pb2.JOB_STATE_QUEUED]
    return [j.id for j in sorted(queued, key=lambda j: (j.submitted_at.ToNanoseconds(), j.id))]


def _seconds(start: Timestamp, end: Timestamp) -> float:
    """Seconds between two stored instants; 0 when either was never set."""
    if not start.seconds or not end.seconds:
        return 0.0
    return round(max(0.0, (end.ToNanoseconds() - start.ToNanoseconds()) / 1e9), 3)


class JobStore:
    def __init__(self, store: StateStore[dict[str, Any]], source: str = "runner") -> None:
        self.store = store
        self.source = source

    def event(self, kind: str, job: runner_pb2.Job, cause: str, **payload: Any) -> events_pb2.Event:
        # Every experiment.* body carries the job and experiment ids; the rest is the kind's own.
        body = body_type(f"experiment.{kind}")(job_id=job.id, experiment_id=job.spec.experiment_id, **payload)
        return make_event(
            f"experiment.{kind}", job.spec.research_id, body,
            event_id=follow_up_id(cause, kind), correlation_id=cause, source=self.source,
        )  # fmt: skip

    # -- reading --------------------------------------------------------------------------------------------

    async def all(self) -> list[tuple[runner_pb2.Job, dict[str, Any]]]:
        found = []
        for key in await self.store.keys():
            record = await self.store.find(key)
            if record is not None:
                found.append((job_of(record.value), record.value))
        return found

    async def find(self, job_id: str) -> dict[str, Any] | None:
        record = await self.store.find(job_id)
        return record.value if record is not None else None

    async def data(self, job_id: str) -> dict[str, Any]:
        return (await self.store.get(job_id)).value

    # -- transitions ----------------------------------------------------------------------------------------

    async def create(self, job: runner_pb2.Job, digest: str) -> None:
        """Store a new queued job and announce it. AlreadyExists when another submit stored it first."""
        event = self.event("queued", job, f"{job.id}.submit")
        # The request's trace context (airlab.tracing), so the run that starts later joins its trace.
        data = data_of(job, attempts=0, host="", code_sha256=digest, trace=tracing.carrier())
        await self.store.create(job.id, data, [event])

    async def request_cancel(self, job_id: str, cause: str) -> None:
        """A queued job is cancelled at once; a running one is marked, and its runner stops it."""

        def cancel(data: dict[str, Any]) -> Change[dict[str, Any]]:
            job = job_of(data)
            if job.state in TERMINAL:
                raise FailedPrecondition(f"job {job_id} already ended ({State.Name(job.state)})")
            if job.state == runner_pb2.JOB_STATE_QUEUED:
                job.state = runner_pb2.JOB_STATE_CANCELLED
                job.reason = "cancelled before it started"
                job.finished_at.CopyFrom(now_timestamp())
                return self._ended(data, job, self.event("cancelled", job, cause))
            return Change({**data, "cancel_requested": True})

        await self.store.mutate(job_id, cancel, cause_id=cause)

    async def requeue(self, job_id: str, attempts: int, max_attempts: int, host: str = "") -> bool:
        """A job that was running when its runner (`host`) died: queued again, or failed after
        `max_attempts`. False when it was no longer running that attempt."""
        runner = f"runner {host}" if host else "the runner"
        cause = f"{job_id}.recover.{attempts}"

        def requeue(data: dict[str, Any]) -> Change[dict[str, Any]] | None:
            job = job_of(data)
            if job.state != runner_pb2.JOB_STATE_RUNNING or int(data.get("attempts", 0)) != attempts:
                return None  # it ended, or it runs again already (a later attempt)
            if attempts < max_attempts and not data.get("cancel_requested"):
                job.state = runner_pb2.JOB_STATE_QUEUED
                job.reason = f"queued again: {runner} stopped while attempt {attempts} ran"
                return Change({**data, **data_of(job)}, [self.event("queued", job, cause, requeued=True)])
            job.state = runner_pb2.JOB_STATE_FAILED
            job.reason = f"{runner} stopped while it ran, {attempts} time(s)"
            job.finished_at.CopyFrom(now_timestamp())
            return self._ended(data, job, self.event("failed", job, cause, reason=job.reason))

        _, changed = await self.store.mutate(job_id, requeue, cause_id=cause)
        return changed

    async def claim(self, job_id: str, gpus: list[str], host: str) -> bool:
        """Start a queued job on `host`; False when it is no longer queued (another runner took it)."""

        def claim(data: dict[str, Any]) -> Change[dict[str, Any]] | None:
            job = job_of(data)
            if job.state != runner_pb2.JOB_STATE_QUEUED:
                return None
            attempts = int(data.get("attempts", 0)) + 1
            job.state = runner_pb2.JOB_STATE_RUNNING
            job.started_at.CopyFrom(now_timestamp())
            job.reason, job.runner = "", host
            event = self.event("started", job, f"{job_id}.start.{attempts}", gpus=gpus, attempt=attempts)
            return Change(
                {**data, **data_of(job), "attempts": attempts, "host": host, "gpus": gpus},
                [event],
            )

        _, changed = await self.store.mutate(job_id, claim)
        return changed

    async def finish(
        self,
        job_id: str,
        attempt: int,
        outcome: str,
        reason: str,
        result: RunResult | None,
        *,
        exit_code: int | None = None,
    ) -> runner_pb2.Job:
        """The job's end, announced once its artifacts are stored (`exit_code`: its process's, when known;
        a job killed at its memory limit reports the kill's, 137)."""
        cause = f"{job_id}.finish.{attempt}"

        def finish(data: dict[str, Any]) -> Change[dict[str, Any]] | None:
            job = job_of(data)
            if job.state != runner_pb2.JOB_STATE_RUNNING:
                return None
            job.finished_at.CopyFrom(now_timestamp())
            job.reason = reason
            if exit_code is not None:
                job.exit_code = exit_code
            prefix = experiment_key(job.spec.research_id, job.spec.experiment_id) + "/"
            # Where the job's time went: waiting in the queue (for a slot or a GPU lease), then running.
            times = {"run_seconds": _seconds(job.started_at, job.finished_at),
                     "queued_seconds": _seconds(job.submitted_at, job.started_at)}  # fmt: skip
            if outcome == "cancelled" or data.get("cancel_requested"):
                job.state = runner_pb2.JOB_STATE_CANCELLED
                job.reason = "cancelled"
                event = self.event("cancelled", job, cause, artifacts=prefix)
            elif result is not None:
                job.state = runner_pb2.JOB_STATE_SUCCEEDED
                event = self.event(
                    "finished", job, cause, metrics=result.metrics, seed=result.seed,
                    duration_seconds=result.duration_seconds, artifacts=prefix, **times,
                    validation_curve=result.validation_curve or [],
                    stopped_at_epoch=result.stopped_at_epoch or 0,
                )  # fmt: skip
            else:
                job.state = runner_pb2.JOB_STATE_FAILED
                event = self.event(
                    "failed", job, cause, reason=reason, outcome=outcome, artifacts=prefix, **times
                )
            kept = result.model_dump(include={"metrics", "seed", "duration_seconds"}) if result else None
            return self._ended(data, job, event, result=kept)

        record, _ = await self.store.mutate(job_id, finish, cause_id=cause)
        return job_of(record.value)

    def _ended(
        self, data: dict[str, Any], job: runner_pb2.Job, event: events_pb2.Event, **extra: Any
    ) -> Change[dict[str, Any]]:
        return Change({**data, **data_of(job), **extra, END_KEY: event_to_dict(event)}, [event])

    async def announce_end(self, data: dict[str, Any]) -> bool:
        """Publish the ended job's end event again (the same id: whoever applied it drops the repeat).
        False for a job that ended before ends were kept."""
        if END_KEY not in data:
            return False
        await self.store.publisher.publish(event_from_dict(data[END_KEY]))
        return True

    async def announce(self, event: events_pb2.Event) -> None:
        """Publish an event no state change carries (a metric point as it is written)."""
        await self.store.publisher.publish(event)

    async def flush(self) -> None:
        await self.store.flush_all()
