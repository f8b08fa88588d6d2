"""Which LLM servers exist (llm_servers.yaml) and which agent uses which (agents.yaml).
Secrets are never in these files: a server names the environment variable that holds its API key."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from airlab.errors import InvalidArgument
from airlab.settings import load_yaml

AGENTS = ("idea", "manager", "coder", "reviewer")
ServerKind = Literal["llamacpp", "vllm", "openai"]


class Price(BaseModel):
    # US dollars per million tokens; local models cost 0.
    input_per_mtok: float = Field(default=0.0, ge=0)
    output_per_mtok: float = Field(default=0.0, ge=0)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok) / 1e6


class VllmLaunch(BaseModel):
    """How `vllm serve` starts this server on GPUs (used by compose and k8s)."""

    model: str = ""
    tensor_parallel_size: int = Field(default=1, ge=1)
    max_model_len: int = Field(default=8192, ge=256)
    gpu_memory_utilization: float = Field(default=0.85, gt=0, le=1)
    enable_sleep_mode: bool = True
    port: int = 8000
    extra_args: list[str] = Field(default_factory=list)

    def flags(self, served_name: str) -> list[str]:
        """The server's flags as --name=value (compose and k8s write these; a test holds them equal)."""
        flags = [
            f"--model={self.model or served_name}",
            f"--served-model-name={served_name}",
            f"--tensor-parallel-size={self.tensor_parallel_size}",
            f"--max-model-len={self.max_model_len}",
            f"--gpu-memory-utilization={self.gpu_memory_utilization}",
        ]
        if self.enable_sleep_mode:
            flags.append("--enable-sleep-mode")
        return [*flags, *self.extra_args]

    def command(self, served_name: str) -> list[str]:
        """`vllm serve` with these flags, listening on every interface of its container or pod."""
        return ["vllm", "serve", *self.flags(served_name), "--host=0.0.0.0", f"--port={self.port}"]


class ServerConfig(BaseModel):
    name: str = ""
    kind: ServerKind
    # OpenAI-compatible base URL ending in /v1. Empty for a llamacpp server: `airlab up` starts it.
    base_url: str = ""
    model: str
    # For a llamacpp server `airlab up` starts: the local model it serves (empty: the file's
    # `local_model`). Two such servers with different models are two llama.cpp processes sharing the LLM's
    # cores, e.g. the coder on qwen2.5-coder-1.5b-instruct and the other agents on the 0.5B model.
    local_model: str = ""
    # Name of the environment variable that holds the API key (empty: none needed).
    api_key_env: str = ""
    timeout_seconds: float = Field(default=120, gt=0)
    max_retries: int = Field(default=3, ge=0, le=10)
    price: Price = Field(default_factory=Price)
    vllm: VllmLaunch | None = None
    # Whether prompts to this server may carry values of a user's data (a profile's example cells and
    # ranges). Unset: yes for the servers the lab runs itself (llamacpp, vllm), no for a hosted API.
    sees_data: bool | None = None

    def api_key(self) -> str:
        return os.environ.get(self.api_key_env, "") if self.api_key_env else ""


class AgentConfig(BaseModel):
    # Servers in the order they are tried: the first that answers serves the call.
    servers: list[str] = Field(default_factory=list)
    temperature: float = Field(default=0.2, ge=0, le=2)
    max_tokens: int = Field(default=1024, ge=1, le=32768)


class LLMConfig(BaseModel):
    servers: dict[str, ServerConfig]
    agents: dict[str, AgentConfig]
    # Local llama.cpp model for servers of kind llamacpp that airlab starts itself.
    local_model: str = "qwen2.5-coder-0.5b-instruct"

    @model_validator(mode="after")
    def _check_routes(self) -> LLMConfig:
        for name, server in self.servers.items():
            server.name = name
            if server.kind == "llamacpp" and not server.base_url:
                # The server `airlab up` starts serves its own local model, or the file's.
                server.model = server.local_model or self.local_model
        for agent, config in self.agents.items():
            if not config.servers:
                raise ValueError(f"agent {agent!r} names no LLM server")
            for route in config.servers:
                if route not in self.servers:
                    raise ValueError(f"agent {agent!r} routes to unknown server {route!r}")
        return self

    def route(self, agent: str) -> list[ServerConfig]:
        if agent not in self.agents:
            raise InvalidArgument(
                "agent", f"unknown agent {agent!r}; configured: {', '.join(sorted(self.agents))}"
            )
        return [self.servers[name] for name in self.agents[agent].servers]

    def sees_data(self, agent: str) -> bool:
        """Whether every server the agent's calls may reach (its fallbacks too) may see data values."""
        return all(
            server.sees_data if server.sees_data is not None else server.kind != "openai"
            for server in self.route(agent)
        )

    def served_model(self, agent: str) -> str:
        """The model that answers the agent's calls while its first server is up."""
        return self.route(agent)[0].model

    def with_urls(self, urls: dict[str, str]) -> LLMConfig:
        """The same config with base URLs filled in (e.g. the local server `airlab up` started)."""
        copy = self.model_copy(deep=True)
        for name, url in urls.items():
            if name in copy.servers:
                copy.servers[name].base_url = url
        return copy

    def local_servers(self) -> list[str]:
        """llamacpp servers without a URL: the ones `airlab up` must start."""
        used = {s for agent in self.agents.values() for s in agent.servers}
        return [n for n, s in self.servers.items() if s.kind == "llamacpp" and not s.base_url and n in used]

    def local_models(self) -> dict[str, list[str]]:
        """The local models `airlab up` must serve, each with the servers it serves: one llama.cpp
        process per model, the default's first."""
        models: dict[str, list[str]] = {}
        for name in sorted(self.local_servers(), key=lambda n: self.servers[n].model != self.local_model):
            models.setdefault(self.servers[name].model, []).append(name)
        return models

    @classmethod
    def load(cls) -> LLMConfig:
        servers = load_yaml("llm_servers.yaml")
        agents = load_yaml("agents.yaml")
        defaults = agents.get("defaults", {})
        merged = {name: {**defaults, **(spec or {})} for name, spec in agents.get("agents", {}).items()}
        for agent in AGENTS:
            merged.setdefault(agent, dict(defaults))
        return cls(
            servers=servers.get("servers", {}),
            agents=merged,
            local_model=servers.get("local_model", cls.model_fields["local_model"].default),
        )
