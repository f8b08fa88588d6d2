"""Identifiers: time-ordered, URL- and NATS-subject-safe, and checked before use."""

from __future__ import annotations

import hashlib
import os
import re
import time

from airlab.errors import InvalidArgument

BASE32 = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lowercase
_BODY_LEN = 26
TOKEN_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def new_id(prefix: str) -> str:
    """A prefix and 26 base32 characters: 48 bits of milliseconds then 80 random bits, so ids sort by time."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(_BODY_LEN):
        value, digit = divmod(value, 32)
        chars.append(BASE32[digit])
    return prefix + "".join(reversed(chars))


def derived_id(prefix: str, name: str) -> str:
    """An id of new_id's shape that follows from `name`: the same name always gives the same id (for
    idempotent creation: a retried request finds what the first one made)."""
    value = int.from_bytes(hashlib.sha256(name.encode()).digest()[:17], "big")
    return prefix + "".join(BASE32[(value >> (5 * i)) & 31] for i in range(_BODY_LEN))


def id_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(prefix)}[{BASE32}]{{{_BODY_LEN}}}$")


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
