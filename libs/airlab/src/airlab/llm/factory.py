"""The LLM client a service's agents use: endpoints from config, usage in the lab's KV ledger, every
exchange kept in the artifact store."""

from __future__ import annotations

from airlab.blobs import artifact_store_from
from airlab.llm.accounting import ArtifactExchangeLog, KvUsageLedger, usage_store
from airlab.llm.client import LLMClient
from airlab.llm.config import LLMConfig
from airlab.service import ServiceContext


def llm_for(context: ServiceContext) -> LLMClient:
    """An LLMClient for the service; its usage store opens when the service starts."""
    usage = usage_store(context.bus)
    llm = LLMClient(
        LLMConfig.load().with_urls(context.settings.llm_urls),
        ledger=KvUsageLedger(usage),
        exchanges=ArtifactExchangeLog(artifact_store_from(context.settings)),
    )
    context.on_start(usage.open)
    context.on_stop(llm.close)
    return llm
