"""The converged lab platform: playbooks/verify.yml passes, and every host runs what `otelstack plan` renders."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import AGENTS, GATEWAYS, HOST_LEVEL, INVENTORY, ROOT, host

from otelstack.render import render_agent_config

REPORT = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "verify-report.json"


@pytest.fixture(scope="module")
def verify_run() -> subprocess.CompletedProcess[str]:
    REPORT.unlink(missing_ok=True)
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_STDOUT_CALLBACK": "default"}
    return subprocess.run(
        [
            "ansible-playbook",
            "-i",
            INVENTORY,
            "-e",
            f"otelstack_verify_report={REPORT}",
            str(ROOT / "playbooks" / "verify.yml"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def test_verify_playbook_passes(verify_run: subprocess.CompletedProcess[str]) -> None:
    assert verify_run.returncode == 0, verify_run.stdout[-4000:] + verify_run.stderr[-2000:]


def test_every_agent_completes_mtls_with_every_gateway_and_plain_clients_are_refused(
    verify_run: subprocess.CompletedProcess[str],
) -> None:
    assert verify_run.returncode == 0
    outcomes = json.loads(REPORT.read_text())
    accepted = {(o["from"], o["host"]) for o in outcomes if o["outcome"] == "accepted" and o["client_certificate"]}
    refused = {(o["from"], o["host"]) for o in outcomes if o["outcome"] == "client-refused"}
    every_pair = {(a, g) for a in AGENTS for g in GATEWAYS}
    assert accepted == every_pair, outcomes
    assert refused == every_pair, outcomes


@pytest.mark.parametrize("name", GATEWAYS + AGENTS)
def test_each_host_runs_the_plan_config(name: str) -> None:
    profile = "gateway" if name in GATEWAYS else "agent-vm"
    expected = render_agent_config(ROOT / "configs", "dev", "lab", profile=profile, agent=HOST_LEVEL.get(name))
    assert host(name).file(f"/etc/otelcol-contrib/{profile}.yaml").sha256sum == expected.sha256
    if name in HOST_LEVEL:
        assert "/srv/app/*.log" in expected.text


def test_one_ca_for_the_whole_platform() -> None:
    ca = {host(n).file("/etc/otelcol-contrib/tls/ca.crt").sha256sum for n in GATEWAYS + AGENTS}
    assert len(ca) == 1


def test_agent_reaches_a_gateway_port_but_not_an_unlisted_one() -> None:
    agent = host("agent-1")
    probe = "python3 -c \"import socket; socket.create_connection(('gateway-1', {port}), timeout=3)\""
    assert agent.run(probe.format(port=4317)).rc == 0
    # 13133 (health) is for local probes only: the firewall drops it from other hosts.
    assert agent.run(probe.format(port=13133)).rc != 0


def test_the_opamp_server_serves_the_platform() -> None:
    server = host("opamp-1")
    assert server.service("otelstack-opamp").is_running
    # The agents' supervisors are configured for it (configs/dev/lab: ws://opamp-1:4320/v1/opamp).
    supervisor = host("agent-1").file("/etc/otelcol-contrib/supervisor.yaml").content_string
    assert "ws://opamp-1:4320/v1/opamp" in supervisor
    health = (
        "python3 -c \"import urllib.request as u; print(u.urlopen('http://opamp-1:4320/healthz').read().decode())\""
    )
    assert host("agent-1").check_output(health).strip() == "ok"
