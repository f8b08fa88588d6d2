"""What LLM calls cost: tokens, latency and dollars per call, summed per agent and per research, and the
budget check that refuses a call before it would overspend. Every exchange is kept for audit."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from airlab.blobs import ArtifactStore
from airlab.errors import LabError, NotFound
from airlab.state import Bus, Change, StateStore

USAGE_BUCKET = "airlab_llm_usage"


class BudgetExceeded(LabError):
    """The call would take the research past its token or cost budget: it was not made."""

    code = "RESOURCE_EXHAUSTED"


@dataclass
class Usage:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_seconds: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def plus(self, other: Usage) -> Usage:
        return Usage(
            self.calls + other.calls,
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cost_usd + other.cost_usd,
            self.latency_seconds + other.latency_seconds,
        )


@dataclass
class ResearchUsage:
    agents: dict[str, Usage] = field(default_factory=dict)

    @property
    def total(self) -> Usage:
        total = Usage()
        for usage in self.agents.values():
            total = total.plus(usage)
        return total

    def to_dict(self) -> dict[str, Any]:
        return {"agents": {a: asdict(u) for a, u in self.agents.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResearchUsage:
        return cls({a: Usage(**u) for a, u in data.get("agents", {}).items()})


class UsageCodec:
    """The usage bucket's codec (airlab.state.Codec)."""

    def decode(self, data: dict[str, Any]) -> ResearchUsage:
        return ResearchUsage.from_dict(data)

    def encode(self, value: ResearchUsage) -> dict[str, Any]:
        return value.to_dict()


def usage_store(bus: Bus) -> StateStore[ResearchUsage]:
    """The lab's LLM usage per research (open it before use)."""
    return StateStore(bus, USAGE_BUCKET, UsageCodec(), kind="usage")


@dataclass
class Budget:
    """0 means no limit."""

    max_tokens: int = 0
    max_cost_usd: float = 0.0

    def check(self, spent: Usage, estimated_tokens: int, estimated_cost: float) -> None:
        if self.max_tokens and spent.tokens + estimated_tokens > self.max_tokens:
            raise BudgetExceeded(
                f"token budget: {spent.tokens} of {self.max_tokens} spent; this call may take "
                f"{estimated_tokens} more"
            )
        if self.max_cost_usd and spent.cost_usd + estimated_cost > self.max_cost_usd:
            raise BudgetExceeded(
                f"cost budget: ${spent.cost_usd:.4f} of ${self.max_cost_usd:.2f} spent; this call may cost "
                f"${estimated_cost:.4f} more"
            )


class UsageLedger(Protocol):
    async def usage(self, research_id: str) -> ResearchUsage: ...
    async def add(self, research_id: str, agent: str, usage: Usage) -> None: ...


class LocalUsageLedger:
    """Usage kept in this process (for tools that run alone); services use KvUsageLedger."""

    def __init__(self) -> None:
        self.researches: dict[str, ResearchUsage] = {}
        self._lock = asyncio.Lock()

    async def usage(self, research_id: str) -> ResearchUsage:
        return self.researches.get(research_id, ResearchUsage())

    async def add(self, research_id: str, agent: str, usage: Usage) -> None:
        async with self._lock:
            record = self.researches.setdefault(research_id, ResearchUsage())
            record.agents[agent] = record.agents.get(agent, Usage()).plus(usage)


class KvUsageLedger:
    """Usage per research in a JetStream KV bucket, shared by every service, changed by CAS."""

    def __init__(self, store: StateStore[ResearchUsage]) -> None:
        self.store = store

    async def usage(self, research_id: str) -> ResearchUsage:
        try:
            return (await self.store.get(research_id)).value
        except NotFound:
            return ResearchUsage()

    async def add(self, research_id: str, agent: str, usage: Usage) -> None:
        def add(record: ResearchUsage) -> Change[ResearchUsage]:
            record.agents[agent] = record.agents.get(agent, Usage()).plus(usage)
            return Change(record)

        try:
            await self.store.mutate(research_id, add)
        except NotFound:
            try:
                await self.store.create(research_id, ResearchUsage({agent: usage}))
            except LabError:  # created meanwhile by another call: add to it
                await self.store.mutate(research_id, add)


@dataclass
class Exchange:
    """One call to an LLM, as it was: what the agent was told and what it said."""

    id: str
    research_id: str
    agent: str
    purpose: str
    prompt: str
    prompt_version: str
    server: str
    model: str
    messages: list[dict[str, Any]]
    response: str
    prompt_tokens: int
    completion_tokens: int
    latency_seconds: float
    cost_usd: float
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    error: str = ""


class ExchangeLog(Protocol):
    async def record(self, exchange: Exchange) -> None: ...


class ArtifactExchangeLog:
    """Exchanges as JSON files in the research's artifacts: research/<id>/llm/<agent>/<time>-<id>.json."""

    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    @staticmethod
    def key(exchange: Exchange) -> str:
        stamp = exchange.time.replace(":", "").replace("-", "").split(".")[0]
        return f"research/{exchange.research_id or '_lab'}/llm/{exchange.agent}/{stamp}-{exchange.id}.json"

    async def record(self, exchange: Exchange) -> None:
        body = json.dumps(asdict(exchange), indent=1).encode()
        await asyncio.to_thread(self.store.put, self.key(exchange), body, content_type="application/json")

    def read(self, research_id: str, agent: str = "") -> list[Exchange]:
        prefix = f"research/{research_id}/llm/" + (f"{agent}/" if agent else "")
        return [Exchange(**json.loads(self.store.get(info.key))) for info in self.store.list(prefix)]
