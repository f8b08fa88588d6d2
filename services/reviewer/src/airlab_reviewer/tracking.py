"""A research in MLflow, for people who compare runs there: the research is a parent run, each experiment
a child run with its parameters, its metrics (the final ones from result.json, the per-step ones from
metrics.jsonl) and tags for its idea, origin, seed and kind; code, result.json and the report's files are
the runs' artifacts. The numbers come from the runs' stored results, as summary.json's do.

It speaks MLflow's REST API (a tracking server, with artifacts served through it: `mlflow server`'s
default). Tracking a research twice leaves one copy: a finished copy is kept, a partial one (a crash
midway) is deleted and written again. A failure raises, so the event is delivered again later; it never
touches the research itself."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import httpx
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from airlab import experiments, verdicts
from airlab.blobs import ArtifactStore, BlobNotFound, experiment_key, report_key
from airlab.enums import CODE_WORDS, IDEA_ORIGIN_WORDS, enum_words
from airlab.experiments import plain_params
from airlab.v1 import loop_pb2, research_pb2

log = logging.getLogger(__name__)

RESEARCH_TAG = "airlab.research_id"
COMPLETE_TAG = "airlab.tracked"
API = "/api/2.0/mlflow"
ARTIFACTS_API = "/api/2.0/mlflow-artifacts/artifacts"
BATCH = 900  # MLflow takes at most 1000 metrics (and 100 params and tags) per log-batch


class TrackingError(RuntimeError):
    pass


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code >= 500


class MlflowTracker:
    def __init__(
        self,
        uri: str,
        artifacts: ArtifactStore,
        *,
        experiment: str = "airlab",
        client: httpx.Client | None = None,
    ) -> None:
        self.uri = uri.rstrip("/")
        self.artifacts = artifacts
        self.experiment_name = experiment
        self.client = client or httpx.Client(timeout=30)

    # -- REST -----------------------------------------------------------------------------------------------

    @retry(
        retry=retry_if_exception(_transient),
        stop=stop_after_attempt(4),
        wait=wait_exponential(multiplier=0.5, max=8),
        reraise=True,
    )
    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.client.request(method, self.uri + path, **kwargs)
        if response.status_code == 404 and "RESOURCE_DOES_NOT_EXIST" in response.text:
            return {}
        response.raise_for_status()
        return response.json() if response.content else {}

    def _post(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", f"{API}/{endpoint}", json=body)

    def experiment_id(self) -> str:
        found = self._call(
            "GET", f"{API}/experiments/get-by-name", params={"experiment_name": self.experiment_name}
        )
        if found:
            return str(found["experiment"]["experiment_id"])
        return str(self._post("experiments/create", {"name": self.experiment_name})["experiment_id"])

    def runs(self, experiment_id: str, filter_string: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        token = ""
        while True:
            body: dict[str, Any] = {
                "experiment_ids": [experiment_id],
                "filter": filter_string,
                "max_results": 1000,
            }
            if token:
                body["page_token"] = token
            page = self._post("runs/search", body)
            found += page.get("runs", [])
            token = page.get("next_page_token", "")
            if not token:
                return found

    def _create_run(self, experiment_id: str, name: str, tags: dict[str, str]) -> dict[str, Any]:
        run = self._post(
            "runs/create",
            {
                "experiment_id": experiment_id,
                "run_name": name[:250],
                "start_time": int(time.time() * 1000),
                "tags": [{"key": k, "value": str(v)[:5000]} for k, v in tags.items()],
            },
        )["run"]
        return dict(run["info"])

    def _log(
        self,
        run_id: str,
        *,
        params: Mapping[str, object] | None = None,
        metrics: Iterable[tuple[str, float, int]] = (),
        tags: dict[str, str] | None = None,
    ) -> None:
        now = int(time.time() * 1000)
        params_list = [{"key": k[:250], "value": str(v)[:6000]} for k, v in (params or {}).items()]
        metric_list = [{"key": k, "value": v, "timestamp": now, "step": step} for k, v, step in metrics]
        tag_list = [{"key": k, "value": v} for k, v in (tags or {}).items()]
        for start in range(0, len(params_list), 100):
            self._post("runs/log-batch", {"run_id": run_id, "params": params_list[start : start + 100]})
        for start in range(0, len(metric_list), BATCH):
            self._post("runs/log-batch", {"run_id": run_id, "metrics": metric_list[start : start + BATCH]})
        if tag_list:
            self._post("runs/log-batch", {"run_id": run_id, "tags": tag_list})

    def _upload(self, info: dict[str, Any], name: str, data: bytes) -> None:
        root = str(info.get("artifact_uri", ""))
        if not root.startswith("mlflow-artifacts:/"):
            raise TrackingError(
                f"the tracking server stores artifacts at {root!r}: start it serving artifacts "
                "(mlflow server's default, --serve-artifacts)"
            )
        path = root.removeprefix("mlflow-artifacts:").lstrip("/")
        self._call("PUT", f"{ARTIFACTS_API}/{path}/{name}", content=data)

    def _end(self, run_id: str, ok: bool) -> None:
        status = "FINISHED" if ok else "FAILED"
        self._post("runs/update", {"run_id": run_id, "status": status, "end_time": int(time.time() * 1000)})

    # -- a research -----------------------------------------------------------------------------------------

    def track(self, research: research_pb2.Research, loop: loop_pb2.ResearchLoop) -> str:
        """The research's parent run id (made now, or the copy tracked before)."""
        experiment_id = self.experiment_id()
        previous = self.runs(experiment_id, f"tags.`{RESEARCH_TAG}` = '{research.id}'")
        parents = [r for r in previous if "mlflow.parentRunId" not in tag_map(r)]
        done = [r for r in parents if tag_map(r).get(COMPLETE_TAG) == "true"]
        if done:
            return str(done[0]["info"]["run_id"])
        for run in previous:  # a copy that a crash left half written
            self._post("runs/delete", {"run_id": run["info"]["run_id"]})

        plan = research.plan
        parent = self._create_run(
            experiment_id,
            research.goal,
            {
                RESEARCH_TAG: research.id,
                "airlab.goal": research.goal,
                # The report is written as the research ends: its outcome is the loop's.
                "airlab.outcome": "failed" if loop.failed else "completed",
                "airlab.stop_reason": loop.stop_reason,
                "airlab.owner": research.owner,
            },
        )
        summary = self._json(report_key(research.id, "summary.json"))
        self._log(
            parent["run_id"],
            params={
                "dataset": plan.dataset,
                "task": plan.task,
                "metric": plan.metric,
                "baseline": plan.baseline,
                "template": plan.template or "sklearn",
                "seeds": ",".join(map(str, plan.seeds)),
                "max_experiments": plan.budget.max_experiments,
                "verdict_family_size": verdicts.family_size(plan.budget.max_experiments, len(plan.seeds)),
            },
            metrics=[
                (name, float(value), 0)
                for name, value in (
                    ("baseline_mean", loop.baseline.mean),
                    ("baseline_std", loop.baseline.std),
                    *((("best_mean", loop.best.mean),) if loop.best.idea_id else ()),
                    *_evidence(loop),
                )
            ],
            tags={"airlab.verdict": str(summary.get("verdict", ""))} if summary else None,
        )
        for name in ("report.md", "summary.json", "report.pdf"):
            data = self._bytes(report_key(research.id, name))
            if data is not None:
                self._upload(parent, name, data)

        ideas = {i.idea.id: i for i in loop.ideas}
        for experiment in loop.experiments:
            if experiment.kind == loop_pb2.EXPERIMENT_KIND_SMOKE:
                continue
            self._track_experiment(experiment_id, parent["run_id"], research, loop, ideas, experiment)
        self._log(parent["run_id"], tags={COMPLETE_TAG: "true"})
        self._end(parent["run_id"], not loop.failed)
        log.info("tracked in MLflow", extra={"research_id": research.id, "run_id": parent["run_id"]})
        return str(parent["run_id"])

    def _track_experiment(
        self,
        experiment_id: str,
        parent_id: str,
        research: research_pb2.Research,
        loop: loop_pb2.ResearchLoop,
        ideas: dict[str, loop_pb2.LoopIdea],
        experiment: loop_pb2.LoopExperiment,
    ) -> None:
        idea = ideas.get(experiment.name)
        kind = enum_words(loop_pb2.ExperimentKind, experiment.kind)
        tags = {
            "mlflow.parentRunId": parent_id,
            RESEARCH_TAG: research.id,
            "airlab.experiment_id": experiment.id,
            "airlab.idea": idea.idea.title if idea else experiment.name,
            "airlab.idea_id": experiment.name,
            "airlab.origin": IDEA_ORIGIN_WORDS.get(idea.origin, "-") if idea else "baseline",
            "airlab.code_origin": CODE_WORDS.get(idea.code_origin, "-") if idea else "template",
            "airlab.seed": str(experiment.seed),
            "airlab.kind": kind,
            "airlab.state": enum_words(loop_pb2.ExperimentState, experiment.state),
        }
        run = self._create_run(
            experiment_id, f"{tags['airlab.idea']} · {kind} · seed {experiment.seed}", tags
        )
        prefix = experiment_key(research.id, experiment.id)
        result = self._json(f"{prefix}/result.json")
        metrics = [(k, float(v), 0) for k, v in (result.get("metrics") or {}).items() if _number(v)]
        steps = self._bytes(f"{prefix}/metrics.jsonl") or b""
        for n, line in enumerate(steps.decode(errors="replace").splitlines()):
            try:
                point = json.loads(line)
            except ValueError:
                continue
            if not isinstance(point, dict):
                continue
            where = point.get("step", point.get("epoch", n))
            step = int(where) if isinstance(where, int | float) else n
            metrics += [
                (f"step/{key}", float(value), step)
                for key, value in point.items()
                if key not in ("step", "epoch") and _number(value)
            ]
        if experiment.run_seconds:
            metrics.append(("run_seconds", experiment.run_seconds, 0))
        self._log(run["run_id"], params=plain_params(experiment.params), metrics=metrics)
        for name in ("result.json", "metrics.jsonl"):
            data = self._bytes(f"{prefix}/{name}")
            if data is not None:
                self._upload(run, name, data)
        code_ref = idea.code_ref if idea else loop.baseline_code
        entrypoint = experiments.CODE_FILE
        code = self._bytes(f"{code_ref.rstrip('/')}/{entrypoint}") if code_ref else None
        if code is not None:
            self._upload(run, f"code/{entrypoint}", code)
        self._end(run["run_id"], experiment.state == loop_pb2.EXPERIMENT_STATE_FINISHED)

    def _bytes(self, key: str) -> bytes | None:
        try:
            return self.artifacts.get(key)
        except BlobNotFound:
            return None

    def _json(self, key: str) -> dict[str, Any]:
        data = self._bytes(key)
        try:
            loaded = json.loads(data) if data else {}
        except ValueError:
            return {}
        return loaded if isinstance(loaded, dict) else {}


def tag_map(run: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t.get("value", "") for t in run.get("data", {}).get("tags", [])}


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def _evidence(loop: loop_pb2.ResearchLoop) -> list[tuple[str, float]]:
    """The verdict's evidence as metrics: the best idea's raw and family-adjusted p (airlab.verdicts) and
    the chance model's score, those that are known."""
    known: list[tuple[str, Any, str]] = [
        ("best_p_raw", loop.best, "p_value"),
        ("best_p_adjusted", loop.best, "adjusted_p"),
        ("chance_mean", loop.baseline, "chance"),
    ]
    return [
        (name, float(getattr(message, field))) for name, message, field in known if message.HasField(field)
    ]
