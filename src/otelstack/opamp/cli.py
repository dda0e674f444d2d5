"""`otelstack opamp serve` and `otelstack fleet …` (list, show, restart, rollout start/status/abort).

The fleet commands talk to a running server's REST API: --server (or OTELSTACK_OPAMP_URL) and the
admin token from OTELSTACK_OPAMP_ADMIN_TOKEN (never a command-line argument, which `ps` would show).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import logging
import os
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from otelstack.errors import OtelstackError

ADMIN_TOKEN_ENV = "OTELSTACK_OPAMP_ADMIN_TOKEN"
URL_ENV = "OTELSTACK_OPAMP_URL"


def cmd_serve(args: argparse.Namespace) -> int:
    from otelstack.opamp.server import serve
    from otelstack.opamp.settings import load_settings

    settings = load_settings(args.settings)
    if args.check:
        from otelstack.opamp.server import check

        for line in check(settings):
            print(line)
        return 0
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(settings)
    return 0


# The agent fields a rollout selector matches (otelstack.opamp.rollout.matches); any other key is looked up
# in the attributes the agents report (service.instance.id, cloud.region, …).
SELECTOR_FIELDS = ("environment", "region", "profile")
SELECTOR_KEYS_HELP = f"{', '.join(SELECTOR_FIELDS)}, or an attribute the agents report (such as service.instance.id)"
DEFAULT_SERVER = "https://localhost:4320"
OPAMP_PATH = "/v1/opamp"
TIMEOUT_S = 30.0


class FleetError(OtelstackError):
    """A fleet command that could not do what was asked; the message says why and what to do."""


class Server:
    """The server the fleet commands talk to, and where its address came from (for the messages)."""

    def __init__(self, given: str | None) -> None:
        env = os.environ.get(URL_ENV, "").strip()
        if given is not None:
            self.url, self.origin = given.strip(), "--server"
        elif env:
            self.url, self.origin = env, URL_ENV
        else:
            self.url, self.origin = DEFAULT_SERVER, "default"
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            hint = ""
            if parts.scheme.lower() in ("ws", "wss"):
                hint = " (the fleet commands use the server's REST API, not the OpAMP WebSocket)"
            raise FleetError(f"{self.option} needs http:// or https://, got {self.url!r}{hint}")
        if parts.path.rstrip("/").endswith(OPAMP_PATH):
            base = urllib.parse.urlunsplit(
                (parts.scheme, parts.netloc, parts.path.rstrip("/")[: -len(OPAMP_PATH)], "", "")
            )
            raise FleetError(
                f"{self.option} is the server's base URL, not its OpAMP endpoint: use {base!r}, not {self.url!r}"
            )
        self.base = self.url.rstrip("/")
        self.tls = parts.scheme.lower() == "https"
        self.host, self.port = parts.hostname, parts.port or (443 if self.tls else 80)

    @property
    def option(self) -> str:
        return URL_ENV if self.origin == URL_ENV else "--server"

    def described(self) -> str:
        if self.origin == "default":
            return f"{self.url} (the default; give the server with --server URL or {URL_ENV})"
        return f"{self.url} (from {self.origin})"

    def speaks_plain_http(self) -> bool:
        """Whether the port answers a plain HTTP request (an https:// URL for a server without TLS)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=5) as sock:
                sock.sendall(b"HEAD /healthz HTTP/1.0\r\n\r\n")
                return sock.recv(5) == b"HTTP/"
        except OSError:
            return False


def _request(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    server = Server(args.server)
    token = os.environ.get(ADMIN_TOKEN_ENV, "")
    if not token:
        raise FleetError(f"set {ADMIN_TOKEN_ENV} to the server's admin token")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        server.base + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        context = ssl.create_default_context(cafile=args.ca_file) if args.ca_file else None
    except (OSError, ssl.SSLError) as exc:
        raise FleetError(f"--ca-file {args.ca_file}: cannot load it as a CA bundle: {exc}") from exc
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=context) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        raise _http_error(server, method, path, exc) from exc
    except urllib.error.URLError as exc:
        raise _connection_error(server, exc.reason) from exc
    except (http.client.HTTPException, OSError) as exc:
        raise _connection_error(server, exc) from exc
    try:
        return json.loads(raw or b"null")
    except ValueError as exc:
        raise FleetError(
            f"the server at {server.described()} answered {method} {path} with something that is not JSON: "
            "is it an otelstack OpAMP server?"
        ) from exc


def _http_error(server: Server, method: str, path: str, exc: urllib.error.HTTPError) -> FleetError:
    text = exc.read().decode(errors="replace")
    detail: Any = None
    with contextlib.suppress(ValueError):
        detail = json.loads(text)
    if exc.code == 401:
        return FleetError(
            f"the server at {server.url} refused the admin token from {ADMIN_TOKEN_ENV} (401): "
            "check it matches the server's admin token (admin_token in its settings)"
        )
    if not isinstance(detail, dict) or "error" not in detail:
        # Not an answer of otelstack's REST API: a wrong path in --server, or another server.
        return FleetError(
            f"{method} {server.base}{path}: HTTP {exc.code} {exc.reason}: is {server.described()} the base URL of "
            f"an otelstack OpAMP server (such as {DEFAULT_SERVER})?"
        )
    message = f"{method} {path}: HTTP {exc.code}: {detail['error']}"
    candidates = detail.get("candidates")
    if isinstance(candidates, list) and candidates:
        message += "\n" + "\n".join(f"  {c}" for c in candidates)
    return FleetError(message)


def _connection_error(server: Server, reason: object) -> FleetError:
    if isinstance(reason, ssl.SSLCertVerificationError):
        return FleetError(
            f"the TLS certificate of the server at {server.described()} is not trusted: "
            f"{reason.verify_message or reason}; pass --ca-file with the CA that signed it"
        )
    if isinstance(reason, ssl.SSLError):
        if server.speaks_plain_http():
            return FleetError(
                f"the server at {server.url} does not speak TLS; use http:// or enable TLS on the server "
                "(tls: in its settings)"
            )
        return FleetError(f"TLS with the server at {server.described()} failed: {reason}")
    if isinstance(reason, (http.client.RemoteDisconnected, ConnectionResetError)) and not server.tls:
        return FleetError(
            f"the server at {server.described()} closed the connection without answering: "
            "if it serves TLS, use https://"
        )
    if isinstance(reason, TimeoutError | socket.timeout):
        return FleetError(f"no answer from the OpAMP server at {server.described()} within {TIMEOUT_S:g} s")
    why = reason.strerror if isinstance(reason, OSError) and reason.strerror else reason
    return FleetError(f"cannot reach the OpAMP server at {server.described()}: {why}")


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows])


def cmd_list(args: argparse.Namespace) -> int:
    agents = _request(args, "GET", "/api/agents")
    if args.json:
        print(json.dumps(agents, indent=2, sort_keys=True))
        return 0
    rows = [
        [
            a["uid"],
            a["status"],
            a["environment"],
            a["profile"],
            a["version"],
            a["config"]["status"],
            "yes" if a["config"]["compliant"] else "no",
            time.strftime("%H:%M:%S", time.gmtime(a["last_seen"])),
        ]
        for a in agents
    ]
    print(_table(rows, ["INSTANCE", "STATUS", "ENV", "PROFILE", "VERSION", "CONFIG", "COMPLIANT", "SEEN"]))
    print(f"{len(agents)} agents")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    print(json.dumps(_request(args, "GET", f"/api/agents/{_segment(args.uid)}"), indent=2, sort_keys=True))
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    answer = _request(args, "POST", f"/api/agents/{_segment(args.uid)}/restart")
    print(f"restart requested for {answer['uid']}; it is sent with the agent's next message")
    return 0


def _print_rollout(rollout: dict[str, Any]) -> None:
    waves = rollout["waves"]
    print(
        f"rollout {rollout['id']} ({rollout['kind']}): {rollout['state']}, wave {rollout['wave'] + 1}/{len(waves)} "
        f"(sizes {waves}), {rollout['progress']:.0%} applied" + (f" — {rollout['reason']}" if rollout["reason"] else "")
    )


def _segment(value: str) -> str:
    """One path segment of the REST API (an id a user typed may hold anything)."""
    return urllib.parse.quote(value.strip(), safe="")


def parse_selector(items: list[str]) -> dict[str, str]:
    selector: dict[str, str] = {}
    for item in items:
        key, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not key or not value:
            raise FleetError(f"--selector {item!r}: selector must be key=value; allowed keys: {SELECTOR_KEYS_HELP}")
        if selector.get(key, value) != value:
            raise FleetError(f"--selector: {key} is given twice ({selector[key]!r} and {value!r}); give it once")
        selector[key] = value
    return selector


def parse_waves(text: str) -> list[int]:
    """The cumulative percentages; the server checks that they increase within 1..100."""
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise FleetError(f"--waves must be comma-separated percentages such as 25,50,100, got {text!r}") from None


def cmd_rollout_start(args: argparse.Namespace) -> int:
    selector = parse_selector(args.selector or [])
    waves = parse_waves(args.waves)
    if args.package:
        missing = [f"--{name}" for name in ("version", "url", "sha256") if not getattr(args, name)]
        if missing:
            raise FleetError(f"--package needs {', '.join(missing)}")
        if len(args.sha256) != 64 or any(c not in "0123456789abcdefABCDEF" for c in args.sha256):
            raise FleetError(f"--sha256 must be 64 hexadecimal digits, got {args.sha256!r}")
    elif args.version or args.url or args.sha256:
        raise FleetError("--version, --url and --sha256 describe a package: give them with --package")
    if args.package:
        target: dict[str, Any] = {
            "name": "otelcol-contrib",
            "version": args.version,
            "url": args.url,
            "sha256": args.sha256,
        }
        kind = "package"
    else:
        target = {"variant": args.variant}
        if args.configs:
            target["configs_dir"] = args.configs
        kind = "config"
    body = {
        "kind": kind,
        "selector": selector,
        "target": target,
        "canary": args.canary,
        "waves": waves,
        "wave_timeout_s": args.wave_timeout,
    }
    rollout = _request(args, "POST", "/api/rollouts", body)
    _print_rollout(rollout)
    if args.wait:
        while rollout["state"] == "running":
            time.sleep(2)
            rollout = _request(args, "GET", f"/api/rollouts/{rollout['id']}")
            _print_rollout(rollout)
        return 0 if rollout["state"] == "succeeded" else 1
    return 0


def cmd_rollout_status(args: argparse.Namespace) -> int:
    if args.id:
        _print_rollout(_request(args, "GET", f"/api/rollouts/{_segment(args.id)}"))
        return 0
    rollouts = _request(args, "GET", "/api/rollouts")
    for rollout in rollouts[-10:]:
        _print_rollout(rollout)
    if not rollouts:
        print("no rollouts")
    return 0


def cmd_rollout_abort(args: argparse.Namespace) -> int:
    _print_rollout(_request(args, "POST", f"/api/rollouts/{_segment(args.id)}/abort"))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("opamp", help="the OpAMP server")
    opamp_sub = p.add_subparsers(dest="opamp_command", required=True)
    serve = opamp_sub.add_parser("serve", help="run the OpAMP server (docs/opamp.md)")
    serve.add_argument("--settings", type=Path, required=True, help="server settings YAML")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--check", action="store_true", help="check settings, secrets, TLS files and configs; exit")
    serve.set_defaults(func=cmd_serve)

    fleet = sub.add_parser("fleet", help="the managed collectors, through a running OpAMP server")
    fleet.add_argument(
        "--server",
        help=f"the OpAMP server's base URL, http:// or https:// (default: ${URL_ENV}, else {DEFAULT_SERVER})",
    )
    fleet.add_argument("--ca-file", help="CA bundle that signed the server's certificate")
    fleet_sub = fleet.add_subparsers(dest="fleet_command", required=True)
    listing = fleet_sub.add_parser("list", help="agents with their status, config and version")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)
    show = fleet_sub.add_parser("show", help="one agent in full")
    show.add_argument("uid", help="its instance UID, or a unique prefix of it (at least 4 characters)")
    show.set_defaults(func=cmd_show)
    restart = fleet_sub.add_parser("restart", help="ask an agent to restart its collector")
    restart.add_argument("uid", help="its instance UID, or a unique prefix of it (at least 4 characters)")
    restart.set_defaults(func=cmd_restart)

    rollout = fleet_sub.add_parser("rollout", help="staged rollouts of configs and collector releases")
    rollout_sub = rollout.add_subparsers(dest="rollout_command", required=True)
    start = rollout_sub.add_parser("start", help="start a rollout: canary, then waves")
    start.add_argument(
        "--configs",
        help="the new configs/ revision: a directory on the server's host (default: the revision it runs now)",
    )
    start.add_argument("--variant", default="normal", choices=["normal", "emergency", "safe-minimal"])
    start.add_argument("--package", action="store_true", help="roll out a collector release instead")
    start.add_argument("--version", help="package: the release version")
    start.add_argument("--url", help="package: its download URL")
    start.add_argument("--sha256", help="package: its SHA-256")
    start.add_argument("--selector", action="append", help=f"KEY=VALUE, repeatable; keys: {SELECTOR_KEYS_HELP}")
    start.add_argument("--canary", type=int, default=1, help="agents in the canary wave (default 1)")
    start.add_argument("--waves", default="25,50,100", help="cumulative percentages after the canary")
    start.add_argument("--wave-timeout", type=float, default=300.0, help="seconds a wave may take")
    start.add_argument("--wait", action="store_true", help="follow the rollout until it ends (exit 1 if it fails)")
    start.set_defaults(func=cmd_rollout_start)
    status = rollout_sub.add_parser("status", help="one rollout, or the latest ones")
    status.add_argument("id", nargs="?")
    status.set_defaults(func=cmd_rollout_status)
    abort = rollout_sub.add_parser("abort", help="stop a running rollout; its agents return to the baseline")
    abort.add_argument("id")
    abort.set_defaults(func=cmd_rollout_abort)
