"""What the reviewer reads of a research's runs from the artifact store: each run's result.json, its
metrics.jsonl, a segmentation run's saved masks, and the devices the runs said they used."""

from __future__ import annotations

import io
import json
from typing import Any

from airlab.blobs import ArtifactStore, experiment_key
from airlab.results import RunResult


class StoredRuns:
    def __init__(self, artifacts: ArtifactStore) -> None:
        self.artifacts = artifacts

    def result(self, research_id: str, experiment_id: str) -> RunResult:
        raw = self.artifacts.get(experiment_key(research_id, experiment_id, "result.json"))
        return RunResult.model_validate_json(raw)

    def metric_rows(self, research_id: str, experiment_id: str) -> list[dict[str, Any]]:
        """The run's metrics.jsonl lines ([] when it wrote none)."""
        try:
            raw = self.artifacts.get(experiment_key(research_id, experiment_id, "metrics.jsonl")).decode()
        except Exception:
            return []
        return [json.loads(line) for line in raw.splitlines() if line.strip()]

    def masks(self, research_id: str, experiment_id: str) -> dict[str, Any] | None:
        """A segmentation run's saved test images, true masks and predicted masks, if it saved them."""
        import numpy as np

        try:
            raw = self.artifacts.get(experiment_key(research_id, experiment_id, "predictions/masks.npz"))
            with np.load(io.BytesIO(raw)) as data:
                return {name: data[name] for name in ("images", "truth", "predicted")}
        except Exception:
            return None

    def devices(self, research_id: str, experiment_ids: list[str]) -> dict[str, int]:
        """How many of these runs ran on each device, as their result.json says ("cpu", "cuda")."""
        devices: dict[str, int] = {}
        for experiment_id in experiment_ids:
            try:
                device = str(self.result(research_id, experiment_id).extra.get("device") or "not reported")
            except Exception:
                continue
            devices[device] = devices.get(device, 0) + 1
        return devices
