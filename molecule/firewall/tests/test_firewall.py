"""Allowed flows pass, other connections to platform ports are dropped, other ports are untouched.

Real TCP connections between the scenario's containers: a Python socket server listens on the
gateway's and the agent's ports; a probe reports `open`, `timeout` (the SYN was dropped) or `refused`
(nothing listens: the test would prove nothing, so only `open` and `timeout` are expected).
"""

from __future__ import annotations

import hashlib
import time

import pytest
from conftest import address, host, probe

from otelstack.security import flows, nftables

# Platform ports of collectors, plus SSH and an unrelated service (neither is the firewall's business).
PORTS = (4317, 4318, 8888, 13133, 22, 8080)
LISTEN = (
    'nohup python3 -c "import socket,time\n'
    "socks=[socket.create_server(('0.0.0.0', p)) for p in {ports}]\n"
    'time.sleep(900)" >/dev/null 2>&1 &'
)
SOURCES = ("fw-gateway", "fw-agent", "fw-outsider")
TARGETS = ("fw-gateway", "fw-agent")

Outcomes = dict[tuple[str, str, int], str]


def start_listeners(name: str) -> None:
    target = host(name)
    target.run("pkill -f 'socket.create_server' || true")
    target.run(LISTEN.format(ports=PORTS))
    for _ in range(50):
        if all(target.socket(f"tcp://0.0.0.0:{p}").is_listening for p in PORTS):
            return
        time.sleep(0.2)
    pytest.fail(f"listeners did not start on {name}")


@pytest.fixture(scope="module")
def outcomes() -> Outcomes:
    """Every source probes every port of both targets once (in parallel)."""
    for name in TARGETS:
        start_listeners(name)
    found: Outcomes = {}
    for source in SOURCES:
        for (target, port), outcome in probe(source, [(t, p) for t in TARGETS for p in PORTS]).items():
            found[(source, target, port)] = outcome
    return found


@pytest.mark.parametrize("port", [4317, 4318])
def test_agent_reaches_the_gateways_otlp_ports(outcomes: Outcomes, port: int) -> None:
    assert outcomes[("fw-agent", "fw-gateway", port)] == "open"


@pytest.mark.parametrize("port", [4317, 4318, 8888, 13133])
def test_outsider_is_dropped_on_the_gateways_platform_ports(outcomes: Outcomes, port: int) -> None:
    assert outcomes[("fw-outsider", "fw-gateway", port)] == "timeout"


@pytest.mark.parametrize("port", [8888, 13133])
def test_agent_may_not_scrape_or_probe_the_gateway(outcomes: Outcomes, port: int) -> None:
    """Self-metrics are for Prometheus, health for local probes: the agent is dropped there."""
    assert outcomes[("fw-agent", "fw-gateway", port)] == "timeout"


@pytest.mark.parametrize("name", TARGETS)
@pytest.mark.parametrize("port", PORTS)
def test_local_connections_pass(outcomes: Outcomes, name: str, port: int) -> None:
    assert outcomes[(name, name, port)] == "open"


@pytest.mark.parametrize("source", ["fw-gateway", "fw-outsider"])
@pytest.mark.parametrize("port", [4317, 4318, 8888, 13133])
def test_the_agent_accepts_no_remote_connection_to_its_platform_ports(
    outcomes: Outcomes, source: str, port: int
) -> None:
    """No Prometheus in the inventory and no `apps` addresses given: nothing may reach the agent's ports."""
    assert outcomes[(source, "fw-agent", port)] == "timeout"


@pytest.mark.parametrize("source", ["fw-outsider", "fw-agent", "fw-gateway"])
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("port", [22, 8080])
def test_ssh_and_other_ports_are_untouched(outcomes: Outcomes, source: str, target: str, port: int) -> None:
    assert outcomes[(source, target, port)] == "open"


def test_the_file_is_the_rendered_table_with_the_inventory_addresses() -> None:
    gateway = host("fw-gateway")
    rules = gateway.file("/etc/nftables.d/otelstack.nft")
    assert (rules.user, rules.group, rules.mode) == ("root", "root", 0o640)
    sources = {"agents": [address("fw-agent")], "gateways": [address("fw-gateway")]}
    expected = nftables.render(["gateways"], sources, host="fw-gateway")
    assert rules.sha256sum == hashlib.sha256(expected.encode()).hexdigest(), "the file differs from the renderer"
    table = gateway.check_output("nft list table inet otelstack")
    assert f"elements = {{ {address('fw-agent')} }}" in table
    for flow in flows.inbound(["gateways"]):
        if flow.source == "agents":
            assert f'comment "{flow.name}"' in table


def counters(name: str) -> dict[str, int]:
    """Packets counted per rule, by the rule's comment."""
    table = host(name).check_output("nft list table inet otelstack")
    found: dict[str, int] = {}
    for line in table.splitlines():
        if "counter packets" in line and 'comment "' in line:
            found[line.rsplit('comment "', 1)[1].rstrip('"')] = int(line.split("counter packets ", 1)[1].split()[0])
    return found


def test_accepts_and_drops_are_counted(outcomes: Outcomes) -> None:
    before = counters("fw-gateway")
    assert probe("fw-agent", [("fw-gateway", 4317)]) == {("fw-gateway", 4317): "open"}
    assert probe("fw-outsider", [("fw-gateway", 4317)]) == {("fw-gateway", 4317): "timeout"}
    after = counters("fw-gateway")
    assert after["agent-to-gateway"] == before["agent-to-gateway"] + 1  # the SYN only: `ct state new`
    assert after["default deny: platform ports (tcp)"] > before["default deny: platform ports (tcp)"]


def test_rules_survive_an_nftables_service_restart(outcomes: Outcomes) -> None:
    """What boot does: nftables.service flushes the ruleset and loads /etc/nftables.conf with our include."""
    gateway = host("fw-gateway")
    assert gateway.service("nftables").is_enabled
    assert 'include "/etc/nftables.d/otelstack.nft"' in gateway.file("/etc/nftables.conf").content_string
    assert gateway.run("nft -c -f /etc/nftables.conf").rc == 0
    gateway.check_output("systemctl restart nftables")
    assert probe("fw-outsider", [("fw-gateway", 4317)]) == {("fw-gateway", 4317): "timeout"}
    assert probe("fw-agent", [("fw-gateway", 4317)]) == {("fw-gateway", 4317): "open"}


def test_outsider_has_no_table() -> None:
    """Hosts outside the platform groups are not touched by the play."""
    assert host("fw-outsider").run("nft list table inet otelstack").rc != 0
