"""`otelstack opamp serve` and `otelstack fleet …` (list, show, restart, rollout start/status/abort).

The fleet commands talk to a running server's REST API: --server (or OTELSTACK_OPAMP_URL) and the
admin token from OTELSTACK_OPAMP_ADMIN_TOKEN (never a command-line argument, which `ps` would show).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import ssl
import time
import urllib.error
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


def _request(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    token = os.environ.get(ADMIN_TOKEN_ENV, "")
    if not token:
        raise OtelstackError(f"set {ADMIN_TOKEN_ENV} to the server's admin token")
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        args.server.rstrip("/") + path,
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    context = ssl.create_default_context(cafile=args.ca_file) if args.ca_file else None
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        with contextlib.suppress(ValueError, AttributeError):
            detail = json.loads(detail).get("error", detail)
        raise OtelstackError(f"{method} {path}: HTTP {exc.code}: {detail}") from exc
    except urllib.error.URLError as exc:
        raise OtelstackError(f"cannot reach the OpAMP server at {args.server}: {exc.reason}") from exc


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
    print(json.dumps(_request(args, "GET", f"/api/agents/{args.uid}"), indent=2, sort_keys=True))
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    _request(args, "POST", f"/api/agents/{args.uid}/restart")
    print(f"restart requested for {args.uid}; it is sent with the agent's next message")
    return 0


def _print_rollout(rollout: dict[str, Any]) -> None:
    waves = rollout["waves"]
    print(
        f"rollout {rollout['id']} ({rollout['kind']}): {rollout['state']}, wave {rollout['wave'] + 1}/{len(waves)} "
        f"(sizes {waves}), {rollout['progress']:.0%} applied" + (f" — {rollout['reason']}" if rollout["reason"] else "")
    )


def cmd_rollout_start(args: argparse.Namespace) -> int:
    selector = dict(item.split("=", 1) for item in args.selector or [])
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
        "waves": [int(p) for p in args.waves.split(",")],
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
        _print_rollout(_request(args, "GET", f"/api/rollouts/{args.id}"))
        return 0
    rollouts = _request(args, "GET", "/api/rollouts")
    for rollout in rollouts[-10:]:
        _print_rollout(rollout)
    if not rollouts:
        print("no rollouts")
    return 0


def cmd_rollout_abort(args: argparse.Namespace) -> int:
    _print_rollout(_request(args, "POST", f"/api/rollouts/{args.id}/abort"))
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
    fleet.add_argument("--server", default=os.environ.get(URL_ENV, "https://localhost:4320"), help=f"(env {URL_ENV})")
    fleet.add_argument("--ca-file", help="CA bundle that signed the server's certificate")
    fleet_sub = fleet.add_subparsers(dest="fleet_command", required=True)
    listing = fleet_sub.add_parser("list", help="agents with their status, config and version")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)
    show = fleet_sub.add_parser("show", help="one agent in full")
    show.add_argument("uid")
    show.set_defaults(func=cmd_show)
    restart = fleet_sub.add_parser("restart", help="ask an agent to restart its collector")
    restart.add_argument("uid")
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
    start.add_argument("--selector", action="append", help="KEY=VALUE (environment, region, profile)")
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
