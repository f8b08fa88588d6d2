"""The dashboard's web app: pages rendered on the server (Jinja2), live updates by server-sent events fed
by the Lab API's event stream (with replay), and every action the CLI has, as forms.

It holds no authority of its own: a signed-in browser carries its user's lab token in an HttpOnly,
SameSite=Strict cookie, and every page is a Lab API call made with that token, so the manager decides
what each user may see and do (a researcher sees only their own researches). Every form that changes
something carries a CSRF token derived from the session's token."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates

from airlab.blobs import ArtifactStore
from airlab.client import GATES, UNTIL, start_request
from airlab.enums import enum_words
from airlab.tls import TlsFiles
from airlab.v1 import lab_pb2, research_pb2
from airlab_dashboard import lab_metrics, view
from airlab_dashboard.lab_calls import LabCalls, NeedsLogin, follow, principal_name

COOKIE = "airlab_token"
PACKAGE = resources.files("airlab_dashboard")
STATES = {
    enum_words(research_pb2.ResearchState, value): value
    for value in research_pb2.ResearchState.values()
    if value
}
TASKS = ("classification", "regression", "segmentation")
# What a file link may name inside a research's artifacts: code, logs, results, metrics, plots.
FILE_KEY = re.compile(r"^(code|experiments)/[A-Za-z0-9._/-]+$")

# The report page is the reviewer's self-contained HTML: shown sandboxed, with no script and no fetch.
REPORT_POLICY = "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def csrf_token(session: str) -> str:
    return hmac.new(session.encode(), b"airlab-dashboard-csrf", hashlib.sha256).hexdigest()


def create_app(
    lab_address: str,
    artifacts: ArtifactStore,
    *,
    uploads: Callable[[str, str, bytes], str],
    max_upload_bytes: int = 100 << 20,
    secure_cookies: bool = False,
    lab_tls: TlsFiles | None = None,
    metrics_urls: Mapping[str, str] | None = None,
) -> FastAPI:
    """`uploads(owner, filename, data)` stores an uploaded CSV where the runner can mount it and returns
    the dataset source to put in the request (a path on the runner's host, or s3://BUCKET/KEY). The Lab
    API is called over TLS with `lab_tls`. `metrics_urls`: each service's metrics endpoint, for the lab
    page."""
    app = FastAPI(title="airlab", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=str(PACKAGE / "templates"))
    templates.env.globals["words"] = enum_words
    templates.env.globals["pb"] = research_pb2

    def lab_for(request: Request) -> LabCalls:
        token = request.cookies.get(COOKIE, "")
        if not token:
            raise NeedsLogin("sign in first")
        return LabCalls(lab_address, token, lab_tls)

    def check_csrf(request: Request, csrf: str) -> None:
        expected = csrf_token(request.cookies.get(COOKIE, ""))
        if not hmac.compare_digest(csrf, expected):
            raise HTTPException(403, "the form's CSRF token does not match this session: reload the page")

    def page(request: Request, name: str, **context: Any) -> HTMLResponse:
        token = request.cookies.get(COOKIE, "")
        context |= {"csrf": csrf_token(token) if token else "", "signed_in": bool(token)}
        return templates.TemplateResponse(request, name, context)

    @app.exception_handler(NeedsLogin)
    async def to_login(request: Request, exc: NeedsLogin) -> Response:
        if request.url.path.endswith("/stream"):
            return Response(status_code=401)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @app.exception_handler(HTTPException)
    async def error_page(request: Request, exc: HTTPException) -> Response:
        response = page(request, "error.html", status=exc.status_code, message=exc.detail)
        response.status_code = exc.status_code
        return response

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request) -> HTMLResponse:
        return page(request, "login.html", error="")

    @app.post("/login")
    async def login(request: Request, token: Annotated[str, Form()]) -> Response:
        token = token.strip()
        calls = LabCalls(lab_address, token, lab_tls)
        try:
            await asyncio.to_thread(calls.call, "ListResearch", lab_pb2.ListResearchRequest(page_size=1))
        except (NeedsLogin, HTTPException) as exc:
            return page(request, "login.html", error=f"the lab refused this token ({exc})")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE, token, httponly=True, samesite="strict", secure=secure_cookies, max_age=12 * 3600
        )
        return response

    @app.post("/logout")
    async def logout(request: Request, csrf: Annotated[str, Form()]) -> Response:
        check_csrf(request, csrf)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/", response_class=HTMLResponse)
    async def researches(request: Request, state: str = "") -> HTMLResponse:
        calls = lab_for(request)
        if state and state not in STATES:
            raise HTTPException(400, f"unknown state {state!r}; one of {', '.join(STATES)}")
        listed = await asyncio.to_thread(
            calls.call,
            "ListResearch",
            lab_pb2.ListResearchRequest(page_size=200, state=STATES.get(state, 0)),  # type: ignore[arg-type]
        )
        return page(request, "list.html", researches=listed.researches, states=list(STATES), state=state)

    @app.get("/lab", response_class=HTMLResponse)
    async def lab_page(request: Request) -> HTMLResponse:
        # Signed in with a token the lab accepts: the figures are lab-wide aggregates, no research's own.
        calls = lab_for(request)
        await asyncio.to_thread(calls.call, "ListResearch", lab_pb2.ListResearchRequest(page_size=1))
        urls = dict(metrics_urls or {})
        figures = await lab_metrics.read(urls) if urls else lab_metrics.LabMetrics()
        return page(request, "lab.html", m=figures, configured=bool(urls))

    @app.get("/new", response_class=HTMLResponse)
    async def new_form(request: Request) -> HTMLResponse:
        lab_for(request)
        return page(
            request, "new.html", error="", gates=list(GATES), untils=list(UNTIL), tasks=TASKS, form={}
        )

    @app.post("/researches")
    async def start(
        request: Request,
        csrf: Annotated[str, Form()],
        goal: Annotated[str, Form()],
        dataset: Annotated[str, Form()] = "",
        max_experiments: Annotated[int, Form(ge=0, le=1000)] = 0,
        gates: Annotated[str, Form()] = "off",
        until: Annotated[str, Form()] = "goal",
        template: Annotated[str, Form()] = "",
        target: Annotated[str, Form()] = "",
        task: Annotated[str, Form()] = "classification",
        data: Annotated[UploadFile | None, File()] = None,
    ) -> Response:
        check_csrf(request, csrf)
        calls = lab_for(request)
        form = {"goal": goal, "dataset": dataset, "max_experiments": max_experiments, "target": target}
        if gates not in GATES or until not in UNTIL or task not in TASKS:
            raise HTTPException(400, "gates, until or task has a value the form does not offer")
        user_dataset = None
        if data is not None and data.filename:
            content = await data.read(max_upload_bytes + 1)
            if len(content) > max_upload_bytes:
                raise HTTPException(413, f"the file is larger than {max_upload_bytes >> 20} MiB")
            if not data.filename.lower().endswith(".csv"):
                raise HTTPException(400, "upload a .csv file (a header row, one row per example)")
            # The token is checked by the lab before anything is stored under the name it carries.
            await asyncio.to_thread(calls.call, "ListResearch", lab_pb2.ListResearchRequest(page_size=1))
            source = await asyncio.to_thread(uploads, principal_name(calls), data.filename, content)
            user_dataset = research_pb2.UserDataset(source=source, target=target.strip(), task=task)
        started_request = start_request(
            goal,
            dataset=dataset.strip(),
            max_experiments=max_experiments,
            gates=gates,  # type: ignore[arg-type]
            until=until,  # type: ignore[arg-type]
            template=template,
            user_dataset=user_dataset,
        )
        try:
            started = await asyncio.to_thread(calls.call, "StartResearch", started_request)
        except HTTPException as exc:
            if exc.status_code != 400:
                raise
            context = {"gates": list(GATES), "untils": list(UNTIL), "tasks": TASKS, "form": form}
            response = page(request, "new.html", error=exc.detail, **context)
            response.status_code = 400
            return response
        return RedirectResponse(f"/researches/{started.id}", status_code=303)

    async def research_view(calls: LabCalls, research_id: str) -> tuple[Any, view.ResearchView]:
        research = await asyncio.to_thread(
            calls.call, "GetResearch", lab_pb2.GetResearchRequest(id=research_id)
        )
        events = await asyncio.to_thread(calls.events, research_id)
        return research, view.build(research, events)

    @app.get("/researches/{research_id}", response_class=HTMLResponse)
    async def research_page(request: Request, research_id: str) -> HTMLResponse:
        research, built = await research_view(lab_for(request), research_id)
        return page(request, "research.html", r=research, v=built)

    @app.get("/researches/{research_id}/live", response_class=HTMLResponse)
    async def live(request: Request, research_id: str) -> HTMLResponse:
        research, built = await research_view(lab_for(request), research_id)
        return page(request, "live.html", r=research, v=built)

    @app.get("/researches/{research_id}/stream")
    async def stream(request: Request, research_id: str) -> StreamingResponse:
        """Server-sent events: one per event of the research, from the browser's Last-Event-ID on (a
        reconnect misses nothing), with the event's type and time; the page then fetches /live."""
        calls = lab_for(request)
        await asyncio.to_thread(calls.call, "GetResearch", lab_pb2.GetResearchRequest(id=research_id))
        given = request.headers.get("last-event-id", "0") or "0"
        if not given.isdigit() or len(given) > 20:
            raise HTTPException(400, "Last-Event-ID must be an event's sequence number (a whole number)")
        after = int(given)
        return StreamingResponse(
            follow(calls, research_id, after, request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @app.post("/researches/{research_id}/approve")
    async def approve(
        request: Request,
        research_id: str,
        csrf: Annotated[str, Form()],
        answers: Annotated[str, Form()] = "",
        comment: Annotated[str, Form()] = "",
    ) -> Response:
        check_csrf(request, csrf)
        parsed = {}
        for line in answers.splitlines():
            if line.strip():
                key, equals, value = line.partition("=")
                if not equals:
                    raise HTTPException(400, f"an answer is key=value, got {line.strip()!r}")
                parsed[key.strip()] = value.strip()
        approve_request = lab_pb2.ApproveRequest(research_id=research_id, answers=parsed, comment=comment)
        return await act(request, research_id, "Approve", approve_request)

    @app.post("/researches/{research_id}/reject")
    async def reject(
        request: Request, research_id: str, csrf: Annotated[str, Form()], reason: Annotated[str, Form()] = ""
    ) -> Response:
        check_csrf(request, csrf)
        return await act(
            request, research_id, "Reject", lab_pb2.RejectRequest(research_id=research_id, reason=reason)
        )

    @app.post("/researches/{research_id}/cancel")
    async def cancel(
        request: Request, research_id: str, csrf: Annotated[str, Form()], reason: Annotated[str, Form()] = ""
    ) -> Response:
        check_csrf(request, csrf)
        cancel_request = lab_pb2.CancelResearchRequest(
            id=research_id, reason=reason or "cancelled from the dashboard"
        )
        return await act(request, research_id, "CancelResearch", cancel_request)

    async def act(request: Request, research_id: str, method: str, message: Any) -> Response:
        """A form's action on a research, then its page again."""
        await asyncio.to_thread(lab_for(request).call, method, message)
        return RedirectResponse(f"/researches/{research_id}", status_code=303)

    @app.get("/researches/{research_id}/report")
    async def report(request: Request, research_id: str) -> HTMLResponse:
        """The report's self-contained HTML, sandboxed: no script of it runs."""
        calls = lab_for(request)
        written = await asyncio.to_thread(calls.call, "GetReport", lab_pb2.GetReportRequest(id=research_id))
        return HTMLResponse(
            written.html,
            headers={"Content-Security-Policy": REPORT_POLICY},
        )

    @app.get("/researches/{research_id}/report.pdf")
    async def paper(request: Request, research_id: str) -> Response:
        """The research's paper, as a download; 404 saying why when it was not published."""
        calls = lab_for(request)
        ask = lab_pb2.GetReportRequest(id=research_id, pdf=True)
        written = await asyncio.to_thread(calls.call, "GetReport", ask)
        if not written.pdf:
            raise HTTPException(404, f"no paper: {written.paper_status or 'none was written'}")
        return Response(
            written.pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="report-{research_id}.pdf"'},
        )

    @app.get("/researches/{research_id}/files/{key:path}")
    async def artifact(request: Request, research_id: str, key: str) -> Response:
        """A stored file of the research (code, log, result, metrics), as plain text, for its owner."""
        calls = lab_for(request)
        await asyncio.to_thread(calls.call, "GetResearch", lab_pb2.GetResearchRequest(id=research_id))
        if not FILE_KEY.match(key) or any(part in ("", ".", "..") for part in key.split("/")):
            raise HTTPException(400, "not a file of a research")
        full = f"research/{research_id}/{key}"
        try:
            data = await asyncio.to_thread(artifacts.get, full)
        except (KeyError, FileNotFoundError, LookupError) as exc:
            raise HTTPException(404, f"no file {key}") from exc
        except ValueError as exc:  # a key the store refuses
            raise HTTPException(400, "not a file of a research") from exc
        return Response(
            data, media_type="text/plain; charset=utf-8", headers={"X-Content-Type-Options": "nosniff"}
        )

    @app.get("/static/{name}")
    async def static(name: str) -> Response:
        if name == "plotly.min.js":  # the charting library, from the installed plotly package
            import plotly

            return FileResponse(Path(plotly.__file__).parent / "package_data" / "plotly.min.js")
        if name not in ("dashboard.js", "dashboard.css"):
            raise HTTPException(404, "no such file")
        return FileResponse(Path(str(PACKAGE / "static" / name)))

    @app.middleware("http")
    async def same_origin_forms(request: Request, call_next: Callable[[Request], Any]) -> Response:
        """A form posted from another site is refused, sign-in included (login CSRF: a cross-site POST
        to /login would sign the victim in as the attacker). Browsers name a POST's origin; a client
        that sends none (curl) has no cookie to abuse."""
        origin = request.headers.get("origin")
        if request.method == "POST" and origin is not None:
            own = f"{request.url.scheme}://{request.headers.get('host', '')}"
            if origin != own:
                return Response(f"a form from {origin[:200]} is refused: post from {own}", status_code=403)
        response: Response = await call_next(request)
        return response

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if "Content-Security-Policy" not in response.headers:
            response.headers["Content-Security-Policy"] = (
                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                "img-src 'self' data:; frame-src 'self'; form-action 'self'; frame-ancestors 'self'"
            )
        return response

    return app
