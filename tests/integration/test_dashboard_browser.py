"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright).

One ``ktrdr serve`` for the module, with a comparison and a few runs in its
ledger and a stage change in its audit log. The page must load with no
console error (a CSP violation is one), show the stage and the gate verdict
the API gives, show a training started over the API with a bar that
advances, refuse a wrong token and cancel with the right one. Screenshots go
to ``.artifacts/screenshots/`` (git-ignored) for a developer to look at.

Without Chromium or Playwright the tests skip with the reason; under CI
(``CI`` set) they fail instead: ``scripts/test`` installs both.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from integration_support import SHORT, STRATEGY
from test_service import AUTH, TOKEN, Server

CHROMIUM = os.environ.get("KTRDR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".artifacts" / "screenshots"
# long enough to watch the bar move and to cancel it: small batches, many epochs
LONG = {
    "strategy": STRATEGY,
    "user_id": "dash-user",
    "overrides": {"epochs": 300, "seed": 3, "batch_size": 16},
}
WAIT_MS = 120_000  # generous: the machine may be loaded


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


def _require_browser() -> None:
    why = _missing()
    if why is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{why}: CI must run the browser tests (scripts/test installs them)")
    pytest.skip(why)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    _require_browser()
    home = tmp_path_factory.mktemp("dash") / "home"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KTRDR_", "USE_UNIFIED", "UNIFIED_TRAINING", "ROLLBACK"))
    }
    env.update(KTRDR_HOME=str(home), OMP_NUM_THREADS="1")
    # a real comparison, so the comparisons card has curves to plot
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ktrdr_core.cli.main",
            "compare",
            STRATEGY,
            "--epochs",
            "2",
            "--start",
            SHORT["start_date"],
            "--end",
            SHORT["end_date"],
            "--no-warm-up",
            "--report",
            str(home.parent / "report"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    srv = Server(home, "--max-concurrent", "2")
    with httpx.Client(base_url=srv.url, timeout=10) as c:
        assert (
            c.put(
                "/api/v1/rollout", json={"stage": "canary", "reason": "dashboard test"}, headers=AUTH
            ).status_code
            == 200
        )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser(server: Server) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Page:
    """A page of the dashboard that records every console error and uncaught exception."""

    def __init__(self, browser: Any, url: str) -> None:
        self.errors: list[str] = []
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.page.set_default_timeout(WAIT_MS)
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.response = self.page.goto(url + "/")
        self.page.wait_for_selector("body[data-loaded='true']")

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c
        for item in c.get("/api/v1/trainings").json()["trainings"]:
            if item["status"] in ("queued", "running"):
                c.post(f"/api/v1/trainings/{item['id']}/cancel")


def _wait(predicate: Any, what: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_page_shows_the_stage_and_the_gate_with_no_console_error(
    server: Server, browser: Any, client: httpx.Client
) -> None:
    gate = client.get("/dashboard/api/gate").json()
    view = Page(browser, server.url)
    page = view.page
    csp = view.response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.inner_text("#headline-stage").startswith(
        "Stage canary: 10 % of users get the candidate unified"
    )
    assert gate["verdict"] in page.inner_text("#headline-gate")
    assert "expanded" in page.inner_text("#headline-gate")
    names = page.locator("#gate tbody tr td:first-child").all_inner_texts()
    assert names == [c["name"] for c in gate["criteria"]]
    # where each setting comes from, the audit entry of the stage change, the comparison's curves
    assert "rollout file" in page.inner_text("#rollout")
    assert "dashboard test" in page.inner_text("#audit")
    page.wait_for_selector("#comparisons details[open] svg.chart path.series")
    assert "legacy vs unified" in page.inner_text("#comparisons")
    # the ledger's runs (the comparison's two) in the table and in the plots
    assert page.locator("#runs tbody tr").count() >= 2
    assert page.locator("#plots figure").count() == 4
    view.shot("dashboard")
    view.context.close()
    assert view.errors == []


def test_a_training_appears_advances_and_is_cancelled_only_with_the_token(
    server: Server, browser: Any, client: httpx.Client
) -> None:
    view = Page(browser, server.url)
    page = view.page
    started = client.post("/api/v1/trainings", json=LONG)
    assert started.status_code == 202, started.text
    training_id = started.json()["id"]
    card = page.locator(f".training[data-id='{training_id}']")
    card.wait_for()
    assert "dash-user" in card.inner_text()
    bar = card.locator("progress")

    def value() -> float:
        return float(bar.evaluate("b => b.hasAttribute('value') ? b.value : -1"))

    first = _wait(lambda: value() > 0 and value(), "a first progress update in the bar")
    _wait(lambda: value() > first, "the bar to advance")
    page.wait_for_function("() => document.querySelector('#headline-live').textContent.includes('running')")
    view.shot("training-running")

    # a wrong token: refused, and the training goes on
    card.get_by_role("button", name="Cancel").click()
    page.fill("#token-input", TOKEN + "-wrong")
    page.click("#token-ok")
    note = card.locator(".note")
    page.wait_for_function("n => n.textContent.includes('wrong API token')", arg=note.element_handle())
    view.shot("wrong-token")
    assert client.get(f"/api/v1/trainings/{training_id}").json()["status"] == "running"

    # the right one: cancelled
    card.get_by_role("button", name="Cancel").click()
    page.fill("#token-input", TOKEN)
    page.click("#token-ok")
    _wait(
        lambda: client.get(f"/api/v1/trainings/{training_id}").json()["status"] == "cancelled",
        "the training to be cancelled",
    )
    card.locator(".badge", has_text="cancelled").wait_for()
    page.wait_for_function("n => n.textContent.startsWith('ended cancelled')", arg=note.element_handle())
    view.shot("cancelled")
    view.context.close()
    # the browser logs the refused request itself (401); nothing else may go wrong
    assert [e for e in view.errors if "status of 401" not in e] == []


def test_a_malformed_gate_setting_is_said_on_the_page_not_hidden(server: Server, browser: Any) -> None:
    from ktrdr_core.rollout.store import RolloutStore

    store = RolloutStore(server.home)
    store.change("edit", lambda _d: {"gates": {"min_runs": -3}}, reason="a typo")
    try:
        view = Page(browser, server.url)
        page = view.page
        page.wait_for_function(
            "() => document.querySelector('#headline-gate').textContent.includes('cannot judge the gate')"
        )
        assert "min_runs" in page.inner_text("#headline-gate")
        assert page.inner_text("#headline-stage").startswith("Stage canary")  # the rest still shows
        view.shot("gate-unavailable")
        view.context.close()
        assert [e for e in view.errors if "status of 503" not in e] == []
    finally:
        store.change("edit", lambda _d: {"gates": None}, reason="fixed")
