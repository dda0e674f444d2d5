"""The fleet page in a real browser: Debian's chromium, headless, driven by Playwright (never a browser
Playwright downloads). Log in (a wrong token first), read the counts, filter, open a failed agent's
reason, see rollouts with their frozen progress, fit in 800 px, change something from the page, have a
change without the CSRF token refused, log out. A screenshot of each state is kept under
.cache/test-artefacts/fleet-page/ (the path is printed)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry._opamp.proto import opamp_pb2 as pb
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

from otelstack.opamp import webui
from tests.opamp.conftest import ADMIN_TOKEN, ROOT, RunningServer
from tests.opamp.fleet_sim import Sim
from tests.opamp.test_scoped_baselines import run

CHROMIUM = shutil.which("chromium")
ARTEFACTS = ROOT / ".cache" / "test-artefacts" / "fleet-page"
# Playwright adds --headless (headless=True) and a fresh --user-data-dir (a persistent context in tmp_path).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOSTILE_HOST = 'x"><img src=x onerror="window.pwned=1">'

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's chromium is not installed (apt-get install chromium; `make test` installs it through "
    "tests/lab/setup.sh)",
)


def unhealthy() -> pb.ComponentHealth:
    health = pb.ComponentHealth(healthy=False, status="StatusRecoverableError", last_error="an exporter fails")
    health.component_health_map["exporter:otlp_grpc/gateway"].CopyFrom(
        pb.ComponentHealth(healthy=False, status="StatusRecoverableError", last_error="gateway: connection refused")
    )
    return health


def populate(server: RunningServer) -> dict[str, str]:
    """Seven agents (dev ×3, prod ×4) in every state the page shows, a succeeded and a failed rollout;
    host name -> instance UID. Runs on the server's loop (the fleet is not thread-safe)."""

    def build() -> dict[str, str]:
        fleet = server.fleet

        def sim(n: int, environment: str, region: str, host: str, **options: Any) -> Sim:
            attributes = {"host.name": host, "service.version": "0.159.0"}
            return Sim(fleet, n, environment, region, attributes=attributes, **options).register()

        web = [sim(1, "dev", "lab", "web-01"), sim(2, "dev", "lab", "web-02")]
        odd = sim(3, "dev", "lab", HOSTILE_HOST)
        api = [
            sim(11, "prod", "us-east-1", "api-01"),
            sim(12, "prod", "us-east-1", "api-02", breaks_on=("/srv/broken",)),
        ]
        pending = sim(21, "prod", "eu-west-1", "db-01", applies=False)
        sick = sim(22, "prod", "eu-west-1", "db-02")
        sick.send(health=unhealthy())
        # A succeeded rollout on dev; then api-02 gets overrides its collector refuses, and the emergency
        # rollout on us-east-1 fails on it after its canary (api-01) applied it: 1 of 2 agents.
        dev = fleet.rollouts.start("config", {"environment": "dev"}, {"variant": "emergency"})
        assert run(fleet, dev, [*web, odd]).state == "succeeded"
        fleet.set_overrides(api[1].uid, {"tiers": {"agent": {"log_include+": ["/srv/broken/*.log"]}}})
        api[1].send()
        failed = fleet.rollouts.start(
            "config", {"environment": "prod", "region": "us-east-1"}, {"variant": "emergency"}, canary=1, waves=[100]
        )
        assert run(fleet, failed, api).state == "failed"
        for _ in range(2):  # the canary goes back to its baseline
            api[0].send()
        return {s.attributes["host.name"]: s.uid for s in [*web, odd, *api, pending, sick]}

    return dict(server.call(build))


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture()
def shots(capsys: pytest.CaptureFixture[str]) -> Iterator[Path]:
    for old in ARTEFACTS.glob("*.png") if ARTEFACTS.is_dir() else []:
        old.unlink()
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    yield ARTEFACTS
    with capsys.disabled():
        print(f"\nfleet page screenshots: {ARTEFACTS}/ ({len(list(ARTEFACTS.glob('*.png')))} files)")


def snap(page: Page, shots: Path, name: str) -> None:
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def agent_row(page: Page, uid: str) -> Any:
    return page.locator(f'#agents tr.agent[data-uid="{uid}"]')


def expand(page: Page, uid: str) -> Any:
    """Open an agent's row; its detail row."""
    agent_row(page, uid).locator("button.expand").click()
    return page.locator(f'#agents tr.detail[data-uid="{uid}"]')


def count(page: Page, key: str) -> str:
    return page.locator(f'[data-count="{key}"] .n').inner_text()


def test_the_fleet_page_in_chromium(server: RunningServer, browser: BrowserContext, shots: Path) -> None:
    uids = populate(server)
    page = browser.new_page()
    page.on("dialog", lambda dialog: dialog.accept())

    # Not logged in: the page sends the browser to the login form.
    page.goto(server.http_url + "/")
    expect(page).to_have_url(server.http_url + "/login")
    snap(page, shots, "01-login-form")

    # A wrong token: a clear message, no cookie.
    page.fill("#token", "not-the-admin-token")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("Wrong admin token")
    assert browser.cookies() == []
    snap(page, shots, "02-wrong-token")

    page.fill("#token", ADMIN_TOKEN)
    page.click("button[type=submit]")
    expect(page).to_have_url(server.http_url + "/")
    expect(page.locator("#updated")).to_have_text(re.compile(r"^updated \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$"))
    (cookie,) = browser.cookies()
    assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == (webui.COOKIE, True, "Strict")

    # The counts at the top.
    assert count(page, "total") == "7"
    expected = {"healthy": "5", "unhealthy": "1", "config_failed": "1", "disconnected": "0", "pending": "1"}
    assert {status: count(page, f"status:{status}") for status in expected} == expected
    assert (count(page, "env:dev"), count(page, "env:prod")) == ("3", "4")
    expect(agent_row(page, uids["db-01"]).locator("td").nth(5)).to_have_text("pending")
    expect(agent_row(page, uids["api-01"]).locator("td").nth(4)).to_have_text("0.159.0")
    # An agent's attributes are shown as text, never run as HTML.
    expect(agent_row(page, uids[HOSTILE_HOST]).locator("button.expand")).to_have_text(HOSTILE_HOST)
    assert page.evaluate("window.pwned") is None
    snap(page, shots, "03-fleet")

    # Filters: by status, by environment and text.
    page.select_option("#filter-status", "config_failed")
    expect(page.locator("#agents tr.agent")).to_have_count(1)
    expect(agent_row(page, uids["api-02"])).to_have_count(1)
    snap(page, shots, "04-filter-config-failed")
    page.select_option("#filter-status", "")
    page.select_option("#filter-env", "dev")
    page.fill("#filter-text", "web")
    expect(page.locator("#agents tr.agent")).to_have_count(2)
    expect(page.locator("#shown")).to_have_text("2 of 7")
    snap(page, shots, "05-filter-dev-web")
    page.select_option("#filter-env", "")
    page.fill("#filter-text", "")
    expect(page.locator("#agents tr.agent")).to_have_count(7)

    # A failed agent's reason, and an unhealthy one's.
    expect(expand(page, uids["api-02"]).locator(".reasons")).to_contain_text("failed to apply: collector refused it")
    expect(expand(page, uids["db-02"]).locator(".reasons")).to_contain_text(
        "exporter:otlp_grpc/gateway: gateway: connection refused"
    )
    snap(page, shots, "06-failed-and-unhealthy-reasons")

    # Rollouts: selector, variant, waves, start time, and the failed one's progress as it ended.
    failed = page.locator('#rollouts tr[data-state="failed"]')
    expect(failed).to_contain_text("environment=prod, region=us-east-1")
    expect(failed).to_contain_text("variant emergency")
    expect(failed).to_contain_text("canary 1 → 1")
    expect(failed.locator("td.progress")).to_have_text(" 50 %")
    expect(failed.locator("td").nth(5)).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))
    expect(page.locator('#rollouts tr[data-state="succeeded"] td.progress')).to_have_text(" 100 %")
    page.locator("#rollouts").scroll_into_view_if_needed()
    snap(page, shots, "07-rollouts")

    # 800 px wide: nothing sticks out of the window.
    page.set_viewport_size({"width": 800, "height": 1000})
    page.reload()
    expect(page.locator("#updated")).to_contain_text("updated")
    assert page.evaluate("document.documentElement.scrollWidth") <= 800
    for table in ("#agents", "#rollouts"):  # every column, progress included, without scrolling sideways
        box = page.evaluate(
            f"(e => [e.scrollWidth, e.clientWidth])(document.querySelector('{table}').closest('.scroll'))"
        )
        assert box[0] <= box[1] <= 800, (table, box)
    snap(page, shots, "08-800px")

    # A change without the CSRF token is refused and changes nothing; the page's own button works.
    refused = page.evaluate(
        """async (uid) => {
            const r = await fetch(`/api/agents/${uid}/restart`, {method: "POST", credentials: "same-origin"});
            return [r.status, (await r.json()).error];
        }""",
        uids["web-01"],
    )
    assert refused[0] == 403 and "X-CSRF-Token" in refused[1]
    pending_command = server.call(lambda: server.fleet.store.get_agent(uids["web-01"]).pending_command)
    assert pending_command == ""
    detail = expand(page, uids["web-01"])
    with page.expect_response(lambda response: response.url.endswith("/restart")) as answered:
        detail.locator('[data-action="restart"]').click()
    assert answered.value.status == 202
    assert server.call(lambda: server.fleet.store.get_agent(uids["web-01"]).pending_command) == "restart"

    # Log out: back at the login form; the old cookie opens nothing any more.
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(server.http_url + "/login")
    assert browser.cookies() == []
    snap(page, shots, "09-logged-out")
    page.goto(server.http_url + "/")
    expect(page).to_have_url(server.http_url + "/login")
    browser.add_cookies([cookie])  # replayed
    page.goto(server.http_url + "/")
    expect(page).to_have_url(server.http_url + "/login?ended")
    expect(page.get_by_role("alert")).to_contain_text("Your session has ended")
    assert page.request.get(server.http_url + "/api/agents").status == 401
    snap(page, shots, "10-old-cookie-refused")
