"""GPUs: what this host has, and leases that give each GPU to one holder at a time.

Leases live in a JetStream KV bucket, one key per GPU, taken by compare-and-set: `create` when free,
`update` on the exact revision when the previous holder's lease expired. Holders renew (heartbeat)
before the TTL runs out; a crashed holder's lease simply expires. If a local vLLM server owns a GPU, it is
asked to sleep before a job gets the GPU and woken after (airlab.llm.vllm.VllmSleeper)."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import nats.js.errors
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

LEASE_BUCKET = "airlab_gpu_leases"


def detect_gpus(configured: Sequence[str] = ()) -> list[str]:
    """GPU ids from nvidia-smi when it is present, else the configured list (a simulated inventory)."""
    if shutil.which("nvidia-smi"):
        try:
            listing = subprocess.run(
                ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=10, check=True,
            ).stdout  # fmt: skip
            found = [line.strip() for line in listing.splitlines() if line.strip()]
            if found:
                return found
        except (subprocess.SubprocessError, OSError) as exc:
            log.warning("nvidia-smi failed; using the configured GPU list: %s", exc)
    return list(configured)


@dataclass
class Lease:
    gpu: str
    holder: str
    job_id: str
    expires: float
    revision: int


class GpuLeases:
    def __init__(
        self, kv: KeyValue, inventory: Sequence[str], *, holder: str, ttl: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.kv = kv
        self.inventory = list(inventory)
        self.holder = holder
        self.ttl = ttl
        self.clock = clock

    @staticmethod
    def _key(gpu: str) -> str:
        return f"gpu.{gpu}"

    async def _read(self, gpu: str) -> Lease | None:
        try:
            entry = await self.kv.get(self._key(gpu))
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return None
        if not entry.value:
            return Lease(gpu, "", "", 0.0, entry.revision or 0)  # released: a tombstone to take over
        doc = json.loads(entry.value)
        return Lease(gpu, doc["holder"], doc["job_id"], doc["expires"], entry.revision or 0)

    def _value(self, job_id: str) -> bytes:
        return json.dumps(
            {"holder": self.holder, "job_id": job_id, "expires": self.clock() + self.ttl}
        ).encode()

    async def _take(self, gpu: str, job_id: str) -> bool:
        current = await self._read(gpu)
        try:
            if current is None:
                await self.kv.create(self._key(gpu), self._value(job_id))
            elif current.expires < self.clock():
                await self.kv.update(self._key(gpu), self._value(job_id), last=current.revision)
            else:
                return False
        except nats.js.errors.KeyWrongLastSequenceError:
            return False  # someone else took it first
        return True

    async def try_acquire(self, job_id: str, count: int) -> list[str] | None:
        """`count` GPUs for `job_id`, or None (and nothing held) when that many are not free now."""
        if count > len(self.inventory):
            raise ValueError(f"{count} GPUs asked for; this host has {len(self.inventory)}")
        taken: list[str] = []
        for gpu in self.inventory:
            if len(taken) == count:
                break
            if await self._take(gpu, job_id):
                taken.append(gpu)
        if len(taken) < count:
            await self.release(job_id, taken)
            return None
        return taken

    async def heartbeat(self, job_id: str, gpus: Sequence[str]) -> None:
        """Extend the job's leases; a lease lost meanwhile raises LookupError."""
        for gpu in gpus:
            current = await self._read(gpu)
            if current is None or (current.holder, current.job_id) != (self.holder, job_id):
                raise LookupError(f"GPU {gpu} is no longer leased to job {job_id}")
            await self.kv.update(self._key(gpu), self._value(job_id), last=current.revision)

    async def release(self, job_id: str, gpus: Sequence[str]) -> None:
        for gpu in gpus:
            current = await self._read(gpu)
            if current is not None and (current.holder, current.job_id) == (self.holder, job_id):
                # Failing CAS: it expired and was taken over meanwhile, so it is not ours to release.
                with contextlib.suppress(nats.js.errors.KeyWrongLastSequenceError):
                    await self.kv.update(self._key(gpu), b"", last=current.revision)

    async def holders(self) -> dict[str, Lease]:
        """GPU -> its live lease."""
        now = self.clock()
        found = {}
        for gpu in self.inventory:
            lease = await self._read(gpu)
            if lease and lease.holder and lease.expires >= now:
                found[gpu] = lease
        return found
