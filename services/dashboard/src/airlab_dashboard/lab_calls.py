"""The dashboard's side of the Lab API: calls made with the signed-in user's token, gRPC errors as HTTP
errors (or a trip to the login page), and a research's events followed as server-sent events."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
from fastapi import HTTPException, Request

from airlab import auth
from airlab.grpc_client import channel
from airlab.tls import TlsFiles
from airlab.v1 import lab_pb2, lab_pb2_grpc


class LabCalls:
    """The Lab API with one user's token; gRPC errors become HTTP answers."""

    def __init__(self, address: str, token: str, tls: TlsFiles | None = None) -> None:
        self.address = address
        self.token = token
        self.tls = tls

    @contextmanager
    def stub(self) -> Iterator[lab_pb2_grpc.LabServiceStub]:
        with channel(self.address, token=self.token, tls=self.tls) as lab_channel:
            yield lab_pb2_grpc.LabServiceStub(lab_channel)

    def call(self, method: str, request: Any) -> Any:
        with self.stub() as stub:
            try:
                return getattr(stub, method)(request)
            except grpc.RpcError as exc:
                raise http_error(exc) from None

    def events(self, research_id: str, from_sequence: int = 0) -> list[tuple[int, Any]]:
        with self.stub() as stub:
            try:
                stream = stub.WatchResearch(
                    lab_pb2.WatchResearchRequest(id=research_id, from_sequence=from_sequence, follow=False),
                    timeout=30,
                )
                return [(event.sequence, event) for event in stream]
            except grpc.RpcError as exc:
                raise http_error(exc) from None


class NeedsLogin(Exception):
    pass


def http_error(exc: grpc.RpcError) -> Exception:
    code, details = exc.code(), exc.details() or ""
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return NeedsLogin(details)
    status = {
        grpc.StatusCode.PERMISSION_DENIED: 403,
        grpc.StatusCode.NOT_FOUND: 404,
        grpc.StatusCode.INVALID_ARGUMENT: 400,
        grpc.StatusCode.FAILED_PRECONDITION: 409,
        grpc.StatusCode.ALREADY_EXISTS: 409,
        grpc.StatusCode.UNAVAILABLE: 503,
    }.get(code, 502)
    return HTTPException(status, f"{code.name}: {details}")


def principal_name(calls: LabCalls) -> str:
    """Who the token names (for the upload's folder), as a safe folder name."""
    name = auth.claimed_name(calls.token) or "unknown"
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:64] or "unknown"


async def follow(calls: LabCalls, research_id: str, after: int, request: Request) -> AsyncIterator[bytes]:
    """The research's events as server-sent events, until the browser goes away."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    stop = threading.Event()
    calls_holder: list[Any] = []

    def pump() -> None:
        with calls.stub() as stub:
            call = stub.WatchResearch(
                lab_pb2.WatchResearchRequest(
                    id=research_id, from_sequence=after + 1 if after else 0, follow=True
                )
            )
            calls_holder.append(call)
            try:
                for event in call:
                    if stop.is_set():
                        break
                    loop.call_soon_threadsafe(queue.put_nowait, event)
            except grpc.RpcError:
                pass
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

    worker = threading.Thread(target=pump, daemon=True, name=f"watch-{research_id}")
    worker.start()
    try:
        yield b": connected\n\n"
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), timeout=15)
            except TimeoutError:
                if await request.is_disconnected():
                    return
                yield b": keep-alive\n\n"
                continue
            if event is None:
                return
            data = json.dumps(
                {"type": event.type, "time": event.time.ToMilliseconds(), "sequence": event.sequence}
            )
            yield f"id: {event.sequence}\nevent: research\ndata: {data}\n\n".encode()
    finally:
        stop.set()
        for call in calls_holder:
            call.cancel()
