"""The event bus on NATS JetStream: one stream for every event, durable pull consumers with explicit ack,
bounded redelivery then a dead-letter subject, and ordered replay for watchers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import nats
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue

from airlab import metrics, tracing
from airlab.bus_access import STREAM_OWNERS, BusCredentials
from airlab.events import DEAD_LETTER_AGGREGATE, follow_up_id, make_event, subject_for
from airlab.settings import BusSettings
from airlab.tls import TlsFiles
from airlab.v1 import events_pb2

log = logging.getLogger(__name__)

Handler = Callable[[events_pb2.Event], Awaitable[None]]


class BusRefused(nats.errors.AuthorizationError):
    """NATS refused the credentials (none, or a wrong password)."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def __str__(self) -> str:
        return self.message


class Publisher(Protocol):
    async def publish(self, event: events_pb2.Event) -> int: ...


class EventBus:
    """A connection to NATS JetStream. Create it unconnected, then `await connect()`: services register their
    gRPC handlers before their dependencies are up, and report SERVING only once `connected` is true."""

    def __init__(
        self,
        url: str,
        *,
        source: str,
        settings: BusSettings | None = None,
        credentials: BusCredentials | None = None,
        tls: TlsFiles | None = None,
    ) -> None:
        self.url = url
        self.source = source
        self.settings = settings or BusSettings()
        self.credentials = credentials
        # The lab's nats-server asks every client for a certificate of the lab's authority (mutual TLS).
        self.tls = tls
        self._nc: nats.NATS | None = None
        self._js: JetStreamContext | None = None
        self._listeners: list[Callable[[bool], Awaitable[None]]] = []
        self._consumers: list[Consumer] = []
        self._closing = False

    # -- connection ---------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("the event bus is not connected yet")
        return self._js

    def on_connection_change(self, listener: Callable[[bool], Awaitable[None]]) -> None:
        """`listener(connected)` runs after every disconnect and reconnect."""
        self._listeners.append(listener)

    async def _notify(self, connected: bool) -> None:
        for listener in self._listeners:
            try:
                await listener(connected)
            except Exception:
                log.exception("connection listener failed")

    async def connect(self, *, timeout: float = 30.0) -> None:
        """Connect (retrying until `timeout`), then create the stream if it does not exist."""

        async def disconnected() -> None:
            if not self._closing:
                log.warning("disconnected from NATS", extra={"url": self.url})
            await self._notify(False)

        async def reconnected() -> None:
            log.info("reconnected to NATS", extra={"url": self.url})
            await self._notify(True)

        refused = asyncio.Event()

        async def error(exc: Exception) -> None:
            log.warning("NATS client error: %s", exc)
            if "authorization" in str(exc).lower():
                refused.set()

        if self._nc is not None and not self._nc.is_closed:
            await self._nc.close()
        # nats-py keeps trying an unreachable server by itself; a refused user or password is final, so
        # it ends the wait at once instead of being retried until the timeout.
        connecting = asyncio.ensure_future(
            nats.connect(
                self.url,
                name=self.source,
                user=self.credentials.user if self.credentials else None,
                password=self.credentials.password if self.credentials else None,
                tls=self.tls.client_context() if self.tls else None,
                connect_timeout=2,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                disconnected_cb=disconnected,
                reconnected_cb=reconnected,
                error_cb=error,
            )
        )
        refusal = asyncio.ensure_future(refused.wait())
        await asyncio.wait({connecting, refusal}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        refusal.cancel()
        if not connecting.done():
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await connecting
            who = f"user {self.credentials.user!r}" if self.credentials else "a client without credentials"
            if refused.is_set():
                raise BusRefused(f"NATS at {self.url} refused {who}: wrong or missing credentials")
            raise TimeoutError(f"cannot reach NATS at {self.url} within {timeout:g} s")
        self._nc = connecting.result()
        assert self._nc is not None
        self._js = self._nc.jetstream()
        await self.ensure_stream()
        await self._notify(True)

    @property
    def owns_stream(self) -> bool:
        """Whether this client sets the events stream up: the manager (and admin tools), or anyone on a bus
        without users. Other services may not change it (airlab.bus_access)."""
        return self.credentials is None or self.credentials.user in STREAM_OWNERS

    async def ensure_stream(self, *, wait: float = 60.0) -> None:
        """The stream's owner creates the events stream, or brings an existing one to the configured
        settings (idempotent). Another service only waits until it exists (up to `wait` seconds): trying
        to create it would be a permissions violation on the lab's bus."""
        if not self.owns_stream:
            deadline = asyncio.get_running_loop().time() + wait
            while True:
                try:
                    await self.js.stream_info(self.settings.stream)
                    return
                except nats.js.errors.NotFoundError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"the events stream {self.settings.stream} was not created within "
                                       f"{wait:g} s: the manager creates it")  # fmt: skip
                log.info("waiting for the manager to create the events stream")
                await asyncio.sleep(0.5)
        config = self._stream_config()
        try:
            await self.js.add_stream(config)
        except nats.js.errors.BadRequestError:
            # Exists with another configuration: update it in place.
            await self.js.update_stream(config)

    def _stream_config(self) -> api.StreamConfig:
        return api.StreamConfig(
            name=self.settings.stream,
            subjects=["airlab.>"],
            storage=api.StorageType.FILE,
            retention=api.RetentionPolicy.LIMITS,
            duplicate_window=self.settings.duplicate_window_seconds,
            max_age=self.settings.retention_days * 86400,
        )

    async def key_value(self, bucket: str, *, history: int = 8) -> KeyValue:
        """Open a KV bucket, creating it on first use. Idempotent."""
        try:
            return await self.js.key_value(bucket)
        except nats.js.errors.BucketNotFoundError:
            return await self.js.create_key_value(
                api.KeyValueConfig(bucket=bucket, history=history, storage=api.StorageType.FILE)
            )

    async def kv_keys(self, bucket: str) -> list[str]:
        """Every key a KV bucket has held (deleted ones included: reading them says so), from the stream's
        own subject index. nats-py's KeyValue.keys() can come back empty while a key is being updated."""
        prefix = f"$KV.{bucket}."
        info = await self.js.stream_info(f"KV_{bucket}", subjects_filter=f"{prefix}>")
        return sorted(subject[len(prefix) :] for subject in (info.state.subjects or {}))

    async def close(self) -> None:
        """Stop consumers (letting in-flight handlers finish), then close the connection."""
        self._closing = True
        for consumer in list(self._consumers):
            await consumer.stop()
        if self._nc is not None and not self._nc.is_closed:
            # Consumers are stopped already; close() still flushes what was published.
            with contextlib.suppress(Exception):
                await self._nc.close()
        self._nc, self._js = None, None

    # -- publishing ---------------------------------------------------------------------------------------

    async def publish(self, event: events_pb2.Event) -> int:
        """Store an event in the stream; returns its sequence. An id already stored within the duplicate
        window is not stored again (the sequence of the first copy is returned)."""
        if not event.source:
            event.source = self.source
        ack = await self.js.publish(
            subject_for(event.type, event.research_id),
            event.SerializeToString(),
            # With tracing on, the event carries the publisher's trace context to its consumers.
            headers={"Nats-Msg-Id": event.id, **tracing.carrier()},
            stream=self.settings.stream,
        )
        return ack.seq

    # -- requests (not stored) ----------------------------------------------------------------------------

    async def request(self, subject: str, payload: bytes, *, timeout: float) -> bytes:
        """A core NATS request, outside the stream (nothing is stored): the answer's bytes. TimeoutError when
        nobody answers within `timeout` seconds (nobody listening included)."""
        if self._nc is None:
            raise RuntimeError("the event bus is not connected yet")
        try:
            reply = await self._nc.request(subject, payload, timeout=timeout)
        except nats.errors.NoRespondersError:
            raise TimeoutError(f"nobody answers on {subject}") from None
        except nats.errors.TimeoutError:
            raise TimeoutError(f"no answer on {subject} within {timeout:g} s") from None
        return reply.data

    async def answer(self, subject: str, handler: Callable[[bytes], Awaitable[bytes]], *, queue: str) -> None:
        """Answer the requests on `subject` (wildcards allowed) with `handler(payload)`; instances of one
        service share them through the queue group `queue`. A handler must answer every request (its
        errors inside the answer): one that raises leaves the asker to its timeout."""
        if self._nc is None:
            raise RuntimeError("the event bus is not connected yet")

        async def on_request(message: Msg) -> None:
            try:
                answer = await handler(message.data)
            except Exception:
                log.exception("answering a request failed", extra={"subject": message.subject})
                return
            with contextlib.suppress(Exception):  # the asker may be gone
                await message.respond(answer)

        await self._nc.subscribe(subject, queue=queue, cb=on_request)

    # -- consuming ----------------------------------------------------------------------------------------

    async def consume(
        self,
        durable: str,
        subjects: Sequence[str],
        handler: Handler,
        *,
        max_deliver: int | None = None,
        ack_wait: float | None = None,
        batch: int = 16,
        on_settled: Callable[[events_pb2.Event], None] | None = None,
    ) -> Consumer:
        """Run `handler` for every event on `subjects` through the durable consumer `durable`.

        A handler that returns has its message acked (and the ack confirmed by the server). One that raises
        gets it again with backoff, up to `max_deliver` deliveries; then the event goes to
        'airlab.deadletter.<durable>.<research>' and is terminated. Handlers must be idempotent by event id:
        a crash between the handler's effect and the ack delivers the event again. `on_settled(event)` runs
        after a confirmed ack (for metrics and benchmarks)."""
        max_deliver = max_deliver or self.settings.max_deliver
        config = api.ConsumerConfig(
            name=durable,
            durable_name=durable,
            ack_policy=api.AckPolicy.EXPLICIT,
            deliver_policy=api.DeliverPolicy.ALL,
            ack_wait=ack_wait or self.settings.ack_wait_seconds,
            # A backstop for messages that crash the process before the handler can count deliveries.
            max_deliver=max_deliver * 2,
            max_ack_pending=max(batch * 4, 64),
        )
        if len(subjects) == 1:
            config.filter_subject = subjects[0]
        else:
            config.filter_subjects = list(subjects)
        await self.js.add_consumer(self.settings.stream, config=config)
        subscription = await self.js.pull_subscribe_bind(durable=durable, stream=self.settings.stream)
        consumer = Consumer(
            self,
            durable,
            subscription,
            handler,
            max_deliver=max_deliver,
            batch=batch,
            ack_wait=config.ack_wait or self.settings.ack_wait_seconds,
            on_settled=on_settled,
        )
        self._consumers.append(consumer)
        consumer.start()
        return consumer

    async def dead_letter(self, durable: str, event: events_pb2.Event, error: str, deliveries: int) -> None:
        await self.publish(
            make_event(
                f"{DEAD_LETTER_AGGREGATE}.{durable.lower().replace('-', '_')}",
                event.research_id,
                events_pb2.DeadLetter(event=event, error=error[:4000], deliveries=deliveries),
                event_id=follow_up_id(event, f"dlq.{durable}"),
                correlation_id=event.id,
            )
        )

    # -- replay -------------------------------------------------------------------------------------------

    async def read(
        self, subject_filter: str, *, from_sequence: int = 0, follow: bool = False, idle_timeout: float = 1.0
    ) -> AsyncIterator[events_pb2.Event]:
        """Events matching `subject_filter` in stream order, from `from_sequence` (0: the first).

        Without `follow` it ends after the last stored event; with it, it waits for new ones until the
        caller stops."""
        config = api.ConsumerConfig(
            ack_policy=api.AckPolicy.NONE,
            deliver_policy=(
                api.DeliverPolicy.BY_START_SEQUENCE if from_sequence > 0 else api.DeliverPolicy.ALL
            ),
            opt_start_seq=from_sequence if from_sequence > 0 else None,
            filter_subject=subject_filter,
            inactive_threshold=60,
            mem_storage=True,
        )
        subscription = await self.js.pull_subscribe(
            subject_filter, stream=self.settings.stream, config=config
        )
        info = await subscription.consumer_info()
        try:
            remaining = info.num_pending or 0
            while follow or remaining > 0:
                try:
                    messages = await subscription.fetch(64, timeout=idle_timeout)
                except (nats.errors.TimeoutError, TimeoutError):
                    continue
                for message in messages:
                    remaining = message.metadata.num_pending
                    event = events_pb2.Event.FromString(message.data)
                    event.sequence = message.metadata.sequence.stream
                    yield event
        finally:
            # The server removes the consumer once it is idle (inactive_threshold): services may not delete
            # consumers on the events stream (airlab.bus_access), so nobody's can be deleted by another.
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()


@dataclass
class Consumer:
    """A running durable consumer; see EventBus.consume."""

    bus: EventBus
    durable: str
    subscription: JetStreamContext.PullSubscription
    handler: Handler
    max_deliver: int
    batch: int
    ack_wait: float
    on_settled: Callable[[events_pb2.Event], None] | None = None
    _task: asyncio.Task[None] | None = None
    _stopping: bool = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"consumer:{self.durable}")

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop fetching; the message in hand is finished (or cancelled after `timeout`)."""
        self._stopping = True
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        with contextlib.suppress(ValueError):
            self.bus._consumers.remove(self)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                messages = await self.subscription.fetch(self.batch, timeout=0.5)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError):
                return
            except Exception:
                log.exception("fetch failed", extra={"consumer": self.durable})
                await asyncio.sleep(0.5)
                continue
            for message in messages:
                if self._stopping:
                    # Not handled: leave it unacked so it is delivered again after a restart.
                    with contextlib.suppress(Exception):
                        await message.nak()
                    continue
                try:
                    await self._handle(message)
                except Exception:
                    # Acking or dead-lettering failed (connection lost?): the server delivers it again.
                    log.exception("could not settle a message", extra={"consumer": self.durable})

    async def _keep_in_progress(self, message: Msg) -> None:
        interval = max(self.ack_wait / 3, 0.5)
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(Exception):
                await message.in_progress()

    async def _handle(self, message: Msg) -> None:
        deliveries = message.metadata.num_delivered
        try:
            event = events_pb2.Event.FromString(message.data)
            event.sequence = message.metadata.sequence.stream
        except Exception as exc:
            log.error("undecodable message sent to dead letters", extra={"subject": message.subject})
            bogus = make_event("bus.undecodable", body=events_pb2.Undecodable(subject=message.subject))
            await self.bus.dead_letter(self.durable, bogus, repr(exc), deliveries)
            await message.term()
            return
        # A long handler (an LLM call, a smoke run) tells the server it is still at work, so the message
        # is not delivered to anyone else meanwhile.
        heartbeat = asyncio.create_task(self._keep_in_progress(message))
        if deliveries > 1:
            metrics.REDELIVERIES.labels(self.durable).inc()
        metrics.CONSUMER_PENDING.labels(self.durable).set(message.metadata.num_pending)
        began = time.perf_counter()
        traced = tracing.handling(self.durable, event.type, event.id, event.research_id, message.headers)
        try:
            with traced:
                await self.handler(event)
        except Exception as exc:
            heartbeat.cancel()
            metrics.EVENT_HANDLING.labels(self.durable, event.type).observe(time.perf_counter() - began)
            last = deliveries >= self.max_deliver
            outcome = "dead_lettered" if last else "retried"
            metrics.EVENTS_HANDLED.labels(self.durable, event.type, outcome).inc()
            if last:
                metrics.DEAD_LETTERS.labels(self.durable).inc()
                log.exception(
                    "handler failed for the last time; event goes to dead letters",
                    extra={"consumer": self.durable, "event_id": event.id, "deliveries": deliveries},
                )
                await self.bus.dead_letter(self.durable, event, f"{type(exc).__name__}: {exc}", deliveries)
                await message.term()
            else:
                log.warning(
                    "handler failed; will retry",
                    exc_info=True,
                    extra={"consumer": self.durable, "event_id": event.id, "deliveries": deliveries},
                )
                await message.nak(delay=min(0.2 * 2 ** (deliveries - 1), 10.0))
            return
        finally:
            heartbeat.cancel()
        metrics.EVENT_HANDLING.labels(self.durable, event.type).observe(time.perf_counter() - began)
        await message.ack_sync(timeout=5)
        metrics.EVENTS_HANDLED.labels(self.durable, event.type, "acked").inc()
        if self.on_settled is not None:
            self.on_settled(event)
