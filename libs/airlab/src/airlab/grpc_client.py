"""Client helpers: channels with default deadlines and retries, and health checks."""

from __future__ import annotations

import json
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from airlab import auth, tracing
from airlab.settings import Settings
from airlab.tls import TlsFiles

# Retries UNAVAILABLE (a restarting or draining server) with backoff, for every method.
_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{}],
                "retryPolicy": {
                    "maxAttempts": 5,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)
_OPTIONS = [("grpc.service_config", _SERVICE_CONFIG), ("grpc.enable_retries", 1)]

DEFAULT_TIMEOUT_SECONDS = 10.0


class _DefaultDeadline(grpc.UnaryUnaryClientInterceptor):
    """Gives every unary call a deadline unless the caller set one: no call waits forever."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        if details.timeout is None:
            details = _CallDetails(
                details.method, self.seconds, details.metadata, details.credentials,
                details.wait_for_ready, details.compression,
            )  # fmt: skip
        return continuation(details, request)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression


class _AddsMetadata(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Sends the pairs `extra()` gives with every call."""

    def extra(self) -> list[tuple[str, str]]:
        raise NotImplementedError

    def _details(self, details: Any) -> Any:
        extra = self.extra()
        if not extra:
            return details
        metadata = [*(details.metadata or ()), *extra]
        return _CallDetails(
            details.method, details.timeout, metadata, details.credentials,
            details.wait_for_ready, details.compression,
        )  # fmt: skip

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)


class _Bearer(_AddsMetadata):
    """Sends the caller's token with every call."""

    def __init__(self, token: str) -> None:
        self.header = ("authorization", f"Bearer {token}")

    def extra(self) -> list[tuple[str, str]]:
        return [self.header]


class _TraceContext(_AddsMetadata):
    """Sends the current trace context (airlab.tracing) with every call, when tracing is on."""

    def extra(self) -> list[tuple[str, str]]:
        return list(tracing.carrier().items())


def raw_channel(address: str, files: TlsFiles | None = None) -> grpc.Channel:
    """A plain channel, over TLS (checked against the lab's authority, presenting `files`' certificate)
    when `files` are given."""
    if files is None:
        return grpc.insecure_channel(address, options=_OPTIONS)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=files.ca.read_bytes(),
        private_key=files.key.read_bytes(),
        certificate_chain=files.cert.read_bytes(),
    )
    return grpc.secure_channel(address, credentials, options=_OPTIONS)


def channel(
    address: str,
    default_timeout: float = DEFAULT_TIMEOUT_SECONDS,
    *,
    token: str = "",
    tls: TlsFiles | None = None,
) -> grpc.Channel:
    """A blocking channel that retries UNAVAILABLE with backoff, gives unary calls a default deadline and
    sends `token` (when given) as the caller's bearer token, over TLS with `tls`. Streaming calls (watches)
    run until the caller cancels them or passes `timeout=`."""
    interceptors: list[Any] = [_DefaultDeadline(default_timeout), _TraceContext()]
    if token:
        interceptors.append(_Bearer(token))
    return grpc.intercept_channel(raw_channel(address, tls), *interceptors)


def client_token(settings: Settings) -> str:
    """The token this client sends: auth.token, else the one `airlab up` wrote in the workspace."""
    if settings.auth.token:
        return settings.auth.token
    path = auth.credentials_dir(settings.workspace) / auth.TOKEN_FILE
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def health_status(address: str, service: str = "", timeout: float = 1.0, tls: TlsFiles | None = None) -> str:
    """'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN' or 'UNREACHABLE'."""
    with raw_channel(address, tls) as ch:
        try:
            # The stub package leaves the generated stub's methods out.
            reply = health_pb2_grpc.HealthStub(ch).Check(  # type: ignore[attr-defined]
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return "SERVICE_UNKNOWN"
            return "UNREACHABLE"
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
