"""What every service's entrypoint shares: settings, logging, the event bus, the gRPC host, and a clean
start and stop. A service only says which servicers it serves and what runs once its bus is connected."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from google.protobuf import message
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from airlab import bus_access, tls, tracing
from airlab.bus import EventBus
from airlab.events import follow_up_id, make_event, type_filter
from airlab.grpc_server import ServiceHost
from airlab.logs import configure_logging
from airlab.settings import Settings
from airlab.v1 import events_pb2

Hook = Callable[[], Awaitable[object]]
log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """The service cannot run on this host as configured (a missing tool, a bad setting): it exits with
    code 2 and this message instead of retrying."""


# An agent's answer to a request event: the reply's event type and body.
Answerer = Callable[[events_pb2.Event], Awaitable[tuple[str, message.Message]]]


@dataclass
class ServiceContext:
    name: str
    settings: Settings
    bus: EventBus
    host: ServiceHost
    startup: list[Hook] = field(default_factory=list)
    shutdown: list[Hook] = field(default_factory=list)

    def on_start(self, hook: Hook) -> None:
        """Run `hook` once the bus is connected, before the service reports SERVING."""
        self.startup.append(hook)

    def on_stop(self, hook: Hook) -> None:
        """Run `hook` after in-flight calls drained, before the bus closes."""
        self.shutdown.append(hook)

    def answer(self, consumer: str, agents: Mapping[str, tuple[Answerer, str]]) -> None:
        """Once started, answer every event of each request type with the reply its agent returns (an
        event type and its body), one request at a time (each may take minutes: LLM calls, smoke runs).
        `agents`: request type -> (agent, reply id suffix). The reply's id follows from the request's, so
        answering a redelivered request again is stored once."""

        async def handle(event: events_pb2.Event) -> None:
            agent, suffix = agents[event.type]
            reply_type, body = await agent(event)
            reply = make_event(
                reply_type,
                event.research_id,
                body,
                event_id=follow_up_id(event, suffix),
                correlation_id=event.id,
                source=self.name,
            )
            # The answer may have cost minutes of LLM time: through a bus outage it is kept and published
            # again (the same id, so it is stored once) rather than thrown away and asked for again.
            async for attempt in AsyncRetrying(
                wait=wait_exponential(multiplier=0.2, max=5),
                stop=stop_after_delay(self.settings.bus.publish_retry_seconds),
                retry=retry_if_exception_type(Exception),
                before_sleep=lambda state: log.warning(
                    "could not publish an answer, retrying", extra={"attempt": state.attempt_number}
                ),
                reraise=True,
            ):
                with attempt:
                    await self.bus.publish(reply)

        async def start() -> None:
            await self.bus.consume(consumer, [type_filter(t) for t in agents], handle, batch=1)

        self.on_start(start)


async def serve(name: str, settings: Settings, setup: Callable[[ServiceContext], None]) -> None:
    bus = EventBus(
        settings.nats_url,
        source=name,
        settings=settings.bus,
        credentials=bus_access.credentials_for(settings, name),
        tls=tls.own_files(settings.tls),
    )
    host = ServiceHost(name, settings)
    host.require(lambda: bus.connected)
    bus.on_connection_change(host.refresh_health)
    context = ServiceContext(name=name, settings=settings, bus=bus, host=host)
    setup(context)

    async def startup() -> None:
        await bus.connect()
        for hook in context.startup:
            await hook()

    async def shutdown() -> None:
        for hook in context.shutdown:
            await hook()
        await bus.close()
        await asyncio.to_thread(tracing.shutdown)  # the last batched spans

    await host.serve(startup, shutdown)


def run_service(name: str, setup: Callable[[ServiceContext], None]) -> None:
    """The console entrypoint of a service: the same command runs it alone, in `airlab up` and in a
    container; settings come from AIRLAB_* variables and airlab.yaml (airlab.settings.config_dirs)."""
    settings = Settings(service=name)
    configure_logging(name, settings.log_level, settings.log_format)
    tracing.configure(name, settings.otel_endpoint)
    try:
        asyncio.run(serve(name, settings, setup))
    except StartupError as exc:
        log.critical("cannot start: %s", exc)
        sys.exit(2)
