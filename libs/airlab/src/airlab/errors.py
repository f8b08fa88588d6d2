"""Errors agent logic raises. The gRPC layer maps each to its status code: agent code needs no grpc."""

from __future__ import annotations

# The most of a caller's value an error message repeats, and the longest message a status carries: a
# message is sent as gRPC metadata, which has a hard size limit.
SHOWN_CHARS = 120
MAX_MESSAGE_CHARS = 2000


def shown(value: str) -> str:
    """`value` quoted for an error message, cut to SHOWN_CHARS with a note of its length."""
    if len(value) <= SHOWN_CHARS:
        return repr(value)
    return f"{value[:SHOWN_CHARS]!r}... ({len(value)} characters)"


def bounded(message: str) -> str:
    """A status message within MAX_MESSAGE_CHARS."""
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[:MAX_MESSAGE_CHARS] + f"... ({len(message) - MAX_MESSAGE_CHARS} characters cut)"


class LabError(Exception):
    """Base of the errors a caller can act on. `code` names a grpc.StatusCode member."""

    code = "INTERNAL"


class InvalidArgument(LabError):
    """A request field is malformed or out of range; the message starts with the field's name."""

    code = "INVALID_ARGUMENT"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class NotFound(LabError):
    code = "NOT_FOUND"


class AlreadyExists(LabError):
    code = "ALREADY_EXISTS"


class FailedPrecondition(LabError):
    """The request is well formed but the target is not in a state that allows it."""

    code = "FAILED_PRECONDITION"


class Conflict(LabError):
    """A stored record changed under us (revision mismatch); retrying with a fresh read may succeed."""

    code = "ABORTED"


class Unauthenticated(LabError):
    code = "UNAUTHENTICATED"


class PermissionDenied(LabError):
    code = "PERMISSION_DENIED"


class Unavailable(LabError):
    code = "UNAVAILABLE"


class Unimplemented(LabError):
    code = "UNIMPLEMENTED"
