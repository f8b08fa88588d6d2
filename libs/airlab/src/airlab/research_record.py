"""The stored record of a research: the Research message (research.proto) and, once experiments start,
its loop (a ResearchLoop, loop.proto) under "loop". Both are proto messages kept as their JSON form; the
manager's store decodes a record into a StoredResearch once per read and encodes it once per write (the
codec below), and other services get the same messages from the manager (airlab.records).

The record also keeps, under "awaited_requests", the requests the loop sent that no answer has reached
yet (the events themselves). The event stream is not part of a backup: a research restored mid-flight
would wait for answers to requests the restored bus never carried, so a restore sends these again
(airlab.backup), with their own ids, and the services that answer them treat a request they already
answered as a repeat.

Version 1 of the loop was an untyped JSON object. Such a record is not migrated: the loop it describes
cannot be resumed with certainty (its payloads carried floats for whole numbers, its ideas had no fixed
shape), so this version refuses it with OldLoopSchema, which names both versions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import json_format

from airlab import domain
from airlab.errors import FailedPrecondition
from airlab.events import DEAD_LETTER_AGGREGATE, body_of, event_from_dict, event_to_dict
from airlab.state import RESEARCH_BUCKET, Bus, Record, StateStore
from airlab.v1 import events_pb2, loop_pb2, research_pb2

LOOP_KEY = "loop"
AWAITING_KEY = "awaited_requests"  # beside the Research message's own fields
LOOP_SCHEMA = 2
# What the loop asks of other services (airlab_manager.conductor names who answers each).
REQUEST_TYPES = frozenset(
    {"idea.requested", "code.requested", "experiment.requested", "evaluation.requested", "report.requested"}
)
EXPERIMENT_ENDS = frozenset({"experiment.finished", "experiment.failed", "experiment.cancelled"})


class OldLoopSchema(ValueError):
    """The record's loop was written by an earlier version of airlab."""

    def __init__(self, found: int) -> None:
        super().__init__(
            f"its research loop was stored by an earlier airlab (loop schema {found}); this version reads "
            f"schema {LOOP_SCHEMA} only and cannot resume it: start the research again"
        )
        self.found = found


class StoredResearch:
    """The research bucket's record, typed: the research and its loop.

    The loop is parsed from its stored JSON form when first asked for, so reading a research (the Lab
    API, the dashboard, the counts) does not pay for a loop it never looks at, and a write that did not
    look at it stores it back as it was. A loop of an earlier version is kept so, too: never parsed,
    never thrown away."""

    def __init__(
        self,
        research: research_pb2.Research,
        loop: loop_pb2.ResearchLoop | None = None,
        *,
        stored_loop: dict[str, Any] | None = None,
        awaiting: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.research = research
        self._loop = loop
        self._stored_loop = stored_loop if loop is None else None  # read-only: it is the stored JSON
        # Requests without an answer yet, by awaited_key, in their stored JSON form (only a restore reads
        # them as events).
        self.awaiting: dict[str, dict[str, Any]] = dict(awaiting or {})

    def track(self, answer: events_pb2.Event, requests: Sequence[events_pb2.Event]) -> bool:
        """Forget the request `answer` answers and remember `requests` (those of them the loop sends to
        other services). Whether anything changed."""
        changed = self.awaiting.pop(answered_key(answer), None) is not None
        for event in requests:
            if event.type in REQUEST_TYPES:
                self.awaiting[awaited_key(event)] = event_to_dict(event)
                changed = True
        return changed

    def awaited_requests(self) -> list[events_pb2.Event]:
        return [event_from_dict(data) for data in self.awaiting.values()]

    def running_loop(self) -> loop_pb2.ResearchLoop | None:
        """The loop; None before experiments start. OldLoopSchema for a loop of an earlier version."""
        if self._loop is None and self._stored_loop:
            found = _schema_of(self._stored_loop)
            if found != LOOP_SCHEMA:
                raise OldLoopSchema(found)
            self._loop = json_format.ParseDict(self._stored_loop, loop_pb2.ResearchLoop())
            self._stored_loop = None
        return self._loop

    def loop_for_caller(self) -> loop_pb2.ResearchLoop | None:
        """running_loop for a caller of the API: an earlier version's loop is FailedPrecondition, naming
        the research."""
        try:
            return self.running_loop()
        except OldLoopSchema as exc:
            raise FailedPrecondition(f"research {self.research.id}: {exc}") from None

    def loop_data(self) -> dict[str, Any] | None:
        """The loop's stored JSON form: as it was read when nobody parsed it."""
        if self._loop is None:
            return self._stored_loop
        self._loop.schema = LOOP_SCHEMA
        return json_format.MessageToDict(self._loop, preserving_proto_field_name=True)


def awaited_key(request: events_pb2.Event) -> str:
    """What identifies the answer to `request`: an experiment's end names the experiment (the runner's
    events follow from the job's attempts, not from the request); every other answer names its request's
    id as its correlation id."""
    if request.type == "experiment.requested":
        return f"experiment:{body_of(request).experiment_id}"
    return request.id


def answered_key(event: events_pb2.Event) -> str:
    """The awaited key `event` answers ("" for none): an experiment's end, a dead-lettered request, or an
    answer correlated to its request."""
    if event.type in EXPERIMENT_ENDS:
        return f"experiment:{body_of(event).experiment_id}"
    if event.type.startswith(f"{DEAD_LETTER_AGGREGATE}."):
        return awaited_key(body_of(event).event)
    return event.correlation_id


def _schema_of(raw: Any) -> int:
    return int(raw.get("schema", 1)) if isinstance(raw, Mapping) else 1


class ResearchCodec:
    """The research bucket's codec (airlab.state.Codec): the Research message's JSON form, with the loop's
    under "loop"."""

    def decode(self, data: dict[str, Any]) -> StoredResearch:
        research = json_format.ParseDict(data, research_pb2.Research(), ignore_unknown_fields=True)
        return StoredResearch(
            research, stored_loop=data.get(LOOP_KEY) or None, awaiting=data.get(AWAITING_KEY) or None
        )

    def encode(self, value: StoredResearch) -> dict[str, Any]:
        data = json_format.MessageToDict(value.research, preserving_proto_field_name=True)
        data.pop("revision", None)  # the store's revision, not part of the record
        loop = value.loop_data()
        if loop is not None:
            data[LOOP_KEY] = loop
        if value.awaiting:
            data[AWAITING_KEY] = value.awaiting
        return data


def research_at(record: Record[StoredResearch]) -> research_pb2.Research:
    """The record's research with the store's revision, as the Lab API returns it."""
    research = record.value.research
    research.revision = record.revision
    return research


def research_store(bus: Bus) -> StateStore[StoredResearch]:
    """The manager's research records (open it before use)."""
    return StateStore(bus, RESEARCH_BUCKET, ResearchCodec(), kind="research")


def profiling_run(plan: research_pb2.Plan, loop: loop_pb2.ResearchLoop) -> str:
    """The baseline run whose result.json holds the data profile: the first seed's, once it finished, on
    the scikit-learn template (the one that profiles a table); "" otherwise."""
    if domain.template_of(loop.job_config.template) != "sklearn" or not plan.seeds:
        return ""
    return loop.baseline.experiments.get(plan.seeds[0], "")
