"""Where the coder keeps its work: every attempt under research/<id>/code/<idea>/attempt-<n>/ (the code and
what its checks said), and the code that passed under .../final/ with where it came from, read again
after a crash."""

from __future__ import annotations

import asyncio
import hashlib
import json

from google.protobuf import json_format

from airlab import experiments
from airlab.blobs import ArtifactStore, research_prefix
from airlab.v1 import events_pb2
from airlab_coder.tasks import CodeTask

# Beside the code that passed: where it came from (template, LLM attempt n, registry).
PROVENANCE_FILE = "provenance.json"


def code_prefix(research_id: str, name: str, part: str) -> str:
    return f"{research_prefix(research_id)}code/{name}/{part}/"


class CodeStore:
    """The coder's attempts and final code in the artifact store."""

    def __init__(self, artifacts: ArtifactStore) -> None:
        self.artifacts = artifacts

    async def final(
        self, prefix: str, source: str, outcome: events_pb2.CodeOutcome
    ) -> events_pb2.CodeOutcome:
        """Publish the code that passed under `prefix`, with the outcome that says where it came from (its
        JSON form, read again after a crash)."""
        outcome.code_ref, outcome.entrypoint = prefix, experiments.CODE_FILE
        outcome.sha256 = hashlib.sha256(source.encode()).hexdigest()
        provenance = json_format.MessageToJson(outcome, preserving_proto_field_name=True, indent=2)
        await asyncio.to_thread(
            self.artifacts.put, prefix + PROVENANCE_FILE, provenance.encode(), content_type="application/json"
        )
        await self.publish(prefix, source)
        return outcome

    async def done_before(self, task: CodeTask, prefix: str) -> events_pb2.CodeOutcome:
        """The outcome of the task's code published under `prefix` before a crash."""
        outcome = events_pb2.CodeOutcome()
        try:
            raw = await asyncio.to_thread(self.artifacts.get, prefix + PROVENANCE_FILE)
            json_format.Parse(raw, outcome, ignore_unknown_fields=True)
        except Exception:  # code published by an earlier version: its origin was not written down
            outcome = events_pb2.CodeOutcome()
        outcome.name, outcome.code_ref, outcome.entrypoint = task.request.name, prefix, experiments.CODE_FILE
        return outcome

    async def keep(
        self, task: CodeTask, label: str, source: str, problems: list[str], repairs: list[str] | None = None
    ) -> None:
        """Keep one attempt's code and what its checks said under code/<idea>/attempt-<label>/."""
        prefix = code_prefix(task.research_id, task.request.name, f"attempt-{label}")
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
