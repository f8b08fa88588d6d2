"""The dashboard's "lab" page: what the whole lab is doing, from the same /metrics endpoints Prometheus
scrapes (airlab.metrics): runner slots busy, the queue and its wait, the LLM's tokens per second, events
waiting per consumer, dead letters, and researches by state. Read when the page is asked for: no
Prometheus needed. Aggregates only: no research's id, goal or owner appears here."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

FETCH_SECONDS = 2.0


@dataclass
class LabMetrics:
    slots: float = 0.0
    slots_busy: float = 0.0
    queue: float = 0.0
    queue_wait_seconds: float = 0.0  # summed over the jobs that started
    queue_waits: float = 0.0  # how many jobs started
    jobs_ended: dict[str, float] = field(default_factory=dict)  # by final state
    llm_calls: float = 0.0
    llm_errors: float = 0.0
    llm_seconds: float = 0.0
    tokens: dict[str, float] = field(default_factory=dict)  # by direction: prompt, completion
    pending: dict[str, float] = field(default_factory=dict)  # events waiting, by consumer
    dead_letters: float = 0.0
    researches: dict[str, float] = field(default_factory=dict)  # by state
    unreachable: list[str] = field(default_factory=list)  # services whose endpoint did not answer

    @property
    def occupancy(self) -> float | None:
        return self.slots_busy / self.slots if self.slots else None

    @property
    def mean_queue_wait(self) -> float | None:
        return self.queue_wait_seconds / self.queue_waits if self.queue_waits else None

    @property
    def tokens_per_second(self) -> float | None:
        """Completion tokens per second of LLM call time: what the LLM servers gave while they worked."""
        return self.tokens.get("completion", 0.0) / self.llm_seconds if self.llm_seconds else None


def parse(texts: Iterable[str]) -> LabMetrics:
    """The lab's figures from the services' metrics pages (Prometheus text format), summed across them."""
    lab = LabMetrics()
    for text in texts:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                _add(lab, sample.name, sample.labels, sample.value)
    return lab


def _add(lab: LabMetrics, name: str, labels: Mapping[str, str], value: float) -> None:
    def bump(into: dict[str, float], key: str) -> None:
        into[key] = into.get(key, 0.0) + value

    if name == "airlab_runner_slots":
        lab.slots += value
    elif name == "airlab_runner_slots_busy":
        lab.slots_busy += value
    elif name == "airlab_runner_queue_length":
        lab.queue += value
    elif name == "airlab_runner_queue_wait_seconds_sum":
        lab.queue_wait_seconds += value
    elif name == "airlab_runner_queue_wait_seconds_count":
        lab.queue_waits += value
    elif name == "airlab_runner_jobs_total":
        bump(lab.jobs_ended, labels.get("state", ""))
    elif name == "airlab_llm_calls_total":
        lab.llm_calls += value
        lab.llm_errors += value if labels.get("outcome") == "error" else 0.0
    elif name == "airlab_llm_call_seconds_sum":
        lab.llm_seconds += value
    elif name == "airlab_llm_tokens_total":
        bump(lab.tokens, labels.get("direction", ""))
    elif name == "airlab_consumer_pending_messages":
        bump(lab.pending, labels.get("consumer", ""))
    elif name == "airlab_dead_letters_total":
        lab.dead_letters += value
    elif name == "airlab_researches":
        bump(lab.researches, labels.get("state", ""))


async def read(urls: Mapping[str, str], timeout: float = FETCH_SECONDS) -> LabMetrics:
    """Fetch every service's metrics page at once and sum them; a service that does not answer is named
    in `unreachable` and left out."""

    async def fetch(client: httpx.AsyncClient, url: str) -> str | None:
        try:
            reply = await client.get(url)
            reply.raise_for_status()
            return reply.text
        except httpx.HTTPError:
            return None

    async with httpx.AsyncClient(timeout=timeout) as client:
        pages = await asyncio.gather(*(fetch(client, url) for url in urls.values()))
    lab = parse(page for page in pages if page is not None)
    lab.unreachable = [name for name, page in zip(urls, pages, strict=True) if page is None]
    return lab
