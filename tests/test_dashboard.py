"""The dashboard in a real browser (Debian's Chromium, headless, driven by Playwright) against the embedded
stack `airlab up` starts with the local model: sign in, start a research from the form, watch it change
without reloading, approve its plan, open its report; the pages pass axe's accessibility rules and can be
used from the keyboard; another user sees none of it. Screenshots go to build/screenshots/; the page's
load time and the time from an event to its appearance on the page are measured in the browser."""

import json
import os
import re
import shutil
import statistics
import subprocess
from pathlib import Path
from urllib.parse import urljoin

import pytest

from airlab.testing import airlab_cli

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "build" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def airlab(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return airlab_cli(workspace, *args, timeout=120)


@pytest.fixture
def lab(tmp_path):
    if not Path(CHROMIUM).exists():
        message = "no Chromium (apt-get install chromium; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    workspace = tmp_path / "ws"
    started = airlab(workspace, "up")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "dashboard https://127.0.0.1:" in started.stdout  # `airlab up` says where it is, over TLS
    state = json.loads((workspace / "run" / "stack.json").read_text())
    url = next(p["address"] for p in state["processes"] if p["name"] == "dashboard")
    token = (workspace / "run" / "auth" / "token").read_text().strip()
    yield workspace, url, token
    airlab(workspace, "down")


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def accessibility_problems(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
    ]


def wait_for_state(page, *states: str, timeout: float = 60_000) -> None:
    """Until the page's state badge shows one of `states` (null-safe: a form's reply may be loading)."""
    wanted = json.dumps(list(states))
    page.wait_for_function(
        f"{wanted}.some(s => (document.getElementById('state')?.textContent || '').includes(s))",
        timeout=timeout,
    )


def sign_in(page, url: str, token: str) -> None:
    page.goto(f"{url}/login")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{url}/")


def test_a_research_from_the_form_to_its_report_live_in_the_browser(lab, browser):
    workspace, url, token = lab
    SHOTS.mkdir(parents=True, exist_ok=True)
    # bypass_csp: the test's own probes (wait_for_function) are evaluated strings, which the dashboard's
    # Content-Security-Policy (checked below) forbids to the page.
    # The lab's own authority signed the dashboard's certificate (`airlab up` checks it against that
    # authority); the browser here does not know it.
    page = browser.new_page(
        viewport={"width": 1280, "height": 900}, bypass_csp=True, ignore_https_errors=True
    )
    problems: dict[str, list[str]] = {}

    page.goto(url + "/")  # not signed in: the sign-in page
    assert page.url.endswith("/login")
    problems["login"] = accessibility_problems(page)
    page.get_by_label("Token").fill("not-a-token")
    page.get_by_role("button", name="Sign in").click()
    assert "the lab refused this token" in page.inner_text("main")
    sign_in(page, url, token)
    load_ms = page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0];"
        " return n.loadEventEnd - n.startTime; }"
    )
    problems["researches"] = accessibility_problems(page)

    # Keyboard: the first Tab reaches the skip link, the next ones the navigation.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Skip to content"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "airlab"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Researches"

    page.get_by_role("link", name="New research").click()
    problems["new"] = accessibility_problems(page)
    page.get_by_label("Goal", exact=True).fill("beat the logistic-regression baseline on wine")
    page.get_by_label("Experiment budget").fill("6")
    page.get_by_label("Wait for a person").select_option("plan")
    page.screenshot(path=str(SHOTS / "dashboard-new-research.png"), full_page=True)
    page.get_by_role("button", name="Start").click()
    page.wait_for_url(f"{url}/researches/r*")
    research_id = page.url.rsplit("/", 1)[1]

    # The plan gate: the page shows it by itself (server-sent events), no reload.
    page.evaluate("window.__sameDocument = true")
    wait_for_state(page, "awaiting approval")
    assert page.evaluate("window.__sameDocument") is True
    assert "wine (classification), accuracy" in page.inner_text("#live")
    page.screenshot(path=str(SHOTS / "dashboard-plan-gate.png"), full_page=True)
    problems["research (plan gate)"] = accessibility_problems(page)
    with page.expect_navigation():
        page.get_by_role("button", name="Approve").click()

    # Then progress changes without reloading, up to the end.
    page.evaluate("window.__sameDocument = true")
    page.wait_for_function(
        "parseInt(document.getElementById('experiments')?.textContent || '0') >= 1", timeout=120_000
    )
    page.screenshot(path=str(SHOTS / "dashboard-running.png"), full_page=True)
    wait_for_state(page, "completed", "failed", timeout=600_000)
    assert page.evaluate("window.__sameDocument") is True
    live = page.evaluate("window.airlabLive")
    assert live["updates"] >= 3, live
    assert page.inner_text("#state") == "completed", page.inner_text("#live")
    experiments = page.locator("#h-experiments + table tbody tr")
    assert experiments.count() >= 3
    page.wait_for_selector("#chart .main-svg")  # the interactive chart drew its points
    # Every experiment is named by its idea's title (the portfolio's too), with its code's origin.
    assert "Hist gradient boosting" in page.inner_text("#h-experiments + table")
    assert "template registry" in page.inner_text("#h-ideas + table")
    # The report, in its frame.
    report = page.frame_locator("iframe.report").locator("body")
    assert "baseline" in report.inner_text(timeout=10_000).lower()
    page.screenshot(path=str(SHOTS / "dashboard-completed.png"), full_page=True)
    problems["research (completed)"] = accessibility_problems(page)
    # The paper, as a download.
    paper = page.request.get(urljoin(page.url, page.get_attribute("#paper-link", "href")))
    assert paper.status == 200 and paper.headers["content-type"] == "application/pdf"
    assert paper.body().startswith(b"%PDF")

    # The experiment's files and the report.
    with page.expect_navigation():
        page.locator("a", has_text="result").first.click()
    assert '"metrics"' in page.inner_text("body")
    page.go_back()
    with page.expect_navigation():
        page.get_by_role("link", name="Open the report").click()
    assert "baseline" in page.inner_text("body").lower()
    page.screenshot(path=str(SHOTS / "dashboard-report.png"), full_page=True)

    # The lab page: the whole lab's figures, read from every service's metrics endpoint.
    page.goto(f"{url}/")
    page.get_by_role("link", name="Lab", exact=True).click()
    page.wait_for_url(f"{url}/lab")
    assert page.locator("#no-metrics").count() == 0 and page.locator("#unreachable").count() == 0
    assert re.fullmatch(r"\d+ of [1-9]\d* busy.*", page.inner_text("#slots")), page.inner_text("#slots")
    assert "succeeded" in page.inner_text("#jobs") and "tokens in" in page.inner_text("#llm")
    page.screenshot(path=str(SHOTS / "dashboard-lab.png"), full_page=True)
    problems["lab"] = accessibility_problems(page)

    policy = page.request.get(f"{url}/researches/{research_id}").headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-eval" not in policy
    # A research on an uploaded CSV file: planned on it, then cancelled from its page.
    csv = workspace.parent / "my-measurements.csv"
    rows = "".join(f"{i % 7},{(i * 3) % 5},{'yes' if i % 2 else 'no'}\n" for i in range(60))
    csv.write_text("a,b,label\n" + rows)
    page.goto(f"{url}/new")
    page.get_by_label("Goal", exact=True).fill("get the best accuracy you can on my measurements")
    page.get_by_label("CSV file").set_input_files(str(csv))
    page.get_by_label("Label column").fill("label")
    page.get_by_label("Wait for a person").select_option("plan")
    page.get_by_role("button", name="Start").click()
    page.wait_for_url(f"{url}/researches/r*")
    wait_for_state(page, "awaiting approval")
    assert "my_measurements (classification)" in page.inner_text("#live")
    page.get_by_label("Reason to cancel").fill("only trying the form")
    with page.expect_navigation():
        page.get_by_role("button", name="Cancel research").click()
    wait_for_state(page, "cancelled", timeout=30_000)
    assert "only trying the form" in page.inner_text("#live")
    # Forms without the session's CSRF token change nothing.
    forged = page.request.post(f"{url}/researches/{research_id}/cancel", form={"csrf": "forged"})
    assert forged.status == 403
    # Nor does a form from another site, sign-in included (login CSRF).
    elsewhere = {"Origin": "https://elsewhere.example"}
    cross_login = page.request.post(f"{url}/login", form={"token": token}, headers=elsewhere)
    assert cross_login.status == 403 and "set-cookie" not in cross_login.headers
    # Odd requests are refused, not errors of the server.
    odd_file = page.request.get(f"{url}/researches/{research_id}/files/code//etc/passwd")
    assert odd_file.status == 400
    odd_resume = page.request.get(f"{url}/researches/{research_id}/stream", headers={"Last-Event-ID": "abc"})
    assert odd_resume.status == 400

    # Another user of the lab sees none of it.
    mallory = airlab(workspace, "token", "mallory")
    assert mallory.returncode == 0, mallory.stderr
    other = browser.new_page(ignore_https_errors=True)
    sign_in(other, url, mallory.stdout.strip())
    assert research_id not in other.content() and "No research yet" in other.inner_text("main")
    other.goto(f"{url}/researches/{research_id}")
    assert "Error 403" in other.inner_text("main")
    assert other.request.get(f"{url}/researches/{research_id}/stream").status == 403

    latencies = live["latenciesMs"]
    print(
        f"\ndashboard: list page loaded in {load_ms:.0f} ms; event -> on the page: median "
        f"{statistics.median(latencies):.0f} ms, max {max(latencies):.0f} ms over {len(latencies)} events; "
        f"screenshots: {sorted(p.name for p in SHOTS.glob('dashboard-*.png'))}"
    )
    assert all(not found for found in problems.values()), json.dumps(problems, indent=1)
