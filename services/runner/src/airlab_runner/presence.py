"""Which runners are alive, so that the jobs of one that died are not lost with it.

Several runners share one queue (the job records, claimed by compare-and-set). Each writes its own key in
a KV bucket with an expiry and renews it every third of the TTL. A runner whose key expired or is gone is
dead: the jobs it was running are queued again by whichever runner notices first (the requeue is keyed by
the job's attempt, so two runners noticing at once queue it once), and run from the start on any runner,
up to runner.max_attempts runs in all, after which the job fails saying why. Expiries are compared
across hosts: their clocks must agree to well within the TTL (NTP does)."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Callable

import nats.js.errors
from nats.js.kv import KeyValue

from airlab.state import Bus

log = logging.getLogger(__name__)

PRESENCE_BUCKET = "airlab_runners"


def _key(host: str) -> str:
    return "runner." + re.sub(r"[^A-Za-z0-9_-]", "-", host)


class RunnerPresence:
    def __init__(
        self, bus: Bus, host: str, *, ttl: float = 30.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.bus = bus
        self.host = host
        self.ttl = ttl
        self.clock = clock
        self._kv: KeyValue | None = None

    async def open(self) -> RunnerPresence:
        self._kv = await self.bus.key_value(PRESENCE_BUCKET, history=1)
        return self

    async def beat(self, slots: int) -> None:
        """Say this runner is alive for another TTL."""
        assert self._kv is not None
        value = {"host": self.host, "expires": self.clock() + self.ttl, "slots": slots}
        await self._kv.put(_key(self.host), json.dumps(value).encode())

    async def leave(self) -> None:
        """A runner that stops cleanly (its running jobs were cancelled) is no longer counted."""
        assert self._kv is not None
        with contextlib.suppress(nats.js.errors.KeyNotFoundError):
            await self._kv.delete(_key(self.host))

    async def alive(self) -> set[str]:
        """The hosts whose key has not expired (this one included once it beat)."""
        assert self._kv is not None
        now, hosts = self.clock(), set()
        for key in await self.bus.kv_keys(PRESENCE_BUCKET):
            try:
                entry = await self._kv.get(key)
            except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
                continue
            if not entry.value:
                continue
            doc = json.loads(entry.value)
            if doc.get("expires", 0) > now:
                hosts.add(str(doc["host"]))
        return hosts
