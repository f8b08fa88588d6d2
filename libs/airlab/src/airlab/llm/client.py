"""The one LLM client every agent uses: routing per agent with ordered fallback, retries with backoff on
429/5xx/connection errors, a circuit breaker per server, structured output validated into pydantic
models (and repaired by asking again), accounting, budgets and an audit log of every exchange."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import openai
from pydantic import BaseModel, ValidationError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from airlab import metrics, tracing
from airlab.errors import LabError, Unavailable
from airlab.ids import new_id
from airlab.llm.accounting import Budget, Exchange, ExchangeLog, LocalUsageLedger, Usage, UsageLedger
from airlab.llm.config import LLMConfig, ServerConfig
from airlab.llm.prompts import Prompt

log = logging.getLogger(__name__)
T = TypeVar("T", bound=BaseModel)
Messages = list[dict[str, str]]
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)


class NoEndpointAnswered(Unavailable):
    """Every server an agent may use failed or has its circuit open; the message lists why, per server."""


class InvalidModelOutput(LabError):
    """The model kept answering with output that does not match the requested schema."""

    code = "INTERNAL"


class CircuitBreaker:
    """After `threshold` consecutive failures a server is skipped for `cooldown` seconds; then one trial
    call decides whether it is back."""

    def __init__(
        self, threshold: int = 3, cooldown: float = 30.0, clock: Callable[[], float] = time.monotonic
    ):
        self.threshold, self.cooldown, self.clock = threshold, cooldown, clock
        self.failures = 0
        self.opened_at: float | None = None

    def allow(self) -> bool:
        # Closed, or open long enough that one trial call may go (half-open).
        return self.opened_at is None or self.clock() - self.opened_at >= self.cooldown

    def success(self) -> None:
        self.failures, self.opened_at = 0, None

    def failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self.opened_at = self.clock()

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.allow() else "open"


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, openai.APIConnectionError):  # timeouts included
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return False


def response_format(server: ServerConfig, model: type[BaseModel]) -> dict[str, Any]:
    """The constrained-decoding request each server honours for a JSON schema."""
    schema = model.model_json_schema()
    if server.kind == "llamacpp":
        return {"type": "json_object", "schema": schema}  # llama.cpp answers json_schema with HTTP 500
    return {"type": "json_schema", "json_schema": {"name": model.__name__, "schema": schema}}


def parse_reply(model: type[T], text: str) -> T:
    """Validate a reply (tolerating a Markdown code fence around the JSON)."""
    match = _FENCE.match(text)
    return model.model_validate_json(match.group(1) if match else text)


@dataclass
class Completion:
    text: str
    server: str
    model: str
    usage: Usage
    exchange_id: str


@dataclass
class RetryPolicy:
    initial_seconds: float = 0.5
    max_seconds: float = 8.0


class LLMClient:
    def __init__(
        self,
        config: LLMConfig,
        *,
        ledger: UsageLedger | None = None,
        exchanges: ExchangeLog | None = None,
        retry: RetryPolicy | None = None,
        breaker_threshold: int = 3,
        breaker_cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.ledger = ledger or LocalUsageLedger()
        self.exchanges = exchanges
        self.retry = retry or RetryPolicy()
        self.breakers = {
            name: CircuitBreaker(breaker_threshold, breaker_cooldown, clock) for name in config.servers
        }
        self._clients: dict[str, openai.AsyncOpenAI] = {}

    def _client(self, server: ServerConfig) -> openai.AsyncOpenAI:
        if server.name not in self._clients:
            if not server.base_url:
                raise Unavailable(
                    f"LLM server {server.name!r} has no base_url (is the local server running?)"
                )
            self._clients[server.name] = openai.AsyncOpenAI(
                base_url=server.base_url,
                api_key=server.api_key() or "not-needed",
                timeout=server.timeout_seconds,
                max_retries=0,  # retries are ours: with backoff, then the next server
            )
        return self._clients[server.name]

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()

    # -- calls ----------------------------------------------------------------------------------------------

    async def complete(
        self,
        agent: str,
        prompt: Prompt | Messages,
        *,
        research_id: str = "",
        purpose: str = "",
        budget: Budget | None = None,
        response_model: type[BaseModel] | None = None,
        max_tokens: int | None = None,
        source: Prompt | None = None,
        temperature: float | None = None,
    ) -> Completion:
        """One chat completion for `agent`, from the first of its servers that answers. `prompt` is a
        rendered Prompt or plain messages; `source` names the Prompt plain messages came from (audit);
        `temperature` overrides the agent's for this call."""
        route = self.config.route(agent)
        settings = self.config.agents[agent]
        messages = prompt.messages() if isinstance(prompt, Prompt) else list(prompt)
        source = prompt if isinstance(prompt, Prompt) else source
        max_tokens = max_tokens or settings.max_tokens
        if budget is not None:
            spent = (await self.ledger.usage(research_id)).total
            estimate = len(json.dumps(messages)) // 3 + max_tokens
            worst_price = max(s.price.cost(estimate, max_tokens) for s in route)
            budget.check(spent, estimate, worst_price)
        problems = []
        for server in route:
            breaker = self.breakers[server.name]
            if not breaker.allow():
                problems.append(f"{server.name}: circuit open after {breaker.failures} failures")
                continue
            try:
                with tracing.span(
                    f"llm {agent}",
                    kind=tracing.SpanKind.CLIENT,
                    attributes={"gen_ai.request.model": server.model, "airlab.agent": agent,
                                "airlab.llm_server": server.name, "airlab.purpose": purpose},
                ) as span:  # fmt: skip
                    completion = await self._call(
                        server,
                        agent,
                        messages,
                        settings.temperature if temperature is None else temperature,
                        max_tokens,
                        response_model,
                    )
                    if span is not None:
                        span.set_attribute("gen_ai.usage.input_tokens", completion.usage.prompt_tokens)
                        span.set_attribute("gen_ai.usage.output_tokens", completion.usage.completion_tokens)
                        span.set_attribute("airlab.latency_seconds", completion.usage.latency_seconds)
            except Exception as exc:
                breaker.failure()
                metrics.LLM_CALLS.labels(agent, server.model, "error").inc()
                problems.append(f"{server.name} ({server.base_url or 'not started'}): {_describe(exc)}")
                log.warning(
                    "LLM server failed",
                    extra={"server": server.name, "agent": agent, "error": _describe(exc)},
                )
                continue
            breaker.success()
            _count(agent, server.model, completion.usage)
            await self.ledger.add(research_id, agent, completion.usage)
            await self._audit(completion, agent, research_id, purpose, source, messages)
            return completion
        raise NoEndpointAnswered(f"no LLM endpoint answered for agent {agent!r}: " + "; ".join(problems))

    async def _call(
        self,
        server: ServerConfig,
        agent: str,
        messages: Messages,
        temperature: float,
        max_tokens: int,
        response_model: type[BaseModel] | None,
    ) -> Completion:
        client = self._client(server)
        extra: dict[str, Any] = {}
        if response_model is not None:
            extra["response_format"] = response_format(server, response_model)
        began = time.monotonic()
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(server.max_retries + 1),
            wait=wait_exponential_jitter(multiplier=self.retry.initial_seconds, max=self.retry.max_seconds),
            retry=retry_if_exception(_retryable),
            reraise=True,
        ):
            with attempt:
                reply = await client.chat.completions.create(
                    model=server.model,
                    messages=messages,  # type: ignore[arg-type]
                    temperature=temperature,
                    max_tokens=max_tokens,
                    **extra,
                )
        latency = time.monotonic() - began
        usage = reply.usage
        prompt_tokens = usage.prompt_tokens if usage else 0
        completion_tokens = usage.completion_tokens if usage else 0
        text = reply.choices[0].message.content or "" if reply.choices else ""
        cost = server.price.cost(prompt_tokens, completion_tokens)
        return Completion(
            text=text,
            server=server.name,
            model=reply.model or server.model,
            usage=Usage(1, prompt_tokens, completion_tokens, cost, latency),
            exchange_id=new_id("x"),
        )

    async def _audit(
        self, completion: Completion, agent: str, research_id: str, purpose: str, source: Prompt | None,
        messages: Messages,
    ) -> None:  # fmt: skip
        if self.exchanges is None:
            return
        await self.exchanges.record(
            Exchange(
                id=completion.exchange_id,
                research_id=research_id,
                agent=agent,
                purpose=purpose,
                prompt=source.name if source else "",
                prompt_version=source.version if source else "",
                server=completion.server,
                model=completion.model,
                messages=messages,
                response=completion.text,
                prompt_tokens=completion.usage.prompt_tokens,
                completion_tokens=completion.usage.completion_tokens,
                latency_seconds=completion.usage.latency_seconds,
                cost_usd=completion.usage.cost_usd,
            )
        )

    async def structured(
        self,
        agent: str,
        model: type[T],
        prompt: Prompt | Messages,
        *,
        research_id: str = "",
        purpose: str = "",
        budget: Budget | None = None,
        repairs: int = 2,
        max_tokens: int | None = None,
        show_schema: bool = True,
    ) -> T:
        """A validated `model` instance. Invalid output is sent back with the validation error, up to
        `repairs` times, then InvalidModelOutput. `show_schema`: the schema goes in the prompt too
        (constrained decoding helps, a model still reads its task); False where the prompt already says
        the form and the schema would crowd a small model's context."""
        messages = prompt.messages() if isinstance(prompt, Prompt) else list(prompt)
        if show_schema:
            schema = json.dumps(model.model_json_schema())
            last = messages[-1]
            messages = [
                *messages[:-1],
                {**last, "content": f"{last['content']}\n\nJSON schema of the reply:\n{schema}"},
            ]
        errors: list[str] = []
        for attempt in range(repairs + 1):
            completion = await self.complete(
                agent,
                messages,
                source=prompt if isinstance(prompt, Prompt) else None,
                research_id=research_id,
                purpose=purpose if attempt == 0 else f"{purpose} (repair {attempt})",
                budget=budget,
                response_model=model,
                max_tokens=max_tokens,
            )
            try:
                return parse_reply(model, completion.text)
            except ValidationError as exc:
                problem = "; ".join(
                    f"{'.'.join(map(str, e['loc'])) or 'reply'}: {e['msg']}" for e in exc.errors()[:10]
                )
                errors.append(problem)
                retry = (
                    f"That reply is not valid: {problem}. Reply again with only JSON that matches the schema."
                )
                messages = [
                    *messages,
                    {"role": "assistant", "content": completion.text},
                    {"role": "user", "content": retry},
                ]
        raise InvalidModelOutput(
            f"agent {agent!r} gave no valid {model.__name__} in {repairs + 1} tries; last: {errors[-1]}"
        )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}: {str(exc.message)[:200]}"
    if isinstance(exc, openai.APIConnectionError):
        return f"{type(exc).__name__}: {exc.__cause__ or exc}"
    return f"{type(exc).__name__}: {exc}"


def _count(agent: str, model: str, usage: Usage) -> None:
    """An answered call in the lab's metrics (airlab.metrics), labelled by the configured model name."""
    metrics.LLM_CALLS.labels(agent, model, "ok").inc()
    metrics.LLM_TOKENS.labels(agent, model, "prompt").inc(usage.prompt_tokens)
    metrics.LLM_TOKENS.labels(agent, model, "completion").inc(usage.completion_tokens)
    metrics.LLM_LATENCY.labels(agent, model).observe(usage.latency_seconds)
    metrics.LLM_COST.labels(agent, model).inc(usage.cost_usd)
