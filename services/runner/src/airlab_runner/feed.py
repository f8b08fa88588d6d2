"""Live updates of a running job (log lines, metric points, the final state) for any number of watchers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from airlab.v1 import runner_pb2

# Updates a feed keeps for late watchers; beyond this, only the stored log has the rest.
MAX_UPDATES = 200_000


class Feed:
    def __init__(self) -> None:
        self.updates: list[runner_pb2.JobUpdate] = []
        self.closed = False
        self.dropped = 0
        self._changed = asyncio.Condition()

    def push(self, update: runner_pb2.JobUpdate) -> None:
        """Add an update (call from the event loop's thread)."""
        if len(self.updates) >= MAX_UPDATES:
            self.dropped += 1
            return
        self.updates.append(update)
        asyncio.get_running_loop().create_task(self._notify())

    async def close(self, final: runner_pb2.Job) -> None:
        self.updates.append(runner_pb2.JobUpdate(final=final))
        self.closed = True
        await self._notify()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def follow(self) -> AsyncIterator[runner_pb2.JobUpdate]:
        """Every update from the first, then new ones as they come, until the final state."""
        index = 0
        while True:
            while index < len(self.updates):
                yield self.updates[index]
                index += 1
            if self.closed:
                return
            async with self._changed:
                if index == len(self.updates) and not self.closed:
                    await self._changed.wait()
