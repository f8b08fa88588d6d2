"""What every service's entrypoint shares: settings, logging, the event bus, the gRPC host, and a clean
start and stop. A service only says which servicers it serves and what runs once its bus is connected."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from airlab.bus import EventBus
from airlab.grpc_server import ServiceHost
from airlab.logs import configure_logging
from airlab.settings import Settings

Hook = Callable[[], Awaitable[None]]
log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """The service cannot run on this host as configured (a missing tool, a bad setting): it exits with
    code 2 and this message instead of retrying."""


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


async def serve(name: str, settings: Settings, setup: Callable[[ServiceContext], None]) -> None:
    bus = EventBus(settings.nats_url, source=name, settings=settings.bus)
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

    await host.serve(startup, shutdown)


def run_service(name: str, setup: Callable[[ServiceContext], None]) -> None:
    """The console entrypoint of a service: the same command runs it alone, in `airlab up` and in a
    container; settings come from AIRLAB_* variables and airlab.yaml (airlab.settings.config_dirs)."""
    settings = Settings(service=name)
    configure_logging(name, settings.log_level, settings.log_format)
    try:
        asyncio.run(serve(name, settings, setup))
    except StartupError as exc:
        log.critical("cannot start: %s", exc)
        sys.exit(2)
