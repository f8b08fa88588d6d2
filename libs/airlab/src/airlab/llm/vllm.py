"""vLLM on GPUs: handing a GPU from the LLM server to an experiment and back through vLLM's sleep mode
(servers started with --enable-sleep-mode; the launch commands come from llm_servers.yaml)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import httpx

log = logging.getLogger(__name__)


def server_root(base_url: str) -> str:
    """vLLM's control endpoints (/sleep, /wake_up, /is_sleeping) live beside /v1, not under it."""
    url = base_url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


async def sleep(base_url: str, level: int = 1, timeout: float = 120.0) -> None:
    """Level 1 offloads the weights to CPU memory and drops the KV cache: the GPU's memory is free."""
    async with httpx.AsyncClient(timeout=timeout) as client:
        (await client.post(f"{server_root(base_url)}/sleep", params={"level": str(level)})).raise_for_status()


async def wake_up(base_url: str, timeout: float = 120.0) -> None:
    async with httpx.AsyncClient(timeout=timeout) as client:
        (await client.post(f"{server_root(base_url)}/wake_up")).raise_for_status()


async def is_sleeping(base_url: str, timeout: float = 10.0) -> bool:
    async with httpx.AsyncClient(timeout=timeout) as client:
        reply = await client.get(f"{server_root(base_url)}/is_sleeping")
        reply.raise_for_status()
        return bool(reply.json().get("is_sleeping"))


class VllmSleeper:
    """The vLLM servers that share GPUs with experiments: `servers` maps a GPU id to a server's URL."""

    def __init__(self, servers: dict[str, str], timeout: float = 120.0) -> None:
        self.servers = servers
        self.timeout = timeout

    def _urls(self, gpus: Sequence[str]) -> list[str]:
        return sorted({self.servers[g] for g in gpus if g in self.servers})

    async def sleep(self, gpus: Sequence[str]) -> list[str]:
        """Put the servers on these GPUs to sleep; returns the ones to wake afterwards."""
        urls = self._urls(gpus)
        for url in urls:
            await sleep(url, timeout=self.timeout)
        return urls

    async def wake(self, urls: Sequence[str]) -> None:
        for url in urls:
            try:
                await wake_up(url, timeout=self.timeout)
            except httpx.HTTPError as exc:
                log.error("could not wake vLLM at %s: %s", url, exc)
