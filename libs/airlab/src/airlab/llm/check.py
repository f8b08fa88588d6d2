"""`airlab llm check`: for each agent, the endpoint it resolves to, whether it answers, a sample latency
and the decode speed."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import openai

from airlab.llm.config import LLMConfig, ServerConfig
from airlab.llm.prompts import render


@dataclass
class Probe:
    server: str
    url: str
    model: str
    ok: bool
    detail: str = ""
    latency_seconds: float = 0.0
    completion_tokens: int = 0

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.latency_seconds if self.latency_seconds else 0.0


async def probe(server: ServerConfig, timeout: float = 60.0) -> Probe:
    if not server.base_url:
        return Probe(server.name, "", server.model, False, "not started (run 'airlab up')")
    client = openai.AsyncOpenAI(
        base_url=server.base_url, api_key=server.api_key() or "not-needed", timeout=timeout, max_retries=0
    )
    began = time.monotonic()
    try:
        reply = await client.chat.completions.create(
            model=server.model,
            messages=render("check/ping").messages(),  # type: ignore[arg-type]
            max_tokens=32,
            temperature=0,
        )
    except openai.APIStatusError as exc:
        return Probe(server.name, server.base_url, server.model, False, f"HTTP {exc.status_code}")
    except openai.APIError as exc:
        return Probe(server.name, server.base_url, server.model, False, f"{type(exc).__name__}: {exc}")
    finally:
        await client.close()
    tokens = reply.usage.completion_tokens if reply.usage else 0
    return Probe(server.name, server.base_url, server.model, True, "", time.monotonic() - began, tokens)


async def check(config: LLMConfig) -> dict[str, tuple[Probe | None, list[Probe]]]:
    """agent -> (the probe of the server it resolves to, or None; every probe of its route)."""
    used = sorted({name for agent in config.agents.values() for name in agent.servers})
    probes = dict(zip(used, await asyncio.gather(*(probe(config.servers[n]) for n in used)), strict=True))
    result = {}
    for agent in sorted(config.agents):
        route = [probes[name] for name in config.agents[agent].servers]
        result[agent] = (next((p for p in route if p.ok), None), route)
    return result
