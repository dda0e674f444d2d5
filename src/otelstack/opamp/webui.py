"""The fleet page and how a browser reaches it: a login form that exchanges the admin token for a session
cookie, server-side sessions, logout, CSRF protection, and the admin authentication of every path.

- API clients (`otelstack fleet`, curl) send ``Authorization: Bearer <admin token>`` as before; such a
  request is judged by its token alone, with or without a cookie, and needs no CSRF token (a page of
  another site cannot send that header without a CORS preflight, which this server never grants).
- A browser logs in at ``/login`` (form field ``token``). The answer sets a session cookie: HttpOnly,
  SameSite=Strict, Path=/, Max-Age of the session's lifetime, and Secure (then named with the
  ``__Host-`` prefix) when the server serves TLS. A plaintext server (``allow_insecure``, a lab) sets
  it without Secure: browsers drop a Secure cookie set over ``http://`` to any host but loopback, so the
  login would never stick, and the admin token itself crosses that connection in clear anyway.
- Sessions live in the registry (one metadata entry), so they survive a restart and every replica
  sharing a PostgreSQL registry knows them. The registry keeps the SHA-256 of each cookie value, never
  the value; a session ends at its fixed lifetime (``page.session_lifetime_s``) or at logout; at most
  ``page.max_sessions`` exist (a login beyond it ends the oldest).
- A state-changing request (anything but GET/HEAD/OPTIONS) on a session must come from this server's
  origin (``Origin``, else ``Sec-Fetch-Site: same-origin``) and carry the session's CSRF token in
  ``X-CSRF-Token``; the page has it (derived from the cookie value, so the registry holds no secret).
  Otherwise it is refused with 403 and changes nothing.
- A wrong token at ``/login`` gets the form again with a message, no cookie; the comparison is constant
  time, and after LOGIN_FAILURES failures from one address within LOGIN_WINDOW_S that address gets 429
  until the window has passed.
- ``GET /`` without a session or token redirects to ``/login``; the API and /metrics answer 401.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from otelstack.opamp.store import FleetStore

log = logging.getLogger("otelstack.opamp")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
COOKIE = "otelstack_session"
SECURE_COOKIE = "__Host-otelstack_session"  # Secure, Path=/, no Domain: browsers enforce all three
CSRF_HEADER = "X-CSRF-Token"
SESSIONS_KEY = "page_sessions"  # registry metadata: {sha256 of cookie value: {"created", "expires"}}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_PATHS = frozenset({"/v1/opamp", "/healthz", "/login"})
LOGIN_FAILURES = 5
LOGIN_WINDOW_S = 60.0
# Addresses whose failed logins are remembered at once (the oldest are forgotten beyond it).
THROTTLED_ADDRESSES = 10_000
PAGE = Path(__file__).with_name("page.html")
LOGIN_PAGE = Path(__file__).with_name("login.html")


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else ""


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison (of the UTF-8 bytes: any text may be given)."""
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True)
class PageSession:
    digest: str  # SHA-256 of the cookie value: the session's key in the registry
    csrf: str
    expires: float


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _csrf(value: str) -> str:
    return hashlib.sha256(b"csrf\0" + value.encode()).hexdigest()


class Sessions:
    """Browser sessions kept in the registry's metadata, bounded in number and lifetime."""

    def __init__(
        self, store: FleetStore, lifetime_s: float, limit: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.store, self.lifetime_s, self.limit, self.clock = store, lifetime_s, limit, clock

    def _live(self) -> dict[str, dict[str, float]]:
        raw = self.store.get_meta(SESSIONS_KEY)
        try:
            stored = json.loads(raw) if raw else {}
        except ValueError:
            log.warning("page sessions in the registry are unreadable; every browser logs in again")
            stored = {}
        now = self.clock()
        if not isinstance(stored, dict):
            return {}
        return {
            str(digest): entry
            for digest, entry in stored.items()
            if isinstance(entry, dict) and isinstance(entry.get("expires"), int | float) and entry["expires"] > now
        }

    def _save(self, sessions: dict[str, dict[str, float]]) -> None:
        self.store.put_meta(SESSIONS_KEY, json.dumps(sessions, sort_keys=True))

    def create(self) -> tuple[str, PageSession]:
        """A new session: the cookie value (given to the browser only) and the session."""
        sessions = self._live()
        oldest_first = sorted(sessions, key=lambda digest: sessions[digest].get("created", 0.0))
        for digest in oldest_first[: max(0, len(sessions) - self.limit + 1)]:
            del sessions[digest]
            log.info("page session ended: %d sessions at once is the limit (page.max_sessions)", self.limit)
        value = secrets.token_urlsafe(32)
        now = self.clock()
        sessions[_digest(value)] = {"created": now, "expires": now + self.lifetime_s}
        self._save(sessions)
        return value, PageSession(_digest(value), _csrf(value), now + self.lifetime_s)

    def find(self, value: str) -> PageSession | None:
        """The live session of a cookie value, or None (unknown, ended or expired)."""
        if not value:
            return None
        entry = self._live().get(_digest(value))
        return None if entry is None else PageSession(_digest(value), _csrf(value), float(entry["expires"]))

    def end(self, digest: str) -> bool:
        sessions = self._live()
        found = sessions.pop(digest, None) is not None
        self._save(sessions)
        return found


class LoginThrottle:
    """Failed logins per client address within a sliding window."""

    def __init__(
        self,
        failures: int = LOGIN_FAILURES,
        window_s: float = LOGIN_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures, self.window_s, self.clock = failures, window_s, clock
        self._failed: dict[str, list[float]] = {}

    def _recent(self, address: str) -> list[float]:
        now = self.clock()
        recent = [t for t in self._failed.get(address, []) if now - t < self.window_s]
        if recent:
            self._failed[address] = recent
        else:
            self._failed.pop(address, None)
        return recent

    def retry_after(self, address: str) -> float:
        """Seconds until this address may try again (0: now)."""
        recent = self._recent(address)
        if len(recent) < self.failures:
            return 0.0
        return max(0.0, recent[-self.failures] + self.window_s - self.clock())

    def failed(self, address: str) -> None:
        self._failed[address] = [*self._recent(address), self.clock()]
        while len(self._failed) > THROTTLED_ADDRESSES:
            del self._failed[next(iter(self._failed))]

    def succeeded(self, address: str) -> None:
        self._failed.pop(address, None)


@dataclass
class WebLogin:
    admin_token: str
    sessions: Sessions
    # The server serves TLS: the cookie is Secure (and __Host- prefixed).
    secure: bool
    throttle: LoginThrottle

    @property
    def cookie(self) -> str:
        return SECURE_COOKIE if self.secure else COOKIE

    def session_of(self, request: web.Request) -> PageSession | None:
        return self.sessions.find(request.cookies.get(self.cookie, ""))


WEB: web.AppKey[WebLogin] = web.AppKey("web_login", WebLogin)
SESSION: web.RequestKey[PageSession] = web.RequestKey("page_session", PageSession)


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def _unauthorized() -> web.Response:
    return _error(401, "unauthorized", **{"WWW-Authenticate": "Bearer"})


def _own_origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def origin_problem(request: web.Request, required: bool) -> str | None:
    """Why a state-changing browser request does not come from this server's own page, or None. Without
    an Origin header, ``Sec-Fetch-Site: same-origin`` is accepted; ``required``: one of them must say so."""
    origin = request.headers.get("Origin")
    if origin is not None:
        if origin != _own_origin(request):
            return f"cross-origin request refused: Origin {origin[:200]!r} is not this server ({_own_origin(request)})"
        return None
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site != "same-origin":
        return f"cross-site request refused (Sec-Fetch-Site: {site[:40]})"
    if required and site is None:
        return "request refused: a browser session's changes must come from this server's page (no Origin header)"
    return None


def csrf_problem(request: web.Request, session: PageSession) -> str | None:
    """Why a state-changing request on a browser session is refused (CSRF protection), or None."""
    problem = origin_problem(request, required=True)
    if problem is not None:
        return problem
    if not same_secret(request.headers.get(CSRF_HEADER, ""), session.csrf):
        return f"missing or wrong {CSRF_HEADER} header (CSRF protection): reload the page and try again"
    return None


@web.middleware
async def admin_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every path but the public ones needs the admin token (Bearer) or a browser session; a session's
    state-changing requests need its CSRF token and this server's origin."""
    if request.path in PUBLIC_PATHS:
        return await handler(request)
    login = request.app[WEB]
    if "Authorization" in request.headers:
        return await handler(request) if same_secret(bearer_token(request), login.admin_token) else _unauthorized()
    session = login.session_of(request)
    if session is None:
        if request.method in ("GET", "HEAD") and request.path == "/":
            ended = "?ended" if request.cookies.get(login.cookie) else ""
            return _see_other(f"/login{ended}")
        return _unauthorized()
    if request.method not in SAFE_METHODS:
        problem = csrf_problem(request, session)
        if problem is not None:
            log.warning("%s %s from %s refused: %s", request.method, request.path, request.remote or "?", problem)
            return _error(403, problem)
    request[SESSION] = session
    return await handler(request)


def _html(template: Path, status: int = 200, *, script: bool = False, **values: str) -> web.Response:
    """A page from its template: ``{{name}}`` replaced by the HTML-escaped values, ``{{nonce}}`` by a fresh
    nonce that the Content-Security-Policy requires of its inline style (and script)."""
    nonce = secrets.token_urlsafe(16)
    text = template.read_text(encoding="utf-8").replace("{{nonce}}", nonce)
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", html.escape(value))
    policy = (
        f"default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        + (f"; script-src 'nonce-{nonce}'; connect-src 'self'" if script else "")
    )
    return web.Response(
        text=text,
        status=status,
        content_type="text/html",
        headers={
            "Content-Security-Policy": policy,
            "Cache-Control": "no-store",
            "Referrer-Policy": "same-origin",  # no-referrer would make form posts say Origin: null
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
        },
    )


def _login_form(message: str = "", status: int = 200, **headers: str) -> web.Response:
    response = _html(LOGIN_PAGE, status, message=message)
    response.headers.update(headers)
    return response


async def login_page(request: web.Request) -> web.StreamResponse:
    login = request.app[WEB]
    if login.session_of(request) is not None:
        return _see_other("/")
    ended = "ended" in request.query
    return _login_form("Your session has ended (logged out or expired). Log in again." if ended else "")


async def log_in(request: web.Request) -> web.StreamResponse:
    login = request.app[WEB]
    address = request.remote or "?"
    problem = origin_problem(request, required=False)
    if problem is not None:
        log.warning("page login from %s refused: %s", address, problem)
        return _login_form(problem, 403)
    wait = login.throttle.retry_after(address)
    if wait > 0:
        return _login_form(
            f"Too many failed logins from your address: try again in {wait:.0f} s.",
            429,
            **{"Retry-After": f"{wait:.0f}"},
        )
    form = await request.post()
    token = form.get("token")
    if not isinstance(token, str) or not same_secret(token.strip(), login.admin_token):
        login.throttle.failed(address)
        log.warning("page login from %s refused: wrong admin token", address)
        return _login_form("Wrong admin token: nothing was logged in. Paste the server's admin token.", 401)
    login.throttle.succeeded(address)
    value, session = login.sessions.create()
    log.info("page login from %s: session %s… until %s", address, session.digest[:8], _utc(session.expires))
    response = _see_other("/")
    response.set_cookie(
        login.cookie,
        value,
        max_age=int(login.sessions.lifetime_s),
        path="/",
        secure=login.secure,
        httponly=True,
        samesite="Strict",
    )
    return response


async def log_out(request: web.Request) -> web.StreamResponse:
    login = request.app[WEB]
    session = request.get(SESSION)
    if session is None:
        return _error(400, "no browser session to end: a Bearer token is not a session (log out is for the page)")
    login.sessions.end(session.digest)
    log.info("page logout from %s: session %s… ended", request.remote or "?", session.digest[:8])
    response = web.json_response({"logged_out": True}, headers={"Cache-Control": "no-store"})
    response.del_cookie(login.cookie, path="/", secure=login.secure, httponly=True, samesite="Strict")
    return response


async def page(request: web.Request) -> web.Response:
    """The fleet page: a shell whose script reads /api/agents and /api/rollouts (with the session cookie)."""
    session = request.get(SESSION)
    return _html(PAGE, script=True, csrf_token=session.csrf if session is not None else "")


def _utc(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp))


def setup(app: web.Application, web_login: WebLogin) -> None:
    """The login routes and the page on ``app`` (whose middlewares include admin_auth)."""
    app[WEB] = web_login
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", log_in)
    app.router.add_post("/logout", log_out)
    app.router.add_get("/", page)
