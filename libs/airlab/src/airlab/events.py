"""Building, naming and (de)serializing events of the contract's Event envelope."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format, timestamp_pb2

from airlab.ids import new_id
from airlab.v1 import events_pb2

EVENT_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
SUBJECT_PREFIX = "airlab"
NO_RESEARCH = "_"


def make_event(
    event_type: str,
    research_id: str = "",
    payload: Mapping[str, Any] | None = None,
    *,
    event_id: str | None = None,
    correlation_id: str = "",
    source: str = "",
) -> events_pb2.Event:
    """A new event. Pass a deterministic `event_id` for follow-ups so re-publishing them is deduplicated."""
    if not EVENT_TYPE_RE.match(event_type):
        raise ValueError(f"event type {event_type!r} is not '<aggregate>.<event>'")
    event = events_pb2.Event(
        id=event_id or new_id("e"),
        type=event_type,
        research_id=research_id,
        correlation_id=correlation_id,
        source=source,
    )
    event.time.GetCurrentTime()
    if payload:
        event.payload.update(dict(payload))
    return event


def follow_up_id(cause: events_pb2.Event | str, suffix: str) -> str:
    """The id of the event that `cause` leads to: the same cause always gives the same id."""
    cause_id = cause if isinstance(cause, str) else cause.id
    return f"{cause_id}.{suffix}"


def subject_for(event_type: str, research_id: str = "") -> str:
    """'airlab.<aggregate>.<event>.<research id or _>': watchers filter by research on the server."""
    return f"{SUBJECT_PREFIX}.{event_type}.{research_id or NO_RESEARCH}"


def research_filter(research_id: str) -> str:
    return f"{SUBJECT_PREFIX}.*.*.{research_id}"


def type_filter(event_type: str) -> str:
    return f"{SUBJECT_PREFIX}.{event_type}.*"


def payload_dict(event: events_pb2.Event) -> dict[str, Any]:
    return json_format.MessageToDict(event.payload)


def event_to_dict(event: events_pb2.Event) -> dict[str, Any]:
    return json_format.MessageToDict(event, preserving_proto_field_name=True)


def event_from_dict(data: Mapping[str, Any]) -> events_pb2.Event:
    return json_format.ParseDict(dict(data), events_pb2.Event())


def now_timestamp() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


__all__ = [
    "event_from_dict",
    "event_to_dict",
    "follow_up_id",
    "make_event",
    "now_timestamp",
    "payload_dict",
    "research_filter",
    "subject_for",
    "type_filter",
]
