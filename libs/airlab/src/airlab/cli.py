"""The `airlab` command: the embedded stack (up, status, down) and the Lab API (research, watch, ...)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar, cast

import grpc
import typer
from google.protobuf import json_format
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from airlab import auth, bus_access, domain, stack, tls
from airlab.client import GATES, UNTIL, start_request
from airlab.errors import LabError
from airlab.events import body_dict
from airlab.grpc_client import channel, client_token
from airlab.settings import CONFIG_FILES, ConfigError, Settings, described, find_config
from airlab.v1 import events_pb2, lab_pb2, lab_pb2_grpc, research_pb2

T = TypeVar("T")
app = typer.Typer(help="airlab: an autonomous multi-agent AI research lab.", no_args_is_help=True)
# soft_wrap: a long line is never broken (a path or an id stays whole, terminal or not). Into a pipe or a
# file, tables get room too (rich would otherwise squeeze them into 80 columns and cut ids).
_PIPE_WIDTH = 250
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else _PIPE_WIDTH)
err = Console(
    stderr=True, highlight=False, soft_wrap=True, width=None if sys.stderr.isatty() else _PIPE_WIDTH
)


def _table(*headers: str, whole: tuple[str, ...] = ("id", "address", "endpoint", "name")) -> Table:
    """A table whose id, address and name columns are never wrapped or cut (the others give way)."""
    return Table(*[Column(h, no_wrap=True, overflow="ignore") if h in whole else Column(h) for h in headers])


# Status codes that mean the caller's input was wrong: exit code 2, like a usage error.
BAD_INPUT = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
}
DEMO_GOAL = "get the best ROC AUC you can on the loans table"

WorkspaceOpt = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        help="Stack directory (default: $AIRLAB_WORKSPACE; .airlab in a checkout; else the user's data dir)",
    ),
]
ManagerOpt = Annotated[
    str | None, typer.Option("--manager", envvar="AIRLAB_MANAGER_ADDR", help="host:port of the Lab API")
]


# The human gates a research can have, as the client names them (off, plan, every-experiment).
class Gates(StrEnum):
    off = "off"
    plan = "plan"
    every_experiment = "every-experiment"


assert {g.value for g in Gates} == set(GATES), "the CLI's gates are the client's"


# When a research stops before its budget is spent.
class Until(StrEnum):
    goal = "goal"
    beat = "beat"
    budget = "budget"


assert {u.value for u in Until} == set(UNTIL), "the CLI's stop rules are the client's"


class TemplateChoice(StrEnum):
    auto = "auto"
    sklearn = "sklearn"
    pytorch = "pytorch"


assert {t.value for t in TemplateChoice} - {"auto"} == set(domain.TEMPLATES), "the CLI's job templates"


@app.callback()
def options(
    config_dir: Annotated[
        Path | None,
        typer.Option(
            "--config-dir",
            help="Look here first for airlab.yaml, agents.yaml, llm_servers.yaml and datasets.yaml "
            "(then ./configs, the user's config dir, the packaged defaults; `airlab config show` tells)",
        ),
    ] = None,
) -> None:
    if config_dir is not None:
        # Through the environment, so the services `airlab up` starts read the same files.
        os.environ["AIRLAB_CONFIG_DIR"] = str(config_dir.resolve())


def _settings(workspace: Path | None) -> Settings:
    return Settings(workspace=workspace) if workspace else Settings()


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)


@contextlib.contextmanager
def _lab(manager: str | None, workspace: Path | None) -> Iterator[lab_pb2_grpc.LabServiceStub]:
    address = manager
    settings = _settings(workspace)
    if not address:
        state = stack.load_state(settings.workspace.resolve())
        if state is None:
            _fail("no stack is running here: run 'airlab up' (or pass --manager HOST:PORT)")
        address = state.address_of("manager")
    with channel(address, token=client_token(settings), tls=tls.client_files(settings)) as ch:
        try:
            yield lab_pb2_grpc.LabServiceStub(ch)
        except grpc.RpcError as exc:
            code = exc.code()
            _fail(f"{code.name}: {exc.details()}", 2 if code in BAD_INPUT else 1)


def _state_name(state: int) -> str:
    return research_pb2.ResearchState.Name(state).removeprefix("RESEARCH_STATE_").lower()


def _print_research(research: research_pb2.Research) -> None:
    out.print(f"[bold]{research.id}[/bold]  {_state_name(research.state)}  {escape(research.goal)}")
    if research.state_reason:
        out.print(f"  reason: {escape(research.state_reason)}")
    if research.HasField("plan"):
        plan = research.plan
        direction = (
            research_pb2.MetricDirection.Name(plan.direction).removeprefix("METRIC_DIRECTION_").lower()
        )
        out.print(
            f"  plan: dataset={plan.dataset} ({plan.task}), metric={plan.metric} ({direction}), "
            f"baseline={plan.baseline}, template={plan.template or 'sklearn'}"
            + (f", gpus={plan.gpus}" if plan.gpus else "")
            + f", seeds={list(plan.seeds)}, test_fraction={plan.test_fraction}"
        )
        budget = plan.budget
        out.print(
            f"  budget: {budget.max_experiments} experiments, {budget.max_wall_seconds} s, "
            f"{budget.max_tokens} tokens, ${budget.max_cost_usd:g}"
        )
        for reason in plan.reasons:
            out.print(f"    - {escape(reason)}")
    if research.HasField("progress"):
        out.print("  progress: " + escape(_progress_line(research)))
    if research.awaiting:
        idea = f" (idea {research.awaiting_idea_id})" if research.awaiting_idea_id else ""
        out.print(f"  waiting for a person: {research.awaiting}{idea}")
    for question in research.questions:
        options = f" (options: {', '.join(question.options)})" if question.options else ""
        out.print(escape(f"  question [{question.key}]: {question.text}{options}"))


def _print_event(event: events_pb2.Event) -> None:
    stamp = event.time.ToDatetime().strftime("%H:%M:%S.%f")[:-3]
    payload = json.dumps(body_dict(event), separators=(",", ":"))
    if len(payload) > 160:
        payload = payload[:157] + "..."
    out.print(escape(f"#{event.sequence:<5} {stamp} {event.type:<28} {payload}"))


# -- the embedded stack -------------------------------------------------------------------------------------


@app.command()
def up(
    workspace: WorkspaceOpt = None,
    runners: Annotated[
        int,
        typer.Option(
            min=1,
            max=16,
            help="Runner processes sharing the experiment queue, each as if on a host of its own (its own "
            "slots, work root and job uids).",
        ),
    ] = 1,
) -> None:
    """Start nats-server and the five services on this machine; returns once all are SERVING."""
    settings = _settings(workspace)
    try:
        state = stack.up(settings, report=out.print, runners=runners)
    except stack.StackError as exc:
        _fail(str(exc))
    out.print(f"stack up in {state.started_in_seconds:.2f} s; workspace {state.workspace}")
    out.print(_wire(state))


def _wire(state: stack.StackState) -> str:
    """How the stack's processes talk: TLS (where its authority is), or plain text (said in red)."""
    if state.tls:
        authority = tls.directory_of(Path(state.workspace)) / tls.CA_FILE
        return f"every hop over TLS (the lab's authority: {authority})"
    return "[red]plain text on the wire (tls.plaintext)[/red]: tokens, bus passwords and data travel in clear"


@app.command()
def down(workspace: WorkspaceOpt = None) -> None:
    """Stop the stack: services drain first, then nats-server."""
    stopped = stack.down(_settings(workspace))
    out.print(f"stopped: {', '.join(stopped)}" if stopped else "no stack was running")


@app.command()
def status(
    research_id: Annotated[str | None, typer.Argument(help="A research id: show that research")] = None,
    workspace: WorkspaceOpt = None,
    manager: ManagerOpt = None,
) -> None:
    """Health of every process of the stack, or the state of one research."""
    if research_id:
        with _lab(manager, workspace) as lab:
            _print_research(lab.GetResearch(lab_pb2.GetResearchRequest(id=research_id)))
        return
    health = stack.status(_settings(workspace))
    if not health:
        _fail("no stack is running here: run 'airlab up'")
    table = _table("process", "address", "health", "pid", "restarts", "metrics")
    procs = {p.name: p for p in stack.processes(_settings(workspace))}
    for name, (address, state) in health.items():
        colour = "green" if state in ("SERVING", "RUNNING") else "red"
        proc = procs.get(name)
        pid, restarts = (str(proc.pid), str(proc.restarts)) if proc else ("-", "-")
        metrics = proc.metrics if proc is not None and proc.metrics else "-"
        table.add_row(name, address, f"[{colour}]{state}[/{colour}]", pid, restarts, metrics)
    out.print(table)
    running = stack.load_state(_settings(workspace).workspace.resolve())
    if running is not None:
        out.print(_wire(running))
    if any(state not in ("SERVING", "RUNNING") for _, state in health.values()):
        raise typer.Exit(1)


# -- the Lab API --------------------------------------------------------------------------------------------


@app.command()
def research(
    goal: Annotated[str, typer.Argument(help='The research goal, e.g. "beat the MLP baseline on digits"')],
    dataset: Annotated[str, typer.Option(help="Dataset name from datasets.yaml (airlab config show)")] = "",
    metric: Annotated[str, typer.Option(help="Metric name, e.g. accuracy, roc_auc, rmse")] = "",
    baseline: Annotated[str, typer.Option(help="Baseline to beat, e.g. logistic_regression")] = "",
    max_experiments: Annotated[int, typer.Option(min=0, help="Experiment budget (0: default)")] = 0,
    max_wall_seconds: Annotated[int, typer.Option(min=0, help="Wall-clock budget (0: default)")] = 0,
    max_tokens: Annotated[int, typer.Option(min=0, help="LLM token budget (0: default)")] = 0,
    max_cost_usd: Annotated[float, typer.Option(min=0, help="LLM cost budget in USD (0: default)")] = 0.0,
    gates: Annotated[Gates, typer.Option(help="What waits for a person")] = Gates.off,
    until: Annotated[
        Until,
        typer.Option(
            help="Stop at the first significant win (beat), use the whole budget (budget), or read the goal"
        ),
    ] = Until.goal,
    template: Annotated[
        TemplateChoice,
        typer.Option(
            help="Write experiments as scikit-learn estimators or PyTorch networks (auto: from the data "
            "and the goal's words, e.g. CNN, U-Net, PyTorch)"
        ),
    ] = TemplateChoice.auto,
    data: Annotated[
        str,
        typer.Option(
            help="Your own data: a CSV table, or an .npz file of arrays x and y (PyTorch); an absolute path "
            "on the runner's host, or s3://BUCKET/KEY"
        ),
    ] = "",
    target: Annotated[str, typer.Option(help="With a CSV --data: the label column")] = "",
    task: Annotated[
        str, typer.Option(help="With --data: classification or regression (.npz: also segmentation)")
    ] = "",
    allow_defaults: Annotated[bool, typer.Option(help="Assume defaults instead of asking questions")] = False,
    request_id: Annotated[str, typer.Option(help="Idempotency key")] = "",
    follow: Annotated[
        bool, typer.Option(help="Show live progress until it ends or waits for a person")
    ] = True,
    workspace: WorkspaceOpt = None,
    manager: ManagerOpt = None,
) -> None:
    """Start a research."""
    request = start_request(
        goal,
        dataset=dataset,
        metric=metric,
        baseline=baseline,
        max_experiments=max_experiments,
        max_wall_seconds=max_wall_seconds,
        max_tokens=max_tokens,
        max_cost_usd=max_cost_usd,
        gates=gates.value,
        until=until.value,
        template="" if template == TemplateChoice.auto else template.value,
        allow_defaults=allow_defaults,
        request_id=request_id,
        user_dataset=research_pb2.UserDataset(
            source=str(Path(data).resolve()) if data and not data.startswith("s3://") else data,
            target=target,
            task=task,
        ),
    )
    with _lab(manager, workspace) as lab:
        created = lab.StartResearch(request)
        out.print(f"started research {created.id}")
        if follow:
            _follow(lab, created.id)
            created = lab.GetResearch(lab_pb2.GetResearchRequest(id=created.id))
        _print_research(created)
        if created.report_markdown_key:
            _print_report_location(_settings(workspace), created)


# Events after which the research stops for now: it ended, or a person must act.
SETTLED = {
    "research.needs_human",
    "research.awaiting_approval",
    "research.cancelled",
    "research.failed",
    "research.completed",
}
# Events worth a progress line.
PROGRESS_EVENTS = {
    "research.planned",
    "research.decided",
    "idea.reviewed",
    "code.ready",
    "code.failed",
    "experiment.finished",
    "experiment.failed",
    "evaluation.completed",
    "report.written",
}


def _progress_line(research: research_pb2.Research) -> str:
    p = research.progress
    queued = p.experiments_requested - p.experiments_finished - p.experiments_failed
    parts = [
        f"round {p.round}",
        p.phase or _state_name(research.state),
        f"experiments {p.experiments_finished} done, {p.experiments_failed} failed, {queued} queued",
    ]
    metric = research.plan.metric
    if p.has_baseline:
        parts.append(f"baseline {metric} {p.baseline_mean:.4f} ± {p.baseline_std:.4f}")
    if p.has_best:
        mark = " (significant)" if p.best_significant else " (suggestive)" if p.best_suggestive else ""
        if p.HasField("best_adjusted_p"):
            mark += f", adjusted p {p.best_adjusted_p:.4f}"
        parts.append(f"best {p.best_mean:.4f} ± {p.best_std:.4f}{mark}")
    parts.append(f"{p.tokens} tokens, ${p.cost_usd:.4f}")
    parts.append(
        f"time: LLM {p.llm_seconds:.0f} s, experiments {p.experiment_seconds:.0f} s, "
        f"waiting for a slot {p.waiting_seconds:.0f} s"
    )
    return " | ".join(parts)


def _follow(lab: lab_pb2_grpc.LabServiceStub, research_id: str, timeout: float = 7 * 86400) -> None:
    """Print what happens, with a progress line after each step, until the research ends or waits."""
    stream = lab.WatchResearch(lab_pb2.WatchResearchRequest(id=research_id, follow=True), timeout=timeout)
    for event in stream:
        if event.type in PROGRESS_EVENTS or event.type.startswith("research."):
            _print_event(event)
        if event.type in PROGRESS_EVENTS:
            out.print(
                "  " + escape(_progress_line(lab.GetResearch(lab_pb2.GetResearchRequest(id=research_id))))
            )
        if event.type in SETTLED:
            stream.cancel()
            return


def _report_location(settings: Settings, key: str) -> str:
    url = settings.resolved_artifacts_url()
    if url.startswith("file://"):
        return str(Path(url.removeprefix("file://")) / key)
    from airlab.blobs import artifact_store_from

    return artifact_store_from(settings).presigned_url(key)


def _print_report_location(settings: Settings, research: research_pb2.Research) -> None:
    out.print(f"report: {_report_location(settings, research.report_markdown_key)}")
    out.print(f"report (HTML): {_report_location(settings, research.report_html_key)}")
    paper = _report_location(settings, research.report_markdown_key.rsplit("/", 1)[0] + "/report.pdf")
    if not paper.startswith("/") or Path(paper).is_file():  # a store's address, or the local file
        out.print(f"paper (PDF): {paper}")


@app.command()
def report(
    research_id: Annotated[str, typer.Argument(help="The research id")],
    show: Annotated[bool, typer.Option("--print", help="Print the Markdown report")] = False,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Write report.md, report.html, report.pdf, summary.json and plots here"),
    ] = None,
    pdf: Annotated[
        bool, typer.Option("--pdf", help="Write the paper, report.pdf, here (or into --out)")
    ] = False,
    workspace: WorkspaceOpt = None,
    manager: ManagerOpt = None,
) -> None:
    """Where a research's report is, the report itself (--print), its paper (--pdf), or its files copied
    here (--out). The report comes through the Lab API, so this works against a remote manager too."""
    settings = _settings(workspace)
    with _lab(manager, workspace) as lab:
        found = lab.GetResearch(lab_pb2.GetResearchRequest(id=research_id))
        if not found.report_markdown_key:
            _fail(
                f"research {research_id} has no report yet ({_state_name(found.state)}: {found.state_reason})"
            )
        if not (show or out_dir or pdf):
            _print_report_location(settings, found)
            return
        report = lab.GetReport(lab_pb2.GetReportRequest(id=research_id, pdf=bool(pdf or out_dir)))
    if show:
        print(report.markdown)
    if pdf and not report.pdf:
        _fail(f"research {research_id} has no paper: {report.paper_status or 'none was written'}")
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        files = {"report.md": report.markdown.encode(), "report.html": report.html.encode()}
        files |= {"summary.json": report.summary_json.encode(), **dict(report.plots)}
        if report.pdf:
            files["report.pdf"] = report.pdf
        for name, content in files.items():
            (out_dir / name).write_bytes(content)
        out.print(f"wrote {len(files)} files to {out_dir}", soft_wrap=True)
    elif pdf:
        target = Path(f"report-{research_id}.pdf")
        target.write_bytes(report.pdf)
        out.print(f"wrote {target} ({report.paper_status})", soft_wrap=True)


@app.command("list")
def list_(
    state: Annotated[str, typer.Option(help="Only this state, e.g. planned, needs_human")] = "",
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    workspace: WorkspaceOpt = None,
    manager: ManagerOpt = None,
) -> None:
    """Researches, newest first."""
    state_value = research_pb2.RESEARCH_STATE_UNSPECIFIED
    if state:
        name = f"RESEARCH_STATE_{state.upper()}"
        try:
            state_value = cast(research_pb2.ResearchState, research_pb2.ResearchState.Value(name))
        except ValueError:
            _fail(f"--state: unknown state {state!r}", 2)
    with _lab(manager, workspace) as lab:
        reply = lab.ListResearch(lab_pb2.ListResearchRequest(page_size=limit, state=state_value))
    table = _table("id", "state", "dataset", "metric", "goal")
    for item in reply.researches:
        table.add_row(item.id, _state_name(item.state), item.plan.dataset, item.plan.metric, item.goal[:60])
    out.print(table)


@app.command()
def watch(
    research_id: str,
    from_sequence: Annotated[int, typer.Option("--from", min=0, help="Start at this event sequence")] = 0,
    follow: Annotated[bool, typer.Option(help="Keep waiting for new events")] = True,
    workspace: WorkspaceOpt = None,
    manager: ManagerOpt = None,
) -> None:
    """A research's events, in order."""
    with _lab(manager, workspace) as lab:
        request = lab_pb2.WatchResearchRequest(id=research_id, from_sequence=from_sequence, follow=follow)
        for event in lab.WatchResearch(request):
            _print_event(event)


@app.command()
def cancel(
    research_id: str,
    reason: Annotated[str, typer.Option(help="Why")] = "",
    workspace: WorkspaceOpt = None,
    manager: ManagerOpt = None,
) -> None:
    """Cancel a research."""
    with _lab(manager, workspace) as lab:
        _print_research(lab.CancelResearch(lab_pb2.CancelResearchRequest(id=research_id, reason=reason)))


@app.command()
def approve(
    research_id: str,
    answer: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE answer to a question (repeatable)")
    ] = None,
    comment: Annotated[str, typer.Option()] = "",
    subject: Annotated[
        str, typer.Option(help="What to approve: plan, experiment or continue (default: whatever waits)")
    ] = "",
    workspace: WorkspaceOpt = None,
    manager: ManagerOpt = None,
) -> None:
    """Approve what waits for you, or answer the manager's questions."""
    answers = {}
    for item in answer or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"--answer: expected KEY=VALUE, got {item!r}", 2)
        answers[key] = value
    request = lab_pb2.ApproveRequest(
        research_id=research_id, subject=subject, answers=answers, comment=comment
    )
    with _lab(manager, workspace) as lab:
        _print_research(lab.Approve(request))


@app.command()
def reject(
    research_id: str,
    reason: Annotated[str, typer.Option(help="Why (required)")],
    subject: Annotated[
        str, typer.Option(help="What to reject: plan, experiment or continue (default: whatever waits)")
    ] = "",
    workspace: WorkspaceOpt = None,
    manager: ManagerOpt = None,
) -> None:
    """Reject what waits for you, with a reason."""
    with _lab(manager, workspace) as lab:
        request = lab_pb2.RejectRequest(research_id=research_id, subject=subject, reason=reason)
        _print_research(lab.Reject(request))


# -- LLMs ---------------------------------------------------------------------------------------------------

llm_app = typer.Typer(help="The LLM servers the agents use.", no_args_is_help=True)


@app.command()
def token(
    name: Annotated[str, typer.Argument(help="Who the token is for, e.g. alice; or 'revoke'")],
    revoked_name: Annotated[
        str, typer.Argument(help="After 'revoke': whose tokens (all issued until now)", show_default=False)
    ] = "",
    role: Annotated[
        str, typer.Option(help="researcher (their own researches), admin (all) or service (its name)")
    ] = "researcher",
    expires: Annotated[str, typer.Option(help="How long it is valid: 90m, 8h, 30d, or 'never'")] = "30d",
    revoked_token: Annotated[
        str, typer.Option("--token", help="After 'revoke': this one token instead of a name's")
    ] = "",
    workspace: WorkspaceOpt = None,
) -> None:
    """Print a token for a user of this lab, signed with its key: AIRLAB_AUTH__KEY (a deployment's), else
    the workspace's from 'airlab up'. It expires after --expires (30 days unless said).
    'airlab token revoke alice' refuses every token of alice's issued until now, on every call to every
    service ('--token T' refuses one token)."""
    settings = _settings(workspace)
    if name == "revoke":
        _revoke(settings, revoked_name, revoked_token)
        return
    if revoked_name or revoked_token:
        _fail("a second name and --token go with 'airlab token revoke' only", 2)
    try:
        lifetime = duration_seconds(expires)
        print(auth.issue(_lab_key(settings), name, role, lifetime_seconds=lifetime))  # type: ignore[arg-type]
    except ValueError as exc:
        _fail(str(exc), 2)


def _revoke(settings: Settings, name: str, token: str) -> None:
    if bool(name) == bool(token):
        _fail("say whose tokens to revoke ('airlab token revoke alice') or one with --token", 2)
    key_file = settings.auth.key_file or str(
        auth.credentials_dir(settings.workspace.resolve()) / auth.KEY_FILE
    )
    revocations = auth.revocations_for(settings.auth.revoked_file, key_file)
    assert revocations is not None  # a key file is always named here
    try:
        revocations.revoke(name=name, token=token.strip())
    except ValueError as exc:
        _fail(str(exc), 2)
    what = "the token" if token else f"{name}'s tokens issued until now"
    print(f"revoked {what} ({revocations.path}): every service refuses it from its next call")


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(text: str) -> float | None:
    """'90m', '8h', '30d' as seconds; 'never' as None."""
    text = text.strip().lower()
    if text == "never":
        return None
    number, unit = text[:-1], text[-1:]
    if unit not in DURATION_UNITS or not number.isdigit() or int(number) < 1:
        raise ValueError(f"--expires {text!r}: a whole number with s, m, h or d (e.g. 8h, 30d), or 'never'")
    return int(number) * DURATION_UNITS[unit]


@app.command("nats-config")
def nats_config(
    out: Annotated[Path, typer.Argument(help="The file to write (0600), for nats-server --config")],
    workspace: WorkspaceOpt = None,
) -> None:
    """Write nats-server's users and permissions (a password per service, derived from the lab's key):
    compose and k8s run this before nats-server starts; `airlab up` does it by itself."""
    settings = _settings(workspace)
    try:
        # With tls.* set (the files as nats-server will see them), clients must present the lab's.
        files = tls.own_files(settings.tls)
        bus_access.write_server_config(_lab_key(settings), out, files)
    except (OSError, ValueError) as exc:
        _fail(str(exc), 2)
    print(f"wrote the bus's users to {out}" + (" (TLS, client certificates required)" if files else ""))


@app.command("tls-files")
def tls_files(
    out: Annotated[Path, typer.Argument(help="The directory to write ca.crt, tls.crt and tls.key into")],
    owner: Annotated[str, typer.Option(help="uid:gid to give tls.key to (the services' user)")] = "",
) -> None:
    """Make a deployment's TLS files (once; an existing set is kept): the lab's own authority and one
    certificate for every service, by the names compose and k8s reach them. Compose runs this in its
    one-shot before nats-server starts; `make k8s-secrets` runs it for an overlay's Secret."""
    try:
        uid_gid = tuple(int(part) for part in owner.split(":")) if owner else None
        if uid_gid is not None and len(uid_gid) != 2:
            raise ValueError("--owner is uid:gid, e.g. 10001:10001")
        files = tls.write_deploy_files(out, uid_gid)
    except (OSError, ValueError) as exc:
        _fail(str(exc), 2)
    print(f"TLS files in {files.ca.parent}: {', '.join(tls.DEPLOY_FILES)}")


def _lab_key(settings: Settings) -> bytes:
    """The lab's key (AIRLAB_AUTH__KEY, auth.key_file, else the workspace's); exit 2 when there is none."""
    key = auth.lab_key(settings.auth.key, settings.auth.key_file, settings.workspace.resolve())
    if key is None:
        key_file = auth.credentials_dir(settings.workspace.resolve()) / auth.KEY_FILE
        _fail(f"no lab key: set AIRLAB_AUTH__KEY, or run 'airlab up' (it writes {key_file})", 2)
    return key


app.add_typer(llm_app, name="llm")


@llm_app.command("check")
def llm_check(workspace: WorkspaceOpt = None) -> None:
    """For each agent: the endpoint it resolves to, whether it answers, latency and tokens/s."""
    from airlab.llm.check import check
    from airlab.llm.config import LLMConfig

    settings = _settings(workspace)
    config = LLMConfig.load()
    state = stack.load_state(settings.workspace.resolve())
    local = state.llm_urls if state else {}
    config = config.with_urls({**local, **settings.llm_urls})
    table = _table("agent", "server", "model", "endpoint", "answers", "latency", "tokens/s")
    failed = False
    for agent, (resolved, route) in asyncio.run(check(config)).items():
        failed |= resolved is None
        for position, probe in enumerate(route):
            chosen = probe is resolved
            table.add_row(
                agent if position == 0 else "",
                f"[bold]{probe.server}[/bold]" if chosen else probe.server,
                probe.model,
                probe.url or "-",
                "[green]yes[/green]" if probe.ok else f"[red]no[/red] {escape(probe.detail)}",
                f"{probe.latency_seconds:.2f} s" if probe.ok else "",
                f"{probe.tokens_per_second:.1f}" if probe.ok else "",
            )
    out.print(table)
    if failed:
        _fail("some agents have no LLM endpoint that answers")


# -- backups ------------------------------------------------------------------------------------------------


def _nats_url(settings: Settings) -> str:
    state = stack.load_state(settings.workspace.resolve())
    return state.nats_url if state else settings.nats_url


def _run_lab_call(call: Callable[[], T]) -> T:
    try:
        return call()
    except LabError as exc:
        _fail(str(exc), 2 if exc.code in {c.name for c in BAD_INPUT} else 1)
    except (OSError, TimeoutError) as exc:
        _fail(f"cannot reach the lab's state: {exc}")


@app.command("backup")
def backup_(
    name: Annotated[str, typer.Argument(help="Backup name (default: the UTC time)")] = "",
    workspace: WorkspaceOpt = None,
) -> None:
    """Snapshot the KV state and the memory collections into the artifact store."""
    from airlab import backup  # Qdrant's client and the embedding model: slow to import for every command

    settings = _settings(workspace)
    manifest = _run_lab_call(lambda: asyncio.run(backup.back_up_lab(settings, _nats_url(settings), name)))
    out.print(f"backup {manifest.name}: records {manifest.buckets}, memories {manifest.memories}")


@app.command()
def restore(
    name: str,
    force: Annotated[bool, typer.Option(help="Restore over a stack that is not empty")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Restore a backup into an empty stack."""
    from airlab import backup

    settings = _settings(workspace)
    restored = _run_lab_call(
        lambda: asyncio.run(backup.restore_lab(settings, _nats_url(settings), name, force=force))
    )
    manifest = restored.manifest
    out.print(f"restored {manifest.name}: records {manifest.buckets}, memories {manifest.memories}")
    if restored.running:
        out.print(
            f"{len(restored.running)} research(es) were running: sent again the {restored.requests_sent} "
            "request(s) they were waiting for"
        )


@app.command()
def backups(workspace: WorkspaceOpt = None) -> None:
    """Backups in the artifact store, oldest first."""
    from airlab import backup
    from airlab.blobs import artifact_store_from

    manifests = _run_lab_call(lambda: backup.list_backups(artifact_store_from(_settings(workspace))))
    table = _table("name", "created", "records", "memories")
    for manifest in manifests:
        table.add_row(
            manifest.name,
            manifest.created,
            str(sum(manifest.buckets.values())),
            str(sum(manifest.memories.values())),
        )
    out.print(table)


# -- the main job -------------------------------------------------------------------------------------------


@app.command()
def demo(
    goal: Annotated[str, typer.Argument()] = DEMO_GOAL,
    max_experiments: Annotated[int, typer.Option(min=0, help="Experiment budget (0: the demo's 12)")] = 12,
    keep: Annotated[bool, typer.Option(help="Leave the stack running afterwards")] = False,
    workspace: WorkspaceOpt = None,
) -> None:
    """Bring the embedded stack up, run a research goal end to end (baseline, ideas from the local LLM,
    code, search, evaluation over seeds, report), print where the report is, and bring the stack down."""
    settings = _settings(workspace)
    began = time.monotonic()
    up(workspace)
    try:
        research(goal, max_experiments=max_experiments, allow_defaults=True, workspace=workspace)
        with _lab(None, workspace) as lab:
            done = lab.ListResearch(lab_pb2.ListResearchRequest(page_size=1)).researches[0]
        path = settings.workspace.resolve() / "last-research.json"
        path.write_text(json_format.MessageToJson(done, preserving_proto_field_name=True))
        out.print(f"research record: {path}")
        if done.state not in (research_pb2.RESEARCH_STATE_COMPLETED, research_pb2.RESEARCH_STATE_FAILED):
            _fail(f"the research ended {_state_name(done.state)}: {done.state_reason}")
    finally:
        if not keep:
            down(workspace)
    out.print(f"demo finished in {time.monotonic() - began:.1f} s")


config_app = typer.Typer(help="The configuration in force, and where it comes from.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(workspace: WorkspaceOpt = None) -> None:
    """Every config file and setting in force, and where each comes from (secrets masked)."""
    out.print("config files (looked for in AIRLAB_CONFIG_DIR, ./configs, the user's config dir, then the "
              "packaged defaults):")  # fmt: skip
    for name in CONFIG_FILES:
        origin, path = find_config(name)
        out.print(f"  {name:17} {origin:17} {escape(str(path.resolve()))}")
    out.print("settings:")
    for key, value, source in described(_settings(workspace)):
        out.print(f"  {key} = {escape(value)}  ({escape(source)})")


def main() -> None:
    try:
        app()
    except (ConfigError, ValidationError) as exc:
        err.print(f"[red]error:[/red] the configuration cannot be used: {escape(str(exc))}")
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
