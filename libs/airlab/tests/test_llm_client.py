"""The LLM client's logic against a fake OpenAI-compatible server (named as such): retries and backoff,
fallback order, the circuit breaker, structured output and its repair, budgets and accounting."""

import json
import socket

import pytest
from pydantic import BaseModel, Field

from airlab import metrics
from airlab.blobs import LocalArtifactStore
from airlab.llm.accounting import (
    ArtifactExchangeLog,
    Budget,
    BudgetExceeded,
    KvUsageLedger,
    LocalUsageLedger,
    usage_store,
)
from airlab.llm.client import InvalidModelOutput, LLMClient, NoEndpointAnswered, RetryPolicy, response_format
from airlab.llm.config import LLMConfig
from airlab.llm.prompts import render
from airlab.testing import FakeOpenAIServer, Reply

FAST = RetryPolicy(initial_seconds=0.01, max_seconds=0.02)


class Idea(BaseModel):
    title: str = Field(min_length=3)
    expected_gain: float


@pytest.fixture
def servers():
    started = [FakeOpenAIServer(), FakeOpenAIServer()]
    yield started
    for server in started:
        server.close()


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"  # nothing listens once closed


def config(first_url, second_url, *, first_kind="vllm", price=None) -> LLMConfig:
    return LLMConfig(
        servers={
            "first": {
                "kind": first_kind,
                "base_url": first_url,
                "model": "m1",
                "max_retries": 2,
                "timeout_seconds": 5,
            },
            "second": {
                "kind": "openai",
                "base_url": second_url,
                "model": "m2",
                "max_retries": 0,
                "price": price or {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
            },
        },
        agents={"idea": {"servers": ["first", "second"]}, "coder": {"servers": ["second"]}},
    )


MESSAGES = [{"role": "user", "content": "hello"}]


async def test_5xx_and_429_are_retried_with_backoff(servers):
    first, second = servers
    first.script = [Reply(503), Reply(429), Reply(content="fine")]
    client = LLMClient(config(first.url, second.url), retry=FAST)
    completion = await client.complete("idea", MESSAGES)
    assert (completion.text, completion.server) == ("fine", "first")
    assert len(first.requests) == 3 and second.requests == []


async def test_fallback_goes_to_the_next_server_in_order(servers):
    first, second = servers
    first.script = [Reply(400)]  # not retryable: straight to the next server
    client = LLMClient(config(first.url, second.url), retry=FAST)
    assert (await client.complete("idea", MESSAGES)).server == "second"
    assert len(first.requests) == 1
    down = LLMClient(config(dead_url(), second.url), retry=FAST)
    assert (await down.complete("idea", MESSAGES)).server == "second"


async def test_the_circuit_opens_after_repeated_failures_and_closes_after_cooldown(servers):
    first, second = servers
    now = [0.0]
    client = LLMClient(
        config(first.url, second.url),
        retry=FAST,
        breaker_threshold=2,
        breaker_cooldown=30,
        clock=lambda: now[0],
    )
    first.script = [Reply(500)] * 6
    for _ in range(2):
        assert (await client.complete("idea", MESSAGES)).server == "second"
    assert client.breakers["first"].state == "open"
    calls = len(first.requests)
    assert (await client.complete("idea", MESSAGES)).server == "second"
    assert len(first.requests) == calls  # skipped while open
    now[0] += 31
    first.script = [Reply(content="back")]
    assert (await client.complete("idea", MESSAGES)).text == "back"
    assert client.breakers["first"].state == "closed"


async def test_no_endpoint_answering_names_every_server():
    client = LLMClient(config(dead_url(), dead_url()), retry=FAST)
    with pytest.raises(NoEndpointAnswered) as refused:
        await client.complete("idea", MESSAGES)
    assert "first (http://127.0.0.1:" in str(refused.value) and "second (" in str(refused.value)


async def test_structured_output_is_validated_and_repaired(servers):
    first, second = servers
    first.script = [
        Reply(content="Sure! here it is"),
        Reply(content='{"title": "ab", "expected_gain": 1}'),
        Reply(content='```json\n{"title": "bigger net", "expected_gain": 0.02}\n```'),
    ]
    client = LLMClient(config(first.url, second.url, first_kind="llamacpp"), retry=FAST)
    idea = await client.structured("idea", Idea, MESSAGES, repairs=2)
    assert idea == Idea(title="bigger net", expected_gain=0.02)
    assert first.requests[0]["response_format"] == {"type": "json_object", "schema": Idea.model_json_schema()}
    repair = first.requests[2]["messages"]
    assert repair[-2] == {"role": "assistant", "content": '{"title": "ab", "expected_gain": 1}'}
    assert "title: String should have at least 3 characters" in repair[-1]["content"]


async def test_structured_output_gives_up_after_the_repairs(servers):
    first, second = servers
    first.script = [Reply(content="no")] * 3
    client = LLMClient(config(first.url, second.url), retry=FAST)
    with pytest.raises(InvalidModelOutput, match="no valid Idea in 2 tries"):
        await client.structured("idea", Idea, MESSAGES, repairs=1)


def test_each_server_kind_gets_the_structured_request_it_honours():
    cfg = config("http://a/v1", "http://b/v1", first_kind="llamacpp")
    assert response_format(cfg.servers["first"], Idea)["type"] == "json_object"
    assert response_format(cfg.servers["second"], Idea) == {
        "type": "json_schema",
        "json_schema": {"name": "Idea", "schema": Idea.model_json_schema()},
    }


async def test_usage_and_cost_are_summed_per_agent_and_research(servers):
    first, second = servers
    second.script = [
        Reply(prompt_tokens=100, completion_tokens=50),
        Reply(prompt_tokens=200, completion_tokens=10),
    ]
    ledger = LocalUsageLedger()
    client = LLMClient(config(first.url, second.url), ledger=ledger, retry=FAST)

    def counted() -> tuple[float, ...]:  # the lab's metrics of the coder's calls to m2 (airlab.metrics)
        value = metrics.REGISTRY.get_sample_value
        labels = {"agent": "coder", "model": "m2"}
        return tuple(
            value(name, labels | extra) or 0.0
            for name, extra in (
                ("airlab_llm_calls_total", {"outcome": "ok"}),
                ("airlab_llm_tokens_total", {"direction": "prompt"}),
                ("airlab_llm_tokens_total", {"direction": "completion"}),
                ("airlab_llm_cost_usd_total", {}),
            )
        )

    before = counted()
    await client.complete("coder", MESSAGES, research_id="r1")
    await client.complete("coder", MESSAGES, research_id="r1")
    usage = await ledger.usage("r1")
    coder = usage.agents["coder"]
    assert (coder.calls, coder.prompt_tokens, coder.completion_tokens) == (2, 300, 60)
    assert coder.cost_usd == pytest.approx((300 * 1.0 + 60 * 2.0) / 1e6)
    grown = [after - earlier for after, earlier in zip(counted(), before, strict=True)]
    assert grown[:3] == [2, 300, 60] and grown[3] == pytest.approx(coder.cost_usd)
    assert usage.total.tokens == 360 and (await ledger.usage("r2")).total.calls == 0


async def test_a_call_that_would_pass_the_budget_is_refused_before_it_is_made(servers):
    first, second = servers
    second.script = [Reply(prompt_tokens=900, completion_tokens=50)]
    client = LLMClient(config(first.url, second.url), retry=FAST)
    budget = Budget(max_tokens=2000)
    await client.complete("coder", MESSAGES, research_id="r1", budget=budget, max_tokens=100)
    with pytest.raises(BudgetExceeded, match="token budget: 950 of 2000 spent"):
        await client.complete("coder", MESSAGES, research_id="r1", budget=budget, max_tokens=1500)
    assert len(second.requests) == 1
    with pytest.raises(BudgetExceeded, match="cost budget"):
        await client.complete("coder", MESSAGES, research_id="r1", budget=Budget(max_cost_usd=0.000001))


async def test_exchanges_are_kept_with_the_research(servers, tmp_path, bus):
    first, second = servers
    first.script = [
        Reply(content='{"title": "wider", "expected_gain": 0.1}', prompt_tokens=42, completion_tokens=7)
    ]
    store = LocalArtifactStore(tmp_path / "artifacts")
    ledger = KvUsageLedger(await usage_store(bus).open())
    client = LLMClient(
        config(first.url, second.url), ledger=ledger, exchanges=ArtifactExchangeLog(store), retry=FAST
    )
    context = {"goal": "beat it", "dataset": "digits", "task": "classification", "metric": "accuracy"}
    prompt = render(
        "idea/propose",
        **context,
        direction="higher",
        baseline="logreg",
        tried=["a CNN"],
        results=[],
        recalled=[],
        count=1,
        template="sklearn",
        families="random forest",
    )
    assert prompt.version.isdigit()  # the file's header, recorded with each exchange
    await client.structured("idea", Idea, prompt, research_id="r7", purpose="propose")
    (exchange,) = ArtifactExchangeLog(store).read("r7")
    assert (exchange.agent, exchange.prompt, exchange.prompt_version, exchange.server) == (
        "idea",
        "idea/propose",
        prompt.version,
        "first",
    )
    assert (exchange.prompt_tokens, exchange.completion_tokens) == (42, 7)
    assert "a CNN" in exchange.messages[-1]["content"] and json.loads(exchange.response)["title"] == "wider"
    assert (await ledger.usage("r7")).agents["idea"].prompt_tokens == 42


def test_configs_refuse_unknown_routes():
    with pytest.raises(ValueError, match="unknown server"):
        LLMConfig(servers={}, agents={"idea": {"servers": ["nope"]}})


def test_the_server_airlab_starts_serves_the_local_model_and_an_agent_knows_which_model_answers_it():
    servers = {
        "local-cpu": {"kind": "llamacpp", "model": "qwen2.5-coder-0.5b-instruct"},
        "own-llama": {"kind": "llamacpp", "base_url": "http://127.0.0.1:1/v1", "model": "mine"},
        "openai": {"kind": "openai", "base_url": "https://api.openai.com/v1", "model": "gpt-4o-mini"},
    }
    agents = {"coder": {"servers": ["local-cpu", "openai"]}, "idea": {"servers": ["openai"]},
              "manager": {"servers": ["own-llama"]}}  # fmt: skip
    config = LLMConfig(servers=servers, agents=agents, local_model="qwen2.5-coder-1.5b-instruct")
    assert config.served_model("coder") == "qwen2.5-coder-1.5b-instruct"
    assert config.served_model("idea") == "gpt-4o-mini" and config.served_model("manager") == "mine"


def test_each_local_server_may_serve_a_model_of_its_own_one_process_per_model_the_default_first():
    servers = {
        "local-cpu": {"kind": "llamacpp", "model": "x"},
        "local-coder": {"kind": "llamacpp", "model": "x", "local_model": "qwen2.5-coder-1.5b-instruct"},
        "local-spare": {"kind": "llamacpp", "model": "x"},
    }
    agents = {"coder": {"servers": ["local-coder"]}, "idea": {"servers": ["local-cpu"]},
              "manager": {"servers": ["local-spare", "local-cpu"]}}  # fmt: skip
    config = LLMConfig(servers=servers, agents=agents)
    assert config.served_model("coder") == "qwen2.5-coder-1.5b-instruct"
    assert config.served_model("idea") == config.served_model("manager") == "qwen2.5-coder-0.5b-instruct"
    assert config.local_models() == {
        "qwen2.5-coder-0.5b-instruct": ["local-cpu", "local-spare"],
        "qwen2.5-coder-1.5b-instruct": ["local-coder"],
    }


def test_the_repository_config_routes_every_agent_and_launches_vllm_with_sleep_mode():
    config = LLMConfig.load()
    assert set(config.agents) == {"idea", "manager", "coder", "reviewer"}
    assert config.local_servers() == ["local-cpu"]
    assert config.local_models() == {"qwen2.5-coder-0.5b-instruct": ["local-cpu"]}
    command = config.servers["vllm"].vllm.command(config.servers["vllm"].model)
    assert command[:3] == ["vllm", "serve", "--model=Qwen/Qwen2.5-Coder-7B-Instruct"]
    for flag in (
        "--tensor-parallel-size=1",
        "--max-model-len=16384",
        "--served-model-name=qwen2.5-coder-7b-instruct",
        "--enable-sleep-mode",
    ):
        assert flag in command
