"""The LLM layer on this machine, in one run per local model: prefill and decode speed through the lab's
client against raw requests to the same llama.cpp server (side by side, interleaved), and how often a
structured request comes back schema-valid (20 calls, without repairs and with them).

Usage: make bench-llm   (or: .venv/bin/python scripts/bench_llm.py [--models NAME ...] [--calls N])"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

import httpx
from pydantic import BaseModel, Field, ValidationError

from airlab.llm.client import InvalidModelOutput, LLMClient, parse_reply
from airlab.llm.config import LLMConfig
from airlab.llm.local import start_llama_server
from airlab.llm.prompts import render

LONG_PROMPT = "Summarize this in one word: " + " ".join(f"item {n} is a number;" for n in range(120))
DATASETS = [
    ("digits", "classification", "accuracy", "logistic_regression"),
    ("wine", "classification", "accuracy", "random_forest"),
    ("breast_cancer", "classification", "roc_auc", "logistic_regression"),
    ("diabetes", "regression", "rmse", "linear_regression"),
]


class Idea(BaseModel):
    title: str = Field(min_length=3, max_length=200)
    change: str = Field(min_length=3)
    expected_effect: str = Field(min_length=3)


class Ideas(BaseModel):
    ideas: list[Idea] = Field(min_length=1, max_length=4)


def config(url: str, model: str) -> LLMConfig:
    server = {"kind": "llamacpp", "base_url": url, "model": model, "max_retries": 0}
    return LLMConfig(servers={"local": server}, agents={"idea": {"servers": ["local"], "temperature": 0}})


async def speeds(client: LLMClient, url: str, model: str, rounds: int) -> dict[str, list[float]]:
    """Prefill tok/s (a long prompt, one output token) and decode tok/s (128 more tokens), both ways."""

    def fresh(text: str) -> list[dict[str, str]]:
        # A unique first line: llama.cpp reuses a cached prompt prefix, which would flatter the second caller.
        return [{"role": "user", "content": f"Request {uuid.uuid4().hex}.\n{text}"}]

    write = "Write a Python function that merges two sorted lists, with comments."
    found: dict[str, list[float]] = {
        k: [] for k in ("raw prefill", "lab prefill", "raw decode", "lab decode")
    }
    async with httpx.AsyncClient(timeout=300) as http:

        async def raw(msgs: list[dict[str, str]], max_tokens: int) -> tuple[float, int, int]:
            began = time.perf_counter()
            reply = await http.post(
                f"{url}/chat/completions",
                json={"model": model, "messages": msgs, "max_tokens": max_tokens, "temperature": 0},
            )
            usage = reply.json()["usage"]
            return time.perf_counter() - began, usage["prompt_tokens"], usage["completion_tokens"]

        async def lab(msgs: list[dict[str, str]], max_tokens: int) -> tuple[float, int, int]:
            began = time.perf_counter()
            done = await client.complete("idea", msgs, max_tokens=max_tokens)
            return time.perf_counter() - began, done.usage.prompt_tokens, done.usage.completion_tokens

        await raw(fresh(write), 16)  # warm-up
        for round_number in range(rounds):
            order = (("raw", raw), ("lab", lab)) if round_number % 2 == 0 else (("lab", lab), ("raw", raw))
            for name, call in order:
                seconds, prompt_tokens, _ = await call(fresh(LONG_PROMPT), 1)
                found[f"{name} prefill"].append(prompt_tokens / seconds)
                short, _, _ = await call(fresh(write), 1)
                long, _, completion_tokens = await call(fresh(write), 129)
                found[f"{name} decode"].append((completion_tokens - 1) / max(long - short, 1e-6))
    return found


async def validity(client: LLMClient, calls: int) -> tuple[int, int, float]:
    """(valid without repair, valid within 2 repairs, median seconds per call) over `calls` requests."""
    plain = repaired = 0
    seconds = []
    for n in range(calls):
        dataset, task, metric, baseline = DATASETS[n % len(DATASETS)]
        prompt = render(
            "idea/propose", goal=f"beat the {baseline} baseline on {dataset}", dataset=dataset, task=task,
            metric=metric, direction="lower" if metric == "rmse" else "higher", baseline=baseline,
            tried=[], count=1 + n % 3, template="sklearn", families="random forest, svm, knn",
        )  # fmt: skip
        began = time.perf_counter()
        completion = await client.complete("idea", prompt, response_model=Ideas, max_tokens=400)
        seconds.append(time.perf_counter() - began)
        try:
            parse_reply(Ideas, completion.text)
            plain += 1
            repaired += 1
        except ValidationError:
            try:
                await client.structured("idea", Ideas, prompt, repairs=2, max_tokens=400)
                repaired += 1
            except InvalidModelOutput:
                pass
    return plain, repaired, statistics.median(seconds)


async def bench(model: str, rounds: int, calls: int) -> None:
    server = start_llama_server(model, threads=2)
    try:
        client = LLMClient(config(server.url, model))
        found = await speeds(client, server.url, model, rounds)
        plain, repaired, per_call = await validity(client, calls)
        await client.close()
    finally:
        server.stop()
    med = {k: statistics.median(v) for k, v in found.items()}
    print(f"{model}:")
    for kind in ("prefill", "decode"):
        raw, lab = med[f"raw {kind}"], med[f"lab {kind}"]
        print(
            f"  {kind:<8} raw llama.cpp {raw:6.1f} tok/s   lab's client {lab:6.1f} tok/s   x{lab / raw:.2f}"
        )
    print(f"  structured: {plain}/{calls} schema-valid at once, {repaired}/{calls} within 2 repairs")
    print(f"  median {per_call:.1f} s per structured call")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--models", nargs="+", default=["qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct"]
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    for model in args.models:
        asyncio.run(bench(model, args.rounds, args.calls))


if __name__ == "__main__":
    main()
