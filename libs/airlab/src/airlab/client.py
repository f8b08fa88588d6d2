"""A Python client of the lab for other tools: start a research, follow it, answer its gates, cancel it,
list researches, and fetch its report and artifacts, without knowing the event subjects, the stack file or
the artifact layout.

    from airlab.client import Lab

    with Lab.connect() as lab:                       # the embedded stack `airlab up` started here
        research = lab.start("beat the logistic-regression baseline on digits", max_experiments=6)
        for update in lab.progress(research.id):     # the research after each step, until it settles
            print(update.progress.phase, update.progress.experiments_finished)
        report = lab.report(research.id)
        print(report.summary["verdict"])
"""

from __future__ import annotations

import builtins
import json
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from airlab import stack, tls
from airlab.blobs import ArtifactStore, artifact_store_from
from airlab.errors import FailedPrecondition
from airlab.grpc_client import channel, client_token
from airlab.settings import Settings
from airlab.v1 import events_pb2, lab_pb2, lab_pb2_grpc, research_pb2

Gates = Literal["off", "plan", "every-experiment"]
GATES: dict[str, research_pb2.HumanGates] = {
    "off": research_pb2.HUMAN_GATES_OFF,
    "plan": research_pb2.HUMAN_GATES_PLAN,
    "every-experiment": research_pb2.HUMAN_GATES_EVERY_EXPERIMENT,
}
Until = Literal["goal", "beat", "budget"]
UNTIL: dict[str, research_pb2.StopRule] = {
    # "goal": the planner reads it ("beat the baseline ..." stops at a win, "as good as possible" uses
    # the budget).
    "goal": research_pb2.STOP_RULE_UNSPECIFIED,
    "beat": research_pb2.STOP_RULE_BEAT_BASELINE,
    "budget": research_pb2.STOP_RULE_USE_BUDGET,
}
# Events after which a research stops for now: it ended, or a person must act.
SETTLING_EVENTS = frozenset(
    {
        "research.needs_human",
        "research.awaiting_approval",
        "research.cancelled",
        "research.failed",
        "research.completed",
    }
)
ENDED = frozenset(
    {
        research_pb2.RESEARCH_STATE_COMPLETED,
        research_pb2.RESEARCH_STATE_FAILED,
        research_pb2.RESEARCH_STATE_CANCELLED,
    }
)


@dataclass(frozen=True)
class Report:
    """A research's final report: Markdown, self-contained HTML, the numbers of summary.json, and the
    paper (report.pdf's bytes; None when it was not published, summary["paper"]["status"] says why)."""

    research_id: str
    markdown: str
    html: str
    summary: dict[str, Any]
    pdf: bytes | None = None

    def save_pdf(self, path: Path | str) -> Path:
        """Write the paper to `path`; FailedPrecondition when there is none."""
        if self.pdf is None:
            status = (self.summary.get("paper") or {}).get("status", "none was written")
            raise FailedPrecondition(f"research {self.research_id} has no paper: {status}")
        target = Path(path)
        target.write_bytes(self.pdf)
        return target


def start_request(
    goal: str,
    *,
    dataset: str = "",
    metric: str = "",
    baseline: str = "",
    max_experiments: int = 0,
    max_wall_seconds: int = 0,
    max_tokens: int = 0,
    max_cost_usd: float = 0.0,
    gates: Gates = "off",
    allow_defaults: bool = True,
    user_dataset: research_pb2.UserDataset | None = None,
    request_id: str = "",
    until: Until = "goal",
    template: str = "",
) -> lab_pb2.StartResearchRequest:
    """The Lab API's request to start a research (the CLI's `airlab research` sends the same)."""
    return lab_pb2.StartResearchRequest(
        goal=goal,
        dataset=dataset,
        metric=metric,
        baseline=baseline,
        budget=research_pb2.Budget(
            max_experiments=max_experiments,
            max_wall_seconds=max_wall_seconds,
            max_tokens=max_tokens,
            max_cost_usd=max_cost_usd,
        ),
        gates=GATES[gates],
        allow_defaults=allow_defaults,
        request_id=request_id,
        user_dataset=user_dataset,
        until=UNTIL[until],
        template=template,
    )


class Lab:
    """A connection to the Lab API (the manager). Errors are grpc.RpcError with the server's status code
    and message (INVALID_ARGUMENT names the field at fault)."""

    def __init__(self, address: str, *, settings: Settings | None = None) -> None:
        self.address = address
        self.settings = settings or Settings()
        self._channel = channel(
            address, token=client_token(self.settings), tls=tls.client_files(self.settings)
        )
        self._stub = lab_pb2_grpc.LabServiceStub(self._channel)

    @classmethod
    def connect(cls, address: str | None = None, *, workspace: Path | None = None) -> Lab:
        """Connect to `address` (host:port), or to the embedded stack that `airlab up` started in
        `workspace` (default: the settings' workspace)."""
        settings = Settings(workspace=workspace) if workspace else Settings()
        if address is None:
            state = stack.load_state(settings.workspace.resolve())
            if state is None:
                raise FailedPrecondition(
                    f"no stack runs in {settings.workspace.resolve()}: run 'airlab up', or pass an address"
                )
            address = state.address_of("manager")
        return cls(address, settings=settings)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Lab:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    # -- researches -----------------------------------------------------------------------------------------

    def start(self, goal: str, **options: Any) -> research_pb2.Research:
        """Start a research; `options` are those of start_request (a budget field left 0 takes the
        server's default). A retried start with the same `request_id` returns the same research."""
        return self._stub.StartResearch(start_request(goal, **options))

    def get(self, research_id: str) -> research_pb2.Research:
        return self._stub.GetResearch(lab_pb2.GetResearchRequest(id=research_id))

    def list(
        self, state: research_pb2.ResearchState = research_pb2.RESEARCH_STATE_UNSPECIFIED
    ) -> builtins.list[research_pb2.Research]:
        """Every research (newest first), or those in `state`."""
        found: list[research_pb2.Research] = []
        token = ""
        while True:
            page = self._stub.ListResearch(
                lab_pb2.ListResearchRequest(page_size=500, page_token=token, state=state)
            )
            found.extend(page.researches)
            token = page.next_page_token
            if not token:
                return found

    def events(
        self, research_id: str, *, follow: bool = True, from_sequence: int = 0, timeout: float | None = None
    ) -> Iterator[events_pb2.Event]:
        """The research's events in order, from the first (or `from_sequence`); with `follow`, new ones as
        they happen, until the caller stops iterating."""
        stream = self._stub.WatchResearch(
            lab_pb2.WatchResearchRequest(id=research_id, follow=follow, from_sequence=from_sequence),
            timeout=timeout,
        )
        try:
            yield from stream
        finally:
            stream.cancel()

    def progress(self, research_id: str, *, timeout: float | None = None) -> Iterator[research_pb2.Research]:
        """The research after each of its steps, until it ends or waits for a person (then the last one
        yielded says which, in .state and .awaiting)."""
        current = self.get(research_id)
        yield current
        if self._settled(current):
            return
        for event in self.events(research_id, timeout=timeout):
            current = self.get(research_id)
            yield current
            if event.type in SETTLING_EVENTS and self._settled(current):
                return

    @staticmethod
    def _settled(research: research_pb2.Research) -> bool:
        return research.state in ENDED or research.state in (
            research_pb2.RESEARCH_STATE_NEEDS_HUMAN,
            research_pb2.RESEARCH_STATE_AWAITING_APPROVAL,
        )

    def wait(self, research_id: str, *, timeout: float | None = None) -> research_pb2.Research:
        """Block until the research ends or waits for a person; returns it."""
        # progress() yields at least once, and its last item is the answer.
        return deque(self.progress(research_id, timeout=timeout), maxlen=1)[0]

    def approve(
        self,
        research_id: str,
        *,
        answers: Mapping[str, str] | None = None,
        subject: str = "",
        comment: str = "",
    ) -> research_pb2.Research:
        """Approve what waits (a plan, an experiment, going on), or answer the manager's questions."""
        request = lab_pb2.ApproveRequest(
            research_id=research_id, subject=subject, answers=dict(answers or {}), comment=comment
        )
        return self._stub.Approve(request)

    def reject(self, research_id: str, reason: str, *, subject: str = "") -> research_pb2.Research:
        request = lab_pb2.RejectRequest(research_id=research_id, subject=subject, reason=reason)
        return self._stub.Reject(request)

    def cancel(self, research_id: str, reason: str = "") -> research_pb2.Research:
        return self._stub.CancelResearch(lab_pb2.CancelResearchRequest(id=research_id, reason=reason))

    # -- results --------------------------------------------------------------------------------------------

    def _artifacts(self) -> ArtifactStore:
        return artifact_store_from(self.settings)

    def report(self, research_id: str, format: Literal["markdown", "pdf"] = "markdown") -> Report:
        """The research's report, read from the lab's artifact store (this workspace's, or the S3 store the
        settings name). With format="pdf" the paper (report.pdf) is required: FailedPrecondition, saying
        why, when it was not published."""
        research = self.get(research_id)
        if not research.report_markdown_key:
            state = research_pb2.ResearchState.Name(research.state)
            raise FailedPrecondition(f"research {research_id} has no report yet ({state})")
        store = self._artifacts()
        reports = research.report_markdown_key.rsplit("/", 1)[0]
        summary = json.loads(store.get(f"{reports}/summary.json"))
        pdf = store.get(f"{reports}/report.pdf") if store.exists(f"{reports}/report.pdf") else None
        if format == "pdf" and pdf is None:
            status = (summary.get("paper") or {}).get("status", "none was written")
            raise FailedPrecondition(f"research {research_id} has no paper: {status}")
        return Report(
            research_id,
            store.get(research.report_markdown_key).decode(),
            store.get(research.report_html_key).decode(),
            summary,
            pdf,
        )

    def download(self, research_id: str, destination: Path, *, prefix: str = "") -> builtins.list[Path]:
        """Copy the research's artifacts (code, logs, metrics, results, models, plots, reports), or those
        under `prefix` inside it (e.g. "reports/"), into `destination`; returns the files written."""
        self.get(research_id)  # NOT_FOUND for an unknown research, before anything is written
        store = self._artifacts()
        root = f"research/{research_id}/"
        written = []
        for info in store.list(root + prefix):
            target = (destination / info.key[len(root) :]).resolve()
            if not target.is_relative_to(destination.resolve()):
                continue  # a key never climbs out of the destination
            target.parent.mkdir(parents=True, exist_ok=True)
            store.download(info.key, target)
            written.append(target)
        return written


__all__ = ["GATES", "Lab", "Report", "start_request"]
