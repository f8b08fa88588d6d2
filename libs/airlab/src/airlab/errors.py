"""Errors agent logic raises. The gRPC layer maps each to its status code: agent code needs no grpc."""

from __future__ import annotations


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
