"""An asyncio gRPC server for a service: health that says SERVING only while the service's dependencies
are connected, reflection, errors mapped to status codes, and a graceful drain on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from airlab import access, auth, metrics, tls, tracing
from airlab.errors import LabError, bounded
from airlab.settings import Settings

log = logging.getLogger(__name__)

# Methods that answer before the service's dependencies are up.
ALWAYS_OPEN = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class _Unparsable:
    """Stands for a request whose bytes did not parse, so the method answers INVALID_ARGUMENT itself
    (grpc's own deserialization failure logs a traceback per call and answers UNKNOWN with the error)."""


UNPARSABLE = _Unparsable()


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def parse(raw: bytes) -> Any:
        try:
            return deserialize(raw)
        except Exception:  # protobuf's DecodeError, or anything a corrupt payload provokes
            return UNPARSABLE

    return parse


@contextlib.contextmanager
def _measured(method: str, context: grpc.aio.ServicerContext) -> Iterator[None]:
    """Count the call by its status code and time it (airlab.metrics); the code is the one the call ended
    with (an abort's), OK when none was set, CANCELLED when the caller went away. With tracing on, the
    call is a server span below the caller's (airlab.tracing)."""
    began = time.perf_counter()
    code = "UNKNOWN"
    parent = tracing.headers_of(context.invocation_metadata())
    with tracing.span(method.lstrip("/"), parent=parent, kind=tracing.SpanKind.SERVER) as span:
        try:
            yield
            code = "OK"
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        finally:
            set_code = context.code()
            if isinstance(set_code, grpc.StatusCode):
                code = set_code.name
            metrics.GRPC_CALLS.labels(method, code).inc()
            metrics.GRPC_LATENCY.labels(method).observe(time.perf_counter() - began)
            if span is not None:
                span.set_attribute("rpc.grpc.status_code", code)


class _StatusInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls with UNAVAILABLE until the service is ready, requests whose bytes do not parse with
    INVALID_ARGUMENT, and (with a key) callers without a valid token with UNAUTHENTICATED; runs each call
    as its caller (`airlab.auth.current`); turns LabError into its status."""

    def __init__(
        self,
        is_ready: Callable[[], bool],
        key: bytes | None = None,
        revocations: auth.Revocations | None = None,
    ) -> None:
        self._is_ready = is_ready
        self._key = key
        self._revocations = revocations

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(details)
        if handler is None or details.method.startswith(ALWAYS_OPEN):
            return handler
        is_ready, key, revocations = self._is_ready, self._key, self._revocations

        async def refuse_unready(request: Any, context: grpc.aio.ServicerContext) -> auth.Principal:
            principal = auth.LOCAL_ADMIN
            if key is not None:
                try:
                    principal = auth.principal_of(context.invocation_metadata(), key, revocations)
                except LabError as exc:
                    await context.abort(grpc.StatusCode[exc.code], bounded(str(exc)))
            refused = access.refusal(details.method, principal)
            if refused:
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, refused)
            if request is UNPARSABLE:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"the request could not be parsed as {details.method}'s message (corrupt bytes?)",
                )
            if not is_ready():
                await context.abort(
                    grpc.StatusCode.UNAVAILABLE, "service is starting or lost its dependencies"
                )
            return principal

        if handler.unary_unary:
            inner: Any = handler.unary_unary  # a coroutine function on an aio server

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                with _measured(details.method, context):
                    caller = auth.current.set(await refuse_unready(request, context))
                    try:
                        return await inner(request, context)
                    except LabError as exc:
                        await context.abort(grpc.StatusCode[exc.code], bounded(str(exc)))
                    finally:
                        auth.current.reset(caller)

            return grpc.unary_unary_rpc_method_handler(
                unary,
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            inner_stream: Any = handler.unary_stream  # an async generator function on an aio server

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                with _measured(details.method, context):
                    caller = auth.current.set(await refuse_unready(request, context))
                    try:
                        async for item in inner_stream(request, context):
                            yield item
                    except LabError as exc:
                        await context.abort(grpc.StatusCode[exc.code], bounded(str(exc)))
                    finally:
                        auth.current.reset(caller)

            return grpc.unary_stream_rpc_method_handler(
                stream,
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return handler


class ServiceHost:
    """Hosts one service's servicers. Register them with `add`, readiness checks with `require`, then
    `await serve(startup, shutdown)` runs until SIGTERM/SIGINT."""

    def __init__(self, name: str, settings: Settings) -> None:
        self.name = name
        self.settings = settings
        self.port = 0
        self.metrics_port = -1
        self._checks: list[Callable[[], bool]] = []
        self._started = False
        self._stopping = asyncio.Event()
        self._service_names: list[str] = []
        self.health = health_aio.HealthServicer()
        key = auth.configured_key(settings.auth.key, settings.auth.key_file)
        if key is None:
            log.warning("no auth key (auth.key_file): every caller is served as the local admin")
        revocations = auth.revocations_for(settings.auth.revoked_file, settings.auth.key_file)
        self.server = grpc.aio.server(
            interceptors=[_StatusInterceptor(self.is_ready, key, revocations)],
            options=[("grpc.so_reuseport", 0)],
        )

    def add(self, register: Callable[[Any, grpc.aio.Server], None], servicer: Any, full_name: str) -> None:
        """Register a servicer with its generated `add_..._to_server` function and full service name. Who
        may call each of its methods is airlab.access's table."""
        register(servicer, self.server)
        self._service_names.append(full_name)

    def require(self, check: Callable[[], bool]) -> None:
        """The service is SERVING only while every check is true (e.g. `lambda: bus.connected`)."""
        self._checks.append(check)

    def is_ready(self) -> bool:
        return self._started and not self._stopping.is_set() and all(check() for check in self._checks)

    async def refresh_health(self, *_: Any) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if self.is_ready()
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for service in ["", *self._service_names]:
            await self.health.set(service, status)

    async def start(self) -> int:
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [*self._service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name]
        reflection.enable_server_reflection([*names, reflection.SERVICE_NAME], self.server)
        address = f"{self.settings.grpc_host}:{self.settings.grpc_port}"
        files = tls.own_files(self.settings.tls)
        if files is None:
            self.port = self.server.add_insecure_port(address)
        else:
            pair = (files.key.read_bytes(), files.cert.read_bytes())
            self.port = self.server.add_secure_port(address, grpc.ssl_server_credentials([pair]))
        if self.port == 0:
            raise OSError(f"could not bind {self.settings.grpc_host}:{self.settings.grpc_port}")
        await self.server.start()
        await self.refresh_health()
        if self.settings.port_file:
            write_port_file(self.settings.port_file, self.port)
        self.metrics_port = metrics.serve(
            self.settings.metrics_host, self.settings.metrics_port, self.settings.metrics_port_file
        )
        log.info(
            "gRPC listening",
            extra={"port": self.port, "services": self._service_names, "tls": files is not None},
        )
        return self.port

    def request_stop(self) -> None:
        self._stopping.set()

    async def serve(
        self,
        startup: Callable[[], Awaitable[None]],
        shutdown: Callable[[], Awaitable[None]],
    ) -> None:
        """Listen at once (NOT_SERVING), run `startup` until it succeeds (retrying: a dependency may come up
        later), report SERVING, and on SIGTERM/SIGINT: report NOT_SERVING, let in-flight calls finish within
        drain_seconds, then run `shutdown`."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        await self.start()
        # Startup retries until it succeeds, so it only ends early when a stop cuts it short.
        started = asyncio.create_task(self._run_startup(startup))
        await self._stopping.wait()
        started.cancel()
        log.info("stopping: draining in-flight calls", extra={"grace_seconds": self.settings.drain_seconds})
        await self.refresh_health()
        await self.server.stop(self.settings.drain_seconds)
        await shutdown()
        log.info("stopped")

    async def _run_startup(self, startup: Callable[[], Awaitable[None]]) -> None:
        def log_failure(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.warning("startup failed, retrying: %s", error, extra={"attempt": state.attempt_number})

        # Dependencies may come up later than the service (or go away): keep trying until stopped.
        async for attempt in AsyncRetrying(
            wait=wait_exponential(multiplier=0.2, max=5),
            retry=retry_if_exception_type(Exception),
            before_sleep=log_failure,
        ):
            with attempt:
                await startup()
        self._started = True
        await self.refresh_health()
        log.info("serving")


def write_port_file(path: Path, port: int) -> None:
    """Write the bound port atomically, so a reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{port}\n")
    tmp.replace(path)


def not_yet_servicer(base: type, service_full_name: str, what: str) -> Any:
    """A servicer whose every method answers UNIMPLEMENTED with `what` as the reason: for the methods of
    the contract whose agent logic has not been built, so that callers get a clear answer."""
    service = descriptor_pool.Default().FindServiceByName(service_full_name)
    methods: dict[str, Any] = {}
    for method in service.methods:
        message = f"{service.name}.{method.name} is not available yet: {what}"
        if method.server_streaming:

            async def stream(self: Any, request: Any, context: Any, _m: str = message) -> Any:
                await context.abort(grpc.StatusCode.UNIMPLEMENTED, _m)
                yield  # pragma: no cover - makes this an async generator

            methods[method.name] = stream
        else:

            async def unary(self: Any, request: Any, context: Any, _m: str = message) -> Any:
                await context.abort(grpc.StatusCode.UNIMPLEMENTED, _m)

            methods[method.name] = unary
    return type(f"NotYet{service.name}", (base,), methods)()
