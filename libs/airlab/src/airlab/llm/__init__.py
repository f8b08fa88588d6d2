"""The LLM layer: one client for every agent, routed per agent to vLLM, OpenAI or the local CPU model,
with structured output, retries, circuit breakers, accounting and budgets."""
