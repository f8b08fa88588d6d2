"""A research's record for the services other than the manager, asked of the manager over the bus.

The research bucket is the manager's storage, in its format: the bus refuses it to every other service
(airlab.bus_access). The agents' event handlers get what they need in their request events; their direct
gRPC methods (ProposeIdeas, ImplementIdea, EvaluateExperiment, WriteReport) and the reviewer's MLflow
tracking ask here, with a NATS request that the manager answers from its store. Nothing of it is stored
on the stream."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from google.protobuf.message import DecodeError

from airlab.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from airlab.ids import check_id
from airlab.research_record import OldLoopSchema, StoredResearch
from airlab.v1 import loop_pb2, records_pb2, research_pb2

if TYPE_CHECKING:  # airlab.bus_access names this module's subjects; the store's module imports the bus
    from airlab.state import StateStore

log = logging.getLogger(__name__)

SUBJECT_PREFIX = "airlab_rpc.records"  # outside the events stream's subjects ("airlab.>")
SUBJECTS = f"{SUBJECT_PREFIX}.*"
QUEUE = "manager"
TIMEOUT_SECONDS = 10.0
Status = records_pb2.RecordStatus


class Asker(Protocol):
    async def request(self, subject: str, payload: bytes, *, timeout: float) -> bytes: ...


class Answerer(Protocol):
    async def answer(
        self, subject: str, handler: Callable[[bytes], Awaitable[bytes]], *, queue: str
    ) -> None: ...


def subject_of(research_id: str) -> str:
    return f"{SUBJECT_PREFIX}.{research_id}"


async def fetch(
    bus: Asker, research_id: str, *, timeout: float = TIMEOUT_SECONDS
) -> tuple[research_pb2.Research, loop_pb2.ResearchLoop | None]:
    """The research and its loop (None before its plan runs). NotFound, FailedPrecondition (a loop of an
    earlier version) or Unavailable (no manager answers), each naming the research."""
    check_id("research_id", research_id, "r")
    request = records_pb2.RecordRequest(research_id=research_id)
    try:
        raw = await bus.request(subject_of(research_id), request.SerializeToString(), timeout=timeout)
    except TimeoutError as exc:
        raise Unavailable(f"the manager did not hand over research {research_id}: {exc}") from None
    record = records_pb2.ResearchRecord.FromString(raw)
    if record.status == Status.RECORD_STATUS_FOUND:
        return record.research, record.loop if record.HasField("loop") else None
    if record.status == Status.RECORD_STATUS_NOT_FOUND:
        raise NotFound(record.detail or f"research {research_id} not found")
    if record.status == Status.RECORD_STATUS_OUTDATED:
        raise FailedPrecondition(record.detail)
    if record.status == Status.RECORD_STATUS_INVALID:
        raise InvalidArgument("research_id", record.detail)
    raise Unavailable(record.detail or f"the manager could not read research {research_id}")


def answer_from(store: StateStore[StoredResearch]) -> Callable[[bytes], Awaitable[bytes]]:
    """The manager's side: each request answered from its research store, errors inside the answer."""

    async def handle(payload: bytes) -> bytes:
        return (await _record(store, payload)).SerializeToString()

    return handle


async def _record(store: StateStore[StoredResearch], payload: bytes) -> records_pb2.ResearchRecord:
    try:
        research_id = records_pb2.RecordRequest.FromString(payload).research_id
        check_id("research_id", research_id, "r")
    except (DecodeError, InvalidArgument) as exc:
        return records_pb2.ResearchRecord(status=Status.RECORD_STATUS_INVALID, detail=str(exc))
    try:
        stored = (await store.get(research_id)).value
    except NotFound as exc:
        return records_pb2.ResearchRecord(status=Status.RECORD_STATUS_NOT_FOUND, detail=str(exc))
    except Exception as exc:
        log.warning("could not read a research for a service: %s", exc, extra={"research_id": research_id})
        return records_pb2.ResearchRecord(status=Status.RECORD_STATUS_UNAVAILABLE, detail=str(exc))
    research = stored.research
    try:
        loop = stored.running_loop()
    except OldLoopSchema as exc:
        return records_pb2.ResearchRecord(
            status=Status.RECORD_STATUS_OUTDATED, research=research, detail=f"research {research_id}: {exc}"
        )
    record = records_pb2.ResearchRecord(status=Status.RECORD_STATUS_FOUND, research=research)
    if loop is not None:
        record.loop.CopyFrom(loop)
    return record


async def serve(bus: Answerer, store: StateStore[StoredResearch]) -> None:
    """Answer every service's record requests (the manager calls this once its store is open)."""
    await bus.answer(SUBJECTS, answer_from(store), queue=QUEUE)
