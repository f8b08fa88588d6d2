"""The stored record of a research: the Research message (research.proto) and, once experiments start,
its loop (a ResearchLoop, loop.proto) under "loop". Both are proto messages kept as their JSON form, so
every service reads the same typed contract.

Version 1 of the loop was an untyped JSON object. Such a record is not migrated: the loop it describes
cannot be resumed with certainty (its payloads carried floats for whole numbers, its ideas had no fixed
shape), so this version refuses it with OldLoopSchema, which names both versions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import json_format

from airlab import domain
from airlab.errors import FailedPrecondition
from airlab.v1 import loop_pb2, research_pb2

LOOP_KEY = "loop"
LOOP_SCHEMA = 2


class OldLoopSchema(ValueError):
    """The record's loop was written by an earlier version of airlab."""

    def __init__(self, found: int) -> None:
        super().__init__(
            f"its research loop was stored by an earlier airlab (loop schema {found}); this version reads "
            f"schema {LOOP_SCHEMA} only and cannot resume it: start the research again"
        )
        self.found = found


def loop_of(data: Mapping[str, Any]) -> loop_pb2.ResearchLoop | None:
    """The record's loop; None before experiments start. OldLoopSchema for a loop of an earlier version."""
    raw = data.get(LOOP_KEY)
    if not raw:
        return None
    found = int(raw.get("schema", 1)) if isinstance(raw, Mapping) else 1
    if found != LOOP_SCHEMA:
        raise OldLoopSchema(found)
    return json_format.ParseDict(dict(raw), loop_pb2.ResearchLoop())


def research_of(data: Mapping[str, Any]) -> research_pb2.Research:
    """The record's Research message (the loop beside it is read by loop_of)."""
    return json_format.ParseDict(dict(data), research_pb2.Research(), ignore_unknown_fields=True)


def stored_loop(research_id: str, data: Mapping[str, Any]) -> loop_pb2.ResearchLoop | None:
    """loop_of for a caller of the API: a loop of an earlier version is FailedPrecondition, naming the
    research."""
    try:
        return loop_of(data)
    except OldLoopSchema as exc:
        raise FailedPrecondition(f"research {research_id}: {exc}") from None


def loop_data(loop: loop_pb2.ResearchLoop) -> dict[str, Any]:
    loop.schema = LOOP_SCHEMA
    return json_format.MessageToDict(loop, preserving_proto_field_name=True)


def with_loop(data: Mapping[str, Any], loop: loop_pb2.ResearchLoop | None) -> dict[str, Any]:
    """`data` (a research's JSON) with `loop` stored beside it."""
    record = {k: v for k, v in data.items() if k != LOOP_KEY}
    if loop is not None:
        record[LOOP_KEY] = loop_data(loop)
    return record


def profiling_run(plan: research_pb2.Plan, loop: loop_pb2.ResearchLoop) -> str:
    """The baseline run whose result.json holds the data profile: the first seed's, once it finished, on
    the scikit-learn template (the one that profiles a table); "" otherwise."""
    if domain.template_of(loop.job_config.template) != "sklearn" or not plan.seeds:
        return ""
    return loop.baseline.experiments.get(plan.seeds[0], "")


def to_data(research: research_pb2.Research) -> dict[str, Any]:
    data = json_format.MessageToDict(research, preserving_proto_field_name=True)
    data.pop("revision", None)
    return data


def record_of(research: research_pb2.Research, data: Mapping[str, Any]) -> dict[str, Any]:
    """The stored record of `research`, keeping the research loop's own state from `data`."""
    record = to_data(research)
    if "loop" in data:
        record["loop"] = data["loop"]
    return record


def from_data(data: Mapping[str, Any], revision: int = 0) -> research_pb2.Research:
    research = research_of(data)
    research.revision = revision
    return research
