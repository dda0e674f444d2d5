"""The fleet page's login over HTTP (no browser): the session cookie's attributes, expiry, logout that
ends the session on the server, CSRF protection of every state-changing call made on a session, the
redirect to the login form, wrong tokens and their throttle; Bearer API clients unchanged."""

from __future__ import annotations

import http.client
import json
import re
import ssl
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path

import pytest

from otelstack.opamp import webui
from otelstack.opamp.store import SqliteStore
from tests.integration.pki_helpers import LabPki
from tests.opamp.conftest import ADMIN_TOKEN, CONFIGS, RunningServer, free_port, settings, start_server
from tests.opamp.fleet_sim import Clock, Sim
from tests.opamp.test_fleet_errors import tls_server  # noqa: F401  (a fixture)


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: str
    cookies: SimpleCookie = field(default_factory=SimpleCookie)

    def json(self) -> object:
        return json.loads(self.body)


def call(
    port: int,
    method: str,
    path: str,
    *,
    cookie: str = "",
    headers: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    context: ssl.SSLContext | None = None,
) -> Answer:
    """One request, redirects not followed."""
    connection = (
        http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
        if context is not None
        else http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    )
    sent = dict(headers or {})
    if cookie:
        sent["Cookie"] = cookie
    body = None
    if form is not None:
        body = urllib.parse.urlencode(form)
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        answer = Answer(response.status, response.headers, response.read().decode())
    finally:
        connection.close()
    for value in answer.headers.get_all("Set-Cookie") or []:
        answer.cookies.load(value)
    return answer


def origin(port: int, scheme: str = "http") -> dict[str, str]:
    return {"Origin": f"{scheme}://127.0.0.1:{port}"}


def log_in(port: int) -> tuple[str, str]:
    """A session: its Cookie header and the CSRF token the page carries."""
    answer = call(port, "POST", "/login", form={"token": ADMIN_TOKEN}, headers=origin(port))
    assert answer.status == 303 and answer.headers["Location"] == "/", answer.body
    morsel = answer.cookies[webui.COOKIE]
    cookie = f"{webui.COOKIE}={morsel.value}"
    page = call(port, "GET", "/", cookie=cookie)
    assert page.status == 200
    found = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', page.body)
    assert found, "the page carries no CSRF token"
    return cookie, found.group(1)


@pytest.fixture()
def agent(server: RunningServer) -> str:
    """One registered agent's UID."""
    return str(server.call(lambda: Sim(server.fleet, 1, "dev", "lab").register().uid))


def pending_command(server: RunningServer, uid: str) -> str:
    record = server.call(lambda: server.fleet.store.get_agent(uid))
    return str(record.pending_command)


# --- redirect, login, cookie -------------------------------------------------------------------------


def test_a_browser_without_a_session_is_sent_to_the_login_form(server: RunningServer) -> None:
    answer = call(server.port, "GET", "/")
    assert (answer.status, answer.headers["Location"]) == (303, "/login")
    form = call(server.port, "GET", "/login")
    assert form.status == 200 and 'action="/login"' in form.body and 'name="token"' in form.body
    assert "frame-ancestors 'none'" in form.headers["Content-Security-Policy"]
    for path in ("/api/agents", "/metrics"):
        refused = call(server.port, "GET", path)
        assert refused.status == 401 and refused.json() == {"error": "unauthorized"}


def test_login_sets_an_httponly_strict_cookie_for_the_session_lifetime(server: RunningServer) -> None:
    answer = call(server.port, "POST", "/login", form={"token": ADMIN_TOKEN}, headers=origin(server.port))
    assert (answer.status, answer.headers["Location"]) == (303, "/")
    morsel = answer.cookies[webui.COOKIE]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Strict"
    assert morsel["path"] == "/"
    assert morsel["max-age"] == str(8 * 3600)
    # Plaintext (a lab): not Secure, or browsers would drop it on any host but loopback.
    assert not morsel["secure"]
    assert len(morsel.value) >= 40
    cookie = f"{webui.COOKIE}={morsel.value}"
    assert call(server.port, "GET", "/api/agents", cookie=cookie).status == 200
    assert call(server.port, "GET", "/login", cookie=cookie).headers["Location"] == "/"
    # The registry keeps a digest of the cookie, never its value.
    stored = server.call(lambda: server.fleet.store.get_meta(webui.SESSIONS_KEY))
    assert morsel.value not in stored and len(json.loads(stored)) == 1


def test_over_tls_the_cookie_is_secure_and_host_prefixed(tls_server: tuple[int, LabPki]) -> None:  # noqa: F811
    port, pki = tls_server
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.check_hostname = False
    answer = call(port, "POST", "/login", form={"token": ADMIN_TOKEN}, headers=origin(port, "https"), context=context)
    assert answer.status == 303, answer.body
    assert webui.COOKIE not in answer.cookies
    morsel = answer.cookies[webui.SECURE_COOKIE]
    assert morsel["secure"] is True and morsel["httponly"] is True and morsel["samesite"] == "Strict"
    assert morsel["path"] == "/" and not morsel["domain"]
    page = call(port, "GET", "/", cookie=f"{webui.SECURE_COOKIE}={morsel.value}", context=context)
    assert page.status == 200
    # The http:// origin of the same host and port is another origin.
    cookie, csrf = f"{webui.SECURE_COOKIE}={morsel.value}", re.findall(r'content="([0-9a-f]{64})"', page.body)[0]
    refused = call(
        port, "POST", "/logout", cookie=cookie, headers={**origin(port), "X-CSRF-Token": csrf}, context=context
    )
    assert refused.status == 403 and "cross-origin" in refused.json()["error"]  # type: ignore[index]


def test_a_wrong_token_gets_a_message_no_session_and_is_throttled(server: RunningServer) -> None:
    for _ in range(webui.LOGIN_FAILURES):
        wrong = call(server.port, "POST", "/login", form={"token": "not-the-admin-token"})
        assert wrong.status == 401
        assert "Wrong admin token" in wrong.body and 'name="token"' in wrong.body
        assert wrong.headers.get("Set-Cookie") is None
    throttled = call(server.port, "POST", "/login", form={"token": ADMIN_TOKEN})
    assert throttled.status == 429 and "Too many failed logins" in throttled.body
    assert 0 < int(throttled.headers["Retry-After"]) <= webui.LOGIN_WINDOW_S
    assert throttled.headers.get("Set-Cookie") is None
    assert server.call(lambda: server.fleet.store.get_meta(webui.SESSIONS_KEY)) is None


def test_the_throttle_forgets_failures_after_its_window_and_on_success() -> None:
    now = [0.0]
    throttle = webui.LoginThrottle(failures=3, window_s=60, clock=lambda: now[0])
    for _ in range(3):
        assert throttle.retry_after("10.0.0.1") == 0
        throttle.failed("10.0.0.1")
        now[0] += 10
    assert throttle.retry_after("10.0.0.1") == 30  # the first failure leaves the window at t=60
    assert throttle.retry_after("10.0.0.2") == 0, "another address is not throttled"
    now[0] = 60.5
    assert throttle.retry_after("10.0.0.1") == 0
    throttle.failed("10.0.0.1")
    throttle.succeeded("10.0.0.1")
    assert throttle._recent("10.0.0.1") == []


def test_a_login_from_another_origin_is_refused(server: RunningServer) -> None:
    answer = call(server.port, "POST", "/login", form={"token": ADMIN_TOKEN}, headers={"Origin": "https://evil.test"})
    assert answer.status == 403 and "cross-origin" in answer.body
    assert answer.headers.get("Set-Cookie") is None


# --- expiry, bounds, logout ---------------------------------------------------------------------------


def test_sessions_expire_and_are_bounded() -> None:
    clock = Clock()
    sessions = webui.Sessions(SqliteStore(":memory:"), lifetime_s=3600, limit=2, clock=clock)
    first, _ = sessions.create()
    clock.now += 10
    second, _ = sessions.create()
    assert sessions.find(first) is not None and sessions.find(second) is not None
    clock.now += 10
    third, session = sessions.create()
    assert session.expires == clock.now + 3600
    assert sessions.find(first) is None, "the oldest session must end when the limit is reached"
    assert sessions.find(second) is not None and sessions.find(third) is not None
    clock.now += 3600 - 5  # the second session's lifetime is over, not the third's
    assert sessions.find(second) is None and sessions.find(third) is not None
    clock.now += 10
    assert sessions.find(third) is None
    assert sessions.find("") is None and sessions.find("made-up") is None


def test_an_expired_session_is_sent_back_to_the_login_form(tmp_path: Path) -> None:
    running = start_server(settings(tmp_path, free_port(), page={"session_lifetime_s": 1}))
    try:
        cookie, _ = log_in(running.port)
        time.sleep(1.2)
        answer = call(running.port, "GET", "/", cookie=cookie)
        assert (answer.status, answer.headers["Location"]) == (303, "/login?ended")
        assert "Your session has ended" in call(running.port, "GET", "/login?ended").body
        assert call(running.port, "GET", "/api/agents", cookie=cookie).status == 401
    finally:
        running.stop()


def test_logout_ends_the_session_on_the_server(server: RunningServer) -> None:
    cookie, csrf = log_in(server.port)
    answer = call(server.port, "POST", "/logout", cookie=cookie, headers={**origin(server.port), "X-CSRF-Token": csrf})
    assert answer.status == 200 and answer.json() == {"logged_out": True}
    cleared = answer.cookies[webui.COOKIE]
    assert cleared.value == "" and cleared["max-age"] == "0"
    # The old cookie, replayed, opens nothing.
    assert call(server.port, "GET", "/", cookie=cookie).headers["Location"] == "/login?ended"
    assert call(server.port, "GET", "/api/agents", cookie=cookie).status == 401
    assert json.loads(server.call(lambda: server.fleet.store.get_meta(webui.SESSIONS_KEY))) == {}


def test_logout_needs_a_session(server: RunningServer) -> None:
    bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert call(server.port, "POST", "/logout", headers=bearer).status == 400
    assert call(server.port, "POST", "/logout").status == 401


# --- CSRF ---------------------------------------------------------------------------------------------


def test_a_change_on_a_session_needs_the_csrf_token_and_this_origin(server: RunningServer, agent: str) -> None:
    cookie, csrf = log_in(server.port)
    restart = f"/api/agents/{agent}/restart"
    refused = {
        "no CSRF token": origin(server.port),
        "a wrong CSRF token": {**origin(server.port), "X-CSRF-Token": "0" * 64},
        "another origin": {"Origin": "http://evil.test", "X-CSRF-Token": csrf},
        "no origin at all": {"X-CSRF-Token": csrf},
        "a cross-site fetch": {"Sec-Fetch-Site": "cross-site", "X-CSRF-Token": csrf},
    }
    for why, headers in refused.items():
        answer = call(server.port, "POST", restart, cookie=cookie, headers=headers)
        assert answer.status == 403, f"{why}: {answer.status} {answer.body}"
        assert pending_command(server, agent) == "", f"{why}: the restart was recorded"
    # Logout is a change too: refused without the token, the session still works.
    assert call(server.port, "POST", "/logout", cookie=cookie, headers=origin(server.port)).status == 403
    assert call(server.port, "GET", "/api/agents", cookie=cookie).status == 200

    same_site = call(
        server.port, "POST", restart, cookie=cookie, headers={"Sec-Fetch-Site": "same-origin", "X-CSRF-Token": csrf}
    )
    assert same_site.status == 202
    answer = call(server.port, "POST", restart, cookie=cookie, headers={**origin(server.port), "X-CSRF-Token": csrf})
    assert answer.status == 202 and pending_command(server, agent) == "restart"


def test_bearer_clients_need_no_csrf_token_and_a_cookie_does_not_rescue_a_wrong_token(
    server: RunningServer, agent: str
) -> None:
    cookie, _ = log_in(server.port)
    wrong = call(
        server.port, "POST", f"/api/agents/{agent}/restart", cookie=cookie, headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status == 401 and pending_command(server, agent) == ""
    answer = call(
        server.port, "POST", f"/api/agents/{agent}/restart", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    assert answer.status == 202 and pending_command(server, agent) == "restart"


def test_the_page_shell_is_locked_down(server: RunningServer) -> None:
    cookie, _ = log_in(server.port)
    page = call(server.port, "GET", "/", cookie=cookie)
    policy = page.headers["Content-Security-Policy"]
    nonce = re.search(r"script-src 'nonce-([^']+)'", policy)
    assert nonce and f'<script nonce="{nonce.group(1)}">' in page.body
    assert "connect-src 'self'" in policy and "default-src 'none'" in policy
    assert page.headers["Cache-Control"] == "no-store" and page.headers["X-Frame-Options"] == "DENY"


# --- what the page shows ----------------------------------------------------------------------------


@pytest.fixture()
def views() -> Iterator[tuple[Sim, Sim]]:
    from otelstack.opamp.fleet import Fleet, FleetSettings

    fleet = Fleet(SqliteStore(":memory:"), FleetSettings(configs_dir=CONFIGS), clock=Clock())
    yield Sim(fleet, 1, applies=False).register(), Sim(fleet, 2).register()


def test_an_offered_config_not_yet_applied_is_pending(views: tuple[Sim, Sim]) -> None:
    busy, done = views
    config = busy.view()["config"]
    assert config["pending"] is True and config["offered"] == config["desired"] and config["offered_at"] > 0
    assert config["compliant"] is False
    assert done.view()["config"]["pending"] is False and done.view()["config"]["compliant"] is True
    busy.applies = True
    busy.fleet.clock.now += 120  # type: ignore[attr-defined]  (an offer is repeated after offer_retry_s)
    busy.send()
    assert busy.view()["config"]["pending"] is False and busy.view()["config"]["compliant"] is True
