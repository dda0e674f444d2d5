"""The flows matrix: one neutral model for nftables (VMs) and NetworkPolicies (Kubernetes)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from otelstack.security import flows, layout

ROOT = Path(__file__).resolve().parents[2]


def test_the_matrix_is_consistent() -> None:
    flows.check_matrix()


def test_check_matrix_reports_a_flow_to_a_port_the_target_does_not_listen_on(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = flows.Flow("agent-to-gateway-ssh", "agents", "gateways", (22,), "not a platform port")
    monkeypatch.setattr(flows, "FLOWS", (*flows.FLOWS, bad, flows.FLOWS[0]))
    with pytest.raises(flows.FlowsError) as excinfo:
        flows.check_matrix()
    message = str(excinfo.value)
    assert "flow agent-to-gateway-ssh: tier gateways does not listen on 22/tcp" in message
    assert f"duplicate flow names: {flows.FLOWS[0].name}" in message


def test_check_matrix_reports_bad_names(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = dataclasses.replace(
        flows.TIERS[0], listeners=(flows.Listener(1, "Not_A_Port_Name_At_All"),), component="Agent"
    )
    monkeypatch.setattr(flows, "TIERS", (broken, *flows.TIERS[1:]))
    with pytest.raises(flows.FlowsError) as excinfo:
        flows.check_matrix()
    assert "component 'Agent' is not a DNS label" in str(excinfo.value)
    assert "port name 'Not_A_Port_Name_At_All' is not a valid Kubernetes port name" in str(excinfo.value)


def test_every_port_comes_from_the_layout_module() -> None:
    constants = {value for name, value in vars(layout).items() if name.endswith("_PORT") and isinstance(value, int)}
    used = {listener.port for tier in flows.TIERS for listener in tier.listeners}
    assert used <= constants, f"ports not defined in security/layout.py: {sorted(used - constants)}"
    source = (ROOT / "src" / "otelstack" / "security" / "flows.py").read_text(encoding="utf-8")
    assert not re.search(r"Listener\(\d|\(\d{2,5},\)", source), "a port literal in flows.py: use a layout constant"


def test_the_hops_of_the_platform_are_in_the_matrix() -> None:
    pairs = {(f.source, f.target, p, f.protocol) for f in flows.FLOWS for p in f.ports}
    expected = [
        ("apps", "agents", layout.OTLP_GRPC_PORT),
        ("apps", "agents", layout.OTLP_HTTP_PORT),
        ("agents", "gateways", layout.OTLP_GRPC_PORT),  # load_balancing exporter
        ("agents", "gateways", layout.OTLP_HTTP_PORT),
        ("gateways", "clickhouse", layout.CLICKHOUSE_NATIVE_TLS_PORT),
        ("gateways", "clickhouse", layout.CLICKHOUSE_HTTPS_PORT),
        ("gateways", "tempo", layout.TEMPO_OTLP_GRPC_PORT),
        ("gateways", "loki", layout.LOKI_HTTP_PORT),
        ("gateways", "prometheus", layout.PROMETHEUS_PORT),
        ("prometheus", "agents", layout.SELF_METRICS_PORT),
        ("prometheus", "gateways", layout.SELF_METRICS_PORT),
        ("agents", "opamp_servers", layout.OPAMP_PORT),
        ("gateways", "opamp_servers", layout.OPAMP_PORT),
        ("prometheus", "alertmanager", layout.ALERTMANAGER_PORT),
        ("grafana", "tempo", layout.TEMPO_HTTP_PORT),
        ("grafana", "loki", layout.LOKI_HTTP_PORT),
        ("grafana", "prometheus", layout.PROMETHEUS_PORT),
        ("operators", "grafana", layout.GRAFANA_PORT),
    ]
    missing = [hop for hop in expected if (*hop, "tcp") not in pairs]
    assert not missing
    assert ("alertmanager", "alertmanager", layout.ALERTMANAGER_CLUSTER_PORT, "udp") in pairs


def test_health_and_supervisor_ports_are_local_only() -> None:
    for name in ("agents", "gateways"):
        local = {(x.port, x.protocol) for x in flows.local_only(name)}
        assert local == {(layout.HEALTH_CHECK_PORT, "tcp"), (layout.SUPERVISOR_LOCAL_OPAMP_PORT, "tcp")}
    assert not any(
        p in (layout.HEALTH_CHECK_PORT, layout.SUPERVISOR_LOCAL_OPAMP_PORT) for f in flows.FLOWS for p in f.ports
    )


def test_nothing_but_collectors_reaches_a_collector_except_scrapes_and_apps() -> None:
    """Least privilege: Grafana, the backends and operators never open a connection to a collector."""
    for name in ("agents", "gateways"):
        sources = {rule.peer.name for rule in flows.inbound_rules(name)}
        assert sources <= {"apps", "agents", "prometheus"}, sources
    assert {rule.peer.name for rule in flows.inbound_rules("agents")} == {"apps", "prometheus"}


def test_inbound_rules_for_a_gateway_resolve_peers_and_named_ports() -> None:
    rules = flows.inbound_rules("gateways")
    assert [r.flow for r in rules] == ["agent-to-gateway", "apps-to-gateway", "prometheus-scrapes-gateways"]
    agent = rules[0]
    assert agent.peer == flows.Peer(
        "tier", "agents", (("app.kubernetes.io/component", "agent"), ("app.kubernetes.io/part-of", "otelstack"))
    )
    assert [(x.name, x.port) for x in agent.listeners] == [("otlp-grpc", 4317), ("otlp-http", 4318)]
    assert agent.ports == (4317, 4318) and agent.protocol == "tcp"
    assert rules[1].peer == flows.Peer("external", "apps")
    assert [x.name for x in rules[2].listeners] == ["metrics"]


def test_a_tier_selects_its_kubernetes_workloads_by_labels() -> None:
    assert flows.tier("opamp_servers").labels == {
        "app.kubernetes.io/part-of": "otelstack",
        "app.kubernetes.io/component": "opamp-server",
    }


def test_inbound_of_several_roles_keeps_matrix_order_without_duplicates() -> None:
    both = flows.inbound(["prometheus", "gateways", "gateways"])
    names = [f.name for f in both]
    assert names == [f.name for f in flows.FLOWS if f.target in ("prometheus", "gateways")]
    assert len(names) == len(set(names))
    assert flows.inbound([]) == []


def test_listening_ports_per_protocol() -> None:
    assert flows.listening_ports(["agents"], "tcp") == (4317, 4318, 4321, 8888, 13133)
    assert flows.listening_ports(["agents"], "udp") == ()
    assert flows.listening_ports(["alertmanager"], "udp") == (layout.ALERTMANAGER_CLUSTER_PORT,)


@pytest.mark.parametrize("call", [flows.inbound_rules, lambda name: flows.inbound([name]), flows.tier])
def test_unknown_role_is_named_with_the_known_ones(call: object) -> None:
    assert callable(call)
    with pytest.raises(flows.FlowsError, match=r"unknown platform role 'gateway'; known roles: agents, gateways, "):
        call("gateway")


def test_unknown_source_is_named() -> None:
    with pytest.raises(flows.FlowsError, match=r"unknown source role 'ops'; known: agents, .*, apps, operators"):
        flows.peer("ops")


def test_docs_tables_are_current() -> None:
    page = (ROOT / "docs" / "vm" / "firewall.md").read_text(encoding="utf-8")
    assert flows.markdown() in page, "regenerate the tables in docs/vm/firewall.md: python -m otelstack.security.flows"
