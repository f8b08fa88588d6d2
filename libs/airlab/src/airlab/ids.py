"""Identifiers: time-ordered, URL- and NATS-subject-safe, and checked before use."""

from __future__ import annotations

import os
import re
import time

from airlab.errors import InvalidArgument

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lowercase
_BODY_LEN = 26
TOKEN_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def new_id(prefix: str) -> str:
    """A prefix and 26 base32 characters: 48 bits of milliseconds then 80 random bits, so ids sort by time."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(_BODY_LEN):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return prefix + "".join(reversed(chars))


def id_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(prefix)}[{_ALPHABET}]{{{_BODY_LEN}}}$")


def check_id(field: str, value: str, prefix: str) -> str:
    """Raise InvalidArgument unless `value` is an id made by new_id(prefix)."""
    if not value:
        raise InvalidArgument(field, "is required")
    if not id_pattern(prefix).match(value):
        raise InvalidArgument(
            field, f"{value[:64]!r} is not a valid id (expected {prefix!r} + 26 base32 chars)"
        )
    return value


def check_token(field: str, value: str) -> str:
    """Raise InvalidArgument unless `value` is 1..128 characters of [A-Za-z0-9._-]."""
    if not TOKEN_RE.match(value):
        raise InvalidArgument(field, "must be 1..128 characters of [A-Za-z0-9._-]")
    return value
