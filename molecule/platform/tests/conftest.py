"""What the platform scenario's verifier files share: the hosts, the OpAMP server's fleet command, and
the configs each collector should run."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import testinfra

ROOT = Path(os.environ["OTELSTACK_ROOT"])
sys.path.insert(0, str(ROOT))

from otelstack.render import render_agent_config  # noqa: E402

INVENTORY = os.environ["MOLECULE_INVENTORY_FILE"]
GATEWAYS = ("gateway-1", "gateway-2")
AGENTS = ("agent-1", "agent-2")
COLLECTORS = GATEWAYS + AGENTS
# Level 5 of agent-2 (molecule.yml host_vars).
HOST_LEVEL: dict[str, dict[str, Any]] = {"agent-2": {"tiers": {"agent": {"log_include+": ["/srv/app/*.log"]}}}}
ADMIN_TOKEN = "lab-admin-token"  # molecule.yml: opamp_server_admin_token


def host(name: str):  # type: ignore[no-untyped-def]
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={INVENTORY}")


def profile_of(name: str) -> str:
    return "gateway" if name in GATEWAYS else "agent-vm"


def expected_sha(name: str, configs: Path = ROOT / "configs", variant: str = "normal") -> str:
    """The config a collector should run: the renderer over the same five levels as its host."""
    return render_agent_config(
        configs,
        "dev",
        "lab",
        profile=profile_of(name),
        agent=HOST_LEVEL.get(name),
        variant=variant,  # type: ignore[arg-type]
    ).sha256


def fleet(*args: str):  # type: ignore[no-untyped-def]
    """`otelstack fleet …` on the OpAMP server's host, as an operator runs it there."""
    command = " ".join(shlex.quote(a) for a in args)
    return host("opamp-1").run(
        f"OTELSTACK_OPAMP_ADMIN_TOKEN={ADMIN_TOKEN} /opt/otelstack-opamp/venv/bin/otelstack fleet "
        f"--server http://127.0.0.1:4320 {command}"
    )


def agents() -> dict[str, dict[str, Any]]:
    """The registry as `otelstack fleet list --json` shows it, by host name."""
    listed = fleet("list", "--json")
    assert listed.rc == 0, listed.stderr
    return {a["attributes"].get("host.name", a["uid"]): a for a in json.loads(listed.stdout)}


def wait_for(what: str, check: Callable[[], Any], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


def fleet_runs(wanted: dict[str, str]) -> dict[str, dict[str, Any]] | None:
    """The registry when every named collector reports `wanted[name]` applied and healthy, else None."""
    now = agents()
    for name, sha in wanted.items():
        agent = now.get(name)
        if agent is None or agent["status"] != "healthy" or agent["config"]["reported"] != sha:
            return None
        if agent["config"]["status"] != "APPLIED" or not agent["config"]["compliant"]:
            return None
    return now
