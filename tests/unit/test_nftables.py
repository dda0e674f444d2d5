"""The nftables rendering of the flows matrix, checked by the real `nft -c -f` (check mode, no change)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from otelstack.errors import OtelstackError
from otelstack.security import flows, nftables

NFT = shutil.which("nft")
needs_nft = pytest.mark.skipif(
    NFT is None, reason="nft is absent (Debian package nftables; tests/lab/setup.sh installs it)"
)

SOURCES: dict[str, object] = {
    "agents": ["10.88.0.5", "10.88.0.6", "fd00::5"],
    "prometheus": ["10.1.0.0/24"],
    "alertmanager": ["10.3.0.1", "10.3.0.2"],
    "operators": [],
}


def nft_check(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "otelstack.nft"
    path.write_text(text, encoding="utf-8")
    assert NFT is not None
    return subprocess.run([NFT, "-c", "-f", str(path)], capture_output=True, text=True, check=False, timeout=30)


def chain(text: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index("\tchain input {")
    return [line.strip() for line in lines[start + 1 : lines.index("\t}", start)]]


def test_gateway_accepts_its_flows_from_named_sets_and_denies_its_ports() -> None:
    text = nftables.render(["gateways"], SOURCES, host="gateway-1")
    assert text.startswith("# nftables table for gateway-1 (roles: gateways)")
    assert "\tset agents_v4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n" in text
    assert "elements = { 10.88.0.5, 10.88.0.6 }" in text and "elements = { fd00::5 }" in text
    rules = chain(text)
    assert rules[:3] == [
        "type filter hook input priority filter - 1; policy accept;",
        'iif "lo" accept comment "loopback"',
        'ct state established,related accept comment "replies and related traffic"',
    ]
    assert rules[3:] == [
        'ip saddr @agents_v4 tcp dport { 4317, 4318 } ct state new counter accept comment "agent-to-gateway"',
        'ip6 saddr @agents_v6 tcp dport { 4317, 4318 } ct state new counter accept comment "agent-to-gateway"',
        "# apps-to-gateway: no address given for apps, nothing may use this flow",
        'ip saddr @prometheus_v4 tcp dport { 8888 } ct state new counter accept comment "prometheus-scrapes-gateways"',
        'tcp dport { 4317, 4318, 4321, 8888, 13133 } counter drop comment "default deny: platform ports (tcp)"',
    ]
    # Only the sets the host's flows use: the alertmanager addresses are not needed on a gateway.
    assert "alertmanager_v4" not in text and "operators" not in text


def test_the_deny_covers_only_the_hosts_own_ports() -> None:
    """SSH and other services stay reachable: nothing outside the tiers' listeners is dropped."""
    agent = chain(nftables.render(["agents"], SOURCES))
    drops = [line for line in agent if " drop " in line]
    assert drops == [
        'tcp dport { 4317, 4318, 4321, 8888, 13133 } counter drop comment "default deny: platform ports (tcp)"'
    ]
    text = nftables.render(["agents"], SOURCES)
    assert "policy accept" in text and " 22" not in text
    assert not [line for line in chain(nftables.render([], SOURCES)) if "drop" in line]


def test_udp_flows_get_udp_rules_and_a_udp_deny() -> None:
    rules = chain(nftables.render(["alertmanager"], SOURCES))
    assert (
        'ip saddr @alertmanager_v4 udp dport { 9094 } ct state new counter accept comment "alertmanager-cluster-udp"'
        in rules
    )
    assert rules[-1] == 'udp dport { 9094 } counter drop comment "default deny: platform ports (udp)"'


def test_every_rule_counts_and_names_its_flow() -> None:
    everything = {name: ["10.9.0.0/16", "fd00:9::/64"] for name in (*flows.PLATFORM_ROLES, *flows.EXTERNAL_SOURCES)}
    rules = chain(nftables.render(list(flows.PLATFORM_ROLES), everything))
    accepts = [line for line in rules if "ct state new counter accept" in line]
    assert len(accepts) == 2 * len(flows.FLOWS)  # every flow, IPv4 and IPv6
    assert {line.rsplit('comment "', 1)[1].rstrip('"') for line in accepts} == {f.name for f in flows.FLOWS}
    assert all("counter" in line for line in rules if " drop " in line)


def test_rendering_is_deterministic_and_collapses_addresses() -> None:
    shuffled: dict[str, object] = {
        "operators": [],
        "alertmanager": ["10.3.0.2", "10.3.0.1"],
        "prometheus": ["10.1.0.7", "10.1.0.0/24"],  # inside the network: collapsed into it
        "agents": ["fd00::5", "10.88.0.6", " 10.88.0.5", "10.88.0.5"],
    }
    assert nftables.render(["gateways"], shuffled) == nftables.render(["gateways"], SOURCES)
    assert nftables.render(["gateways", "gateways"], SOURCES) == nftables.render(["gateways"], SOURCES)


@needs_nft
@pytest.mark.parametrize(
    "roles", [["gateways"], ["agents"], ["opamp_servers", "prometheus"], ["alertmanager", "grafana"], []]
)
def test_real_nft_accepts_the_ruleset(roles: list[str], tmp_path: Path) -> None:
    result = nft_check(nftables.render(roles, SOURCES, host="h"), tmp_path)
    assert result.returncode == 0, result.stderr


@needs_nft
def test_real_nft_accepts_every_flow_with_both_families(tmp_path: Path) -> None:
    everything = {name: ["10.9.0.0/16", "10.9.3.4", "fd00:9::/64"] for name in flows.PLATFORM_ROLES}
    everything.update(apps=["192.168.0.0/16"], operators=["2001:db8::1"])
    result = nft_check(nftables.render(list(flows.PLATFORM_ROLES), everything), tmp_path)
    assert result.returncode == 0, result.stderr


@needs_nft
def test_real_nft_rejects_what_the_collapse_prevents(tmp_path: Path) -> None:
    """Overlapping elements break an interval set: the renderer must never emit them."""
    text = nftables.render(["gateways"], SOURCES).replace("{ 10.88.0.5, 10.88.0.6 }", "{ 10.88.0.5, 10.88.0.0/24 }")
    result = nft_check(text, tmp_path)
    assert result.returncode != 0 and "conflicting intervals" in result.stderr


@needs_nft
def test_real_nft_rejects_a_broken_ruleset(tmp_path: Path) -> None:
    """The check the role runs before replacing the file can fail."""
    broken = nftables.render(["gateways"], SOURCES).replace("ct state new counter", "ct state nwe counter", 1)
    result = nft_check(broken, tmp_path)
    assert result.returncode != 0 and "conntrack state" in result.stderr


@pytest.mark.parametrize(
    ("roles", "sources", "message"),
    [
        (["gateway"], {}, r"unknown platform role 'gateway'; known roles: agents, gateways"),
        ("gateways", {}, r"firewall roles: expected a list of platform roles, got the string 'gateways'"),
        (["gateways"], {"agent": ["10.0.0.1"]}, r"firewall sources: unknown source role 'agent'; known: agents"),
        (["gateways"], {"agents": ["10.0.0.300"]}, r"sources for 'agents': '10.0.0.300' is not an IP address or net"),
        (["gateways"], {"agents": ["fd00::zz"]}, r"sources for 'agents': 'fd00::zz' is not an IP address"),
        (["gateways"], {"agents": ["gw-1.example.org"]}, r"'gw-1.example.org' is not an IP address"),
        (["gateways"], {"agents": "10.0.0.1"}, r"sources for 'agents': expected a list .*, got str '10.0.0.1'"),
        (["agents"], {"prometheus": None}, r"sources for 'prometheus': expected a list .*, got NoneType"),
    ],
)
def test_bad_input_is_named(roles: list[str], sources: dict[str, object], message: str) -> None:
    with pytest.raises(OtelstackError, match=message):
        nftables.render(roles, sources)


def test_a_bad_address_of_a_source_the_host_does_not_use_is_still_refused() -> None:
    """Errors do not depend on which flows a host has: a typo fails on every host, not on some."""
    with pytest.raises(nftables.FirewallError, match=r"'10\.0\.0\.300'"):
        nftables.render(["agents"], {"gateways": ["10.0.0.300"]})


def test_inventory_sources_and_host_roles() -> None:
    groups = {"all": ["g1", "g2", "a1", "x"], "gateways": ["g1", "g2"], "agents": ["a1"], "webservers": ["x"]}
    addresses = {"g1": ["10.0.0.1"], "g2": [], "a1": ["10.0.0.9", "fd00::9"], "x": ["10.9.9.9"]}
    sources, unknown = nftables.inventory_sources(groups, addresses)
    assert sources == {"agents": ["10.0.0.9", "fd00::9"], "gateways": ["10.0.0.1"]}
    assert unknown == ["g2"]
    assert nftables.host_roles(["webservers", "gateways", "agents"]) == ["agents", "gateways"]
