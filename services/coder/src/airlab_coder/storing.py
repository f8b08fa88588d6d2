"""Where the coder keeps its work: every attempt under research/<id>/code/<idea>/attempt-<n>/ (the code and
what its checks said), and the code that passed under .../final/ with where it came from, read again
after a crash."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import cast

from airlab import experiments
from airlab.blobs import ArtifactStore, research_prefix
from airlab.v1 import loop_pb2
from airlab_coder.tasks import CodeOutcome, CodeTask

# Beside the code that passed: where it came from (template, LLM attempt n, registry).
PROVENANCE_FILE = "provenance.json"


def code_prefix(research_id: str, name: str, part: str) -> str:
    return f"{research_prefix(research_id)}code/{name}/{part}/"


class CodeStore:
    """The coder's attempts and final code in the artifact store."""

    def __init__(self, artifacts: ArtifactStore) -> None:
        self.artifacts = artifacts

    async def final(self, prefix: str, source: str, outcome: CodeOutcome) -> CodeOutcome:
        """Publish the code that passed, with where it came from (read again after a crash)."""
        outcome.sha256 = hashlib.sha256(source.encode()).hexdigest()
        provenance = {
            "origin": loop_pb2.CodeOrigin.Name(outcome.origin),
            "attempts": outcome.attempts,
            "problems": outcome.problems,
            "sha256": outcome.sha256,
            "repairs": outcome.repairs,
            "unsearched": outcome.unsearched,
        }
        await asyncio.to_thread(
            self.artifacts.put,
            prefix + PROVENANCE_FILE,
            json.dumps(provenance, indent=2).encode(),
            content_type="application/json",
        )
        await self.publish(prefix, source)
        return outcome

    async def done_before(self, prefix: str) -> CodeOutcome:
        try:
            raw = await asyncio.to_thread(self.artifacts.get, prefix + PROVENANCE_FILE)
            provenance = json.loads(raw)
            origin = cast(loop_pb2.CodeOrigin, loop_pb2.CodeOrigin.Value(provenance["origin"]))
            attempts, problems = int(provenance["attempts"]), list(provenance["problems"])
            sha256, repairs = str(provenance.get("sha256", "")), list(provenance.get("repairs", []))
            unsearched = list(provenance.get("unsearched", []))
            return CodeOutcome(True, prefix, attempts, problems, origin, sha256, repairs, unsearched)
        except Exception:  # code published by an earlier version: its origin was not written down
            return CodeOutcome(True, prefix, 0)

    async def keep(
        self, task: CodeTask, label: str, source: str, problems: list[str], repairs: list[str] | None = None
    ) -> None:
        """Keep one attempt's code and what its checks said under code/<idea>/attempt-<label>/."""
        prefix = code_prefix(task.research_id, task.name, f"attempt-{label}")
        await self.publish(prefix, source)
        report = {
            "attempt": int(label.split("-")[0]),
            "label": label,
            "passed": not problems,
            "problems": problems,
            "repairs": repairs or [],
        }
        await asyncio.to_thread(
            self.artifacts.put,
            prefix + "check.json",
            json.dumps(report, indent=2).encode(),
            content_type="application/json",
        )

    async def publish(self, prefix: str, source: str) -> None:
        await asyncio.to_thread(
            self.artifacts.put, prefix + experiments.CODE_FILE, source.encode(), content_type="text/x-python"
        )
