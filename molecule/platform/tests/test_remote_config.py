"""Remote config from the OpAMP server on the converged platform: the real otelcol-contrib under the real
opampsupervisor.

The supervisors register and run what the server offers; staged rollouts through `otelstack fleet` on
the server's host: one that reaches every collector, one whose canary fails and stops it; the emergency
switch through the server and back. Runs after test_platform.py (file order), before test_uninstall.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import (
    AGENTS,
    COLLECTORS,
    GATEWAYS,
    HOST_LEVEL,
    ROOT,
    expected_sha,
    fleet,
    fleet_runs,
    host,
    wait_for,
)
from tests.lab.playbooks import run_playbook, tail

from otelstack.collector.supervisor import decode_overrides_attribute


def revision(tmp: Path, name: str, change: dict) -> Path:  # type: ignore[type-arg]
    """A configs revision: the repository's configs with `change` merged into configs/dev/platform.yaml,
    here and on the server's host under /srv/<name>."""
    local = tmp / name
    shutil.copytree(ROOT / "configs", local)
    level = local / "dev" / "platform.yaml"
    data = yaml.safe_load(level.read_text())
    for key, value in change.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    level.write_text(yaml.safe_dump(data))
    copied = host("opamp-1").ansible(
        "copy", f"src={local}/ dest=/srv/{name}/ mode=0644 directory_mode=0755", check=False, become=True
    )
    assert not copied.get("failed"), copied
    return local


@pytest.fixture(scope="module")
def revisions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("revisions")
    r2 = revision(tmp, "configs-r2", {"tiers": {"agent": {"log_include+": ["/srv/rollout-r2/*.log"]}}})
    # A log level the real collector refuses when it loads the config: the canary's supervisor reports
    # the failure with the collector's own words and goes back to the last good config.
    reject = {"agent": {"service": {"telemetry": {"logs": {"level": "loud"}}}}}
    r3 = revision(
        tmp,
        "configs-r3",
        {"tiers": {"agent": {"log_include+": ["/srv/rollout-r2/*.log"]}}, "collector_overrides": reject},
    )
    return {"r2": r2, "r3": r3}


def test_every_collector_registers_and_runs_what_the_server_offers() -> None:
    wanted = {name: expected_sha(name) for name in COLLECTORS}
    fleet_now = wait_for("the four collectors to apply their configs", lambda: fleet_runs(wanted))
    assert len(fleet_now) == 4
    for name in COLLECTORS:
        agent = fleet_now[name]
        assert (agent["environment"], agent["region"], agent["profile"]) == (
            "dev",
            "lab",
            "agent-vm" if name in AGENTS else "gateway",
        )
        # The offered config is the host's own file: same renderer, same five levels.
        assert agent["config"]["desired"] == host(name).file(f"/etc/otelcol-contrib/{agent['profile']}.yaml").sha256sum
    reported = decode_overrides_attribute(fleet_now["agent-2"]["attributes"]["otelstack.agent_overrides"])
    assert json.loads(reported) == HOST_LEVEL["agent-2"]
    listed = fleet("list")
    assert listed.rc == 0 and "4 agents" in listed.stdout


def test_a_staged_rollout_reaches_every_collector(revisions: dict[str, Path]) -> None:
    started = fleet(
        "rollout",
        "start",
        "--configs",
        "/srv/configs-r2",
        "--selector",
        "environment=dev",
        "--canary",
        "1",
        "--waves",
        "50,100",
        "--wave-timeout",
        "120",
        "--wait",
    )
    assert started.rc == 0, started.stdout + started.stderr
    assert "succeeded" in started.stdout.splitlines()[-1]
    wanted = {name: expected_sha(name, revisions["r2"]) for name in COLLECTORS}
    assert wanted["agent-1"] != expected_sha("agent-1"), "the revision changes the agents' config"
    wait_for("every collector on the new revision", lambda: fleet_runs(wanted))
    for name in AGENTS:
        effective = host(name).file("/var/lib/otelcol-contrib/supervisor/effective.yaml").content_string
        assert "/srv/rollout-r2/*.log" in effective
    assert "/srv/app/*.log" in host("agent-2").file("/var/lib/otelcol-contrib/supervisor/effective.yaml").content_string


def test_a_failing_canary_stops_the_rollout_and_returns_to_the_last_good(revisions: dict[str, Path]) -> None:
    started = fleet(
        "rollout",
        "start",
        "--configs",
        "/srv/configs-r3",
        "--selector",
        "profile=agent-vm",
        "--canary",
        "1",
        "--waves",
        "100",
        "--wave-timeout",
        "120",
        "--wait",
    )
    assert started.rc == 1, started.stdout + started.stderr
    # The final status line, then the reason's tail: the collector's own last log lines.
    final = [line for line in started.stdout.splitlines() if line.startswith("rollout ")][-1]
    assert "): failed, wave 1/" in final and "— canary: " in final and "failed to apply the config" in final, final
    assert 'unrecognized level: "loud"' in started.stdout, started.stdout
    bad = {name: expected_sha(name, revisions["r3"]) for name in AGENTS}
    good = {name: expected_sha(name, revisions["r2"]) for name in COLLECTORS}
    now = wait_for("the canary back on the last good config", lambda: fleet_runs(good))
    canaries = [name for name in AGENTS if now[name]["config"]["failed"] == bad[name]]
    assert len(canaries) == 1, {n: now[n]["config"] for n in AGENTS}
    (other,) = set(AGENTS) - set(canaries)
    assert now[other]["config"]["failed"] == "", "the rest never got the failing revision"
    # The canary's collector runs again, on the last good config.
    canary = host(canaries[0])
    effective = yaml.safe_load(canary.file("/var/lib/otelcol-contrib/supervisor/effective.yaml").content_string)
    assert effective["service"]["telemetry"].get("logs", {}).get("level") != "loud", effective["service"]["telemetry"]
    assert canary.run("python3 -c \"import urllib.request as u; u.urlopen('http://127.0.0.1:13133/')\"").rc == 0
    for name in GATEWAYS:
        assert now[name]["config"]["reported"] == good[name]


@pytest.mark.parametrize("state", ["on", "off"])
def test_the_emergency_switch_goes_through_the_server(revisions: dict[str, Path], state: str) -> None:
    result = run_playbook("emergency.yml", f"otelstack_emergency={'true' if state == 'on' else 'false'}")
    assert result.returncode == 0, tail(result)
    variant = "emergency" if state == "on" else "normal"
    wanted = {name: expected_sha(name, revisions["r2"], variant) for name in COLLECTORS}
    wait_for(f"every collector on the {variant} variant", lambda: fleet_runs(wanted))
    # Supervised collectors switch through the server: their own files stay as site.yml wrote them.
    for name in COLLECTORS:
        profile = "gateway" if name in GATEWAYS else "agent-vm"
        assert host(name).file(f"/etc/otelcol-contrib/{profile}.yaml").sha256sum == expected_sha(name)
