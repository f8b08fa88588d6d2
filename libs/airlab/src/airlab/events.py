"""Building, naming and (de)serializing events of the contract's Event envelope.

Every event type has its own message in the envelope's `body` oneof: the field named like the type with
"." replaced by "_" ("deadletter.<consumer>" types all carry `dead_letter`). `make_event` checks that the
body given is the one the type carries, so a producer cannot send a consumer something it does not
expect."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format, message, message_factory, timestamp_pb2

from airlab.ids import new_id
from airlab.v1 import events_pb2

EVENT_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
SUBJECT_PREFIX = "airlab"
NO_RESEARCH = "_"
DEAD_LETTER_AGGREGATE = "deadletter"
_BODIES = events_pb2.Event.DESCRIPTOR.oneofs_by_name["body"].fields


def body_field(event_type: str) -> str:
    """The envelope's body field that events of `event_type` carry."""
    if event_type.startswith(f"{DEAD_LETTER_AGGREGATE}."):
        return "dead_letter"
    return event_type.replace(".", "_")


def body_type(event_type: str) -> type[message.Message]:
    """The message class of `event_type`'s body. ValueError for a type the contract does not define."""
    name = body_field(event_type)
    for field in _BODIES:
        if field.name == name:
            assert field.message_type is not None
            return message_factory.GetMessageClass(field.message_type)  # type: ignore[arg-type]
    raise ValueError(f"event type {event_type!r} has no body in the contract (events.proto)")


def make_event(
    event_type: str,
    research_id: str = "",
    body: message.Message | None = None,
    *,
    event_id: str | None = None,
    correlation_id: str = "",
    source: str = "",
) -> events_pb2.Event:
    """A new event with its typed body (None: the type's empty body). Pass a deterministic `event_id` for
    follow-ups so re-publishing them is deduplicated."""
    if not EVENT_TYPE_RE.match(event_type):
        raise ValueError(f"event type {event_type!r} is not '<aggregate>.<event>'")
    expected = body_type(event_type)
    if body is None:
        body = expected()
    if not isinstance(body, expected):
        raise TypeError(f"a {event_type} event carries {expected.__name__}, not {type(body).__name__}")
    event = events_pb2.Event(
        id=event_id or new_id("e"),
        type=event_type,
        research_id=research_id,
        correlation_id=correlation_id,
        source=source,
    )
    event.time.GetCurrentTime()
    getattr(event, body_field(event_type)).CopyFrom(body)
    return event


def body_of(event: events_pb2.Event) -> Any:
    """The event's typed body (an empty one of its type when none was set)."""
    return getattr(event, body_field(event.type))


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


def body_dict(event: events_pb2.Event) -> dict[str, Any]:
    """The body as JSON-ready data, for people (the CLI's event lines)."""
    field = event.WhichOneof("body")
    if field is None:
        return {}
    return json_format.MessageToDict(getattr(event, field), preserving_proto_field_name=True)


def event_to_dict(event: events_pb2.Event) -> dict[str, Any]:
    return json_format.MessageToDict(event, preserving_proto_field_name=True)


def event_from_dict(data: Mapping[str, Any]) -> events_pb2.Event:
    return json_format.ParseDict(dict(data), events_pb2.Event())


def now_timestamp() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


__all__ = [
    "body_dict",
    "body_field",
    "body_of",
    "body_type",
    "event_from_dict",
    "event_to_dict",
    "follow_up_id",
    "make_event",
    "now_timestamp",
    "research_filter",
    "subject_for",
    "type_filter",
]
