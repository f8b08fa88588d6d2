"""How much each research may store of its jobs' models, plots and predictions, across every runner.

The bytes a research has stored are a counter in a key-value bucket shared by the lab's runners, taken
with compare-and-set, so two runners finishing at once never both take the last of a quota. Logs, metrics
and result.json are bounded per job by their own caps and always kept (a failure must stay readable)."""

from __future__ import annotations

from dataclasses import dataclass

import nats.js.errors
from nats.js.kv import KeyValue

from airlab_runner.contract import mib

STORAGE_BUCKET = "airlab_research_storage"
_ATTEMPTS = 20


@dataclass
class StorageQuota:
    kv: KeyValue
    max_bytes: int

    async def take(self, research_id: str, size: int) -> str:
        """Count `size` more bytes against the research; "" when they fit, else why they do not (and then
        nothing is counted)."""
        for _ in range(_ATTEMPTS):
            try:
                entry = await self.kv.get(research_id)
                used, revision = int(entry.value or b"0"), entry.revision
            except nats.js.errors.KeyNotFoundError:
                used, revision = 0, None
            if used + size > self.max_bytes:
                quota = mib(self.max_bytes)
                return (
                    f"research {research_id} has stored {mib(used)} of its {quota} storage quota; this run's "
                    f"models, plots and predictions ({mib(size)}) were not kept"
                )
            try:
                if revision is None:
                    await self.kv.create(research_id, str(used + size).encode())
                else:
                    await self.kv.update(research_id, str(used + size).encode(), last=revision)
                return ""
            except nats.js.errors.KeyWrongLastSequenceError:
                continue  # another runner counted meanwhile: read again
        raise RuntimeError(f"could not update the storage count of research {research_id}")
