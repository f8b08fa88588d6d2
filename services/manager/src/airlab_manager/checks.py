"""Checks of the Lab API's requests: that the caller may act on a research, text sizes, enum values, and
the research a request id names."""

from __future__ import annotations

from typing import Any

from airlab import auth
from airlab.errors import InvalidArgument, PermissionDenied
from airlab.ids import derived_id
from airlab.v1 import research_pb2

TEXT_MAX_CHARS = 1000


def research_id_for_request(owner: str, request_id: str) -> str:
    """The research a request id starts: the same for the same caller's retries, and another for another
    caller's same id (a request id never reaches, or names, someone else's research)."""
    return derived_id("r", f"request:{owner}:{request_id}")


def check_owner(research: research_pb2.Research) -> None:
    """PermissionDenied unless the caller started the research or may see every research."""
    caller = auth.current.get()
    if not caller.may_see(research.owner):
        raise PermissionDenied(
            f"research {research.id} belongs to another user; {caller.name} may not see it"
        )


def check_text(field: str, value: str, *, required: bool = False) -> None:
    if required and not value.strip():
        raise InvalidArgument(field, "is required")
    if len(value) > TEXT_MAX_CHARS:
        raise InvalidArgument(field, f"is {len(value)} characters; at most {TEXT_MAX_CHARS} are allowed")


def check_enum(field: str, enum: Any, value: int) -> None:
    if value not in enum.values():
        raise InvalidArgument(field, f"unknown value {value}")
