"""NetworkPolicies: every flow of the matrix whose ends are present is one ingress and one egress rule,
and nothing else is open."""

from __future__ import annotations

from typing import Any

import pytest

from otelstack.errors import SpecError
from otelstack.kubernetes import network
from otelstack.kubernetes.settings import parse_cluster
from otelstack.kubernetes.stack import StackContext
from otelstack.model.spec import PlatformSpec
from otelstack.security import flows
from otelstack.sizing import size_platform

OPAMP = {"image": {"repository": "registry.example/otelstack-opamp", "tag": "0.1.0"}}


def context(cluster: dict[str, Any] | None = None, **spec: Any) -> StackContext:
    platform = PlatformSpec.model_validate({"environment": "dev", **spec})
    return StackContext(platform, parse_cluster(cluster or {}), size_platform(platform), {})


def policies(ctx: StackContext) -> dict[tuple[str, str], dict[str, Any]]:
    component = network.component(ctx)
    assert component is not None
    return {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in component.objects}


def rule_names(policy: dict[str, Any], kind: str) -> list[str]:
    text = policy["metadata"].get("annotations", {}).get(f"otelstack.io/{kind}-rules", "")
    return text.split(",") if text else []


CASES = [
    pytest.param({}, id="defaults"),
    pytest.param({"opampServer": OPAMP}, id="opamp-server-in-cluster"),
    pytest.param({"opampServer": OPAMP, "networkPolicies": {"operators": {"cidrs": ["10.8.0.0/24"]}}}, id="operators"),
    pytest.param({"networkPolicies": {"apps": {}}}, id="no-apps"),
    pytest.param({"beyla": {"enabled": True}}, id="beyla"),
]


@pytest.mark.parametrize("cluster", CASES)
def test_each_present_flow_is_exactly_one_ingress_and_one_egress_rule(cluster: dict[str, Any]) -> None:
    ctx = context(cluster)
    running = network.deployed_tiers(ctx)
    settings = ctx.cluster.network_policies
    external_present = {
        "apps": settings.apps.present or ctx.cluster.beyla.enabled,
        "operators": settings.operators.present,
    }
    found = policies(ctx)
    for flow in flows.FLOWS:
        source_present = flow.source in running or external_present.get(flow.source, False)
        target = flows.tier(flow.target)
        if flow.target in running:
            ns = network.tier_namespace(ctx, flow.target)
            ingress = rule_names(found[(ns, f"otelstack-{target.component}")], "ingress")
            assert ingress.count(flow.name) == (1 if source_present else 0), flow.name
        if flow.source in running:
            source = flows.tier(flow.source)
            ns = network.tier_namespace(ctx, flow.source)
            egress = rule_names(found[(ns, f"otelstack-{source.component}")], "egress")
            reachable = flow.target in running or network.outside_ports(ctx.spec, flow.target) is not None
            assert egress.count(flow.name) == (1 if reachable else 0), flow.name


@pytest.mark.parametrize("cluster", CASES)
def test_nothing_else_is_open(cluster: dict[str, Any]) -> None:
    ctx = context(cluster)
    found = policies(ctx)
    namespaces = {ctx.namespace, f"{ctx.namespace}-agent"}
    namespaces |= {f"{ctx.namespace}-beyla"} if ctx.cluster.beyla.enabled else set()
    for ns in namespaces:
        deny = found[(ns, "otelstack-default-deny")]["spec"]
        assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    flow_names = {f.name for f in flows.FLOWS}
    extra = {"dns", "kube-apiserver", "kubelet", "postgresql"}
    for (_ns, name), policy in found.items():
        spec = policy["spec"]
        # The annotations account for every rule; every rule names its peers and its ports (no "all").
        assert len(rule_names(policy, "ingress")) == len(spec.get("ingress", [])), name
        assert len(rule_names(policy, "egress")) == len(spec.get("egress", [])), name
        assert set(rule_names(policy, "ingress")) <= flow_names, name
        assert set(rule_names(policy, "egress")) <= flow_names | extra, name
        for rule in spec.get("ingress", []) + spec.get("egress", []):
            assert rule.get("from") or rule.get("to"), name
            assert rule["ports"], name
        if name != "otelstack-default-deny":
            assert spec["podSelector"]["matchLabels"], name
    expected = {
        (network.tier_namespace(ctx, t), f"otelstack-{flows.tier(t).component}") for t in network.deployed_tiers(ctx)
    }
    expected |= {(ns, "otelstack-default-deny") for ns in namespaces}
    if ctx.cluster.beyla.enabled:
        expected.add((f"{ctx.namespace}-beyla", "otelstack-beyla"))
    assert set(found) == expected


AGENTS_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability-agent"}},
    "podSelector": {"matchLabels": flows.tier("agents").labels},
}


def test_ingress_uses_the_listeners_names_as_ports_and_the_tier_labels_as_peers() -> None:
    ctx = context({"opampServer": OPAMP})
    gateway = policies(ctx)[("observability", "otelstack-gateway")]
    rules = dict(zip(rule_names(gateway, "ingress"), gateway["spec"]["ingress"], strict=True))
    agent_rule = rules["agent-to-gateway"]
    # The agents run in their own namespace: the peer is those pods of that namespace only.
    assert agent_rule["from"] == [AGENTS_PEER]
    assert agent_rule["ports"] == [{"protocol": "TCP", "port": "otlp-grpc"}, {"protocol": "TCP", "port": "otlp-http"}]
    assert gateway["spec"]["podSelector"] == {"matchLabels": flows.tier("gateways").labels}
    # Prometheus is not run by the stack: nothing may scrape the gateways.
    assert "prometheus-scrapes-gateways" not in rules


def test_egress_outside_the_cluster_uses_the_spec_endpoint_port_and_the_given_networks() -> None:
    ctx = context(
        {"networkPolicies": {"outside": {"clickhouse": ["10.20.0.0/16"]}}},
        backends={"clickhouse": {"endpoint": "tcp://ch.internal:9000"}, "loki": {"enabled": False}},
        security={"allow_insecure": True},
    )
    gateway = policies(ctx)[("observability", "otelstack-gateway")]
    rules = dict(zip(rule_names(gateway, "egress"), gateway["spec"]["egress"], strict=True))
    assert rules["gateway-to-clickhouse"] == {
        "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
        "ports": [{"protocol": "TCP", "port": 9000}],
    }
    assert rules["gateway-to-tempo"]["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}, {"ipBlock": {"cidr": "::/0"}}]
    assert "gateway-to-loki" not in rules  # the spec does not send logs to Loki


def test_api_server_and_kubelet_egress_only_for_the_agents() -> None:
    ctx = context({"networkPolicies": {"apiServer": {"cidrs": ["192.0.2.10/32"], "ports": [6443]}}})
    found = policies(ctx)
    agent = found[("observability-agent", "otelstack-agent")]
    rules = dict(zip(rule_names(agent, "egress"), agent["spec"]["egress"], strict=True))
    assert rules["kube-apiserver"] == {
        "to": [{"ipBlock": {"cidr": "192.0.2.10/32"}}],
        "ports": [{"protocol": "TCP", "port": 6443}],
    }
    assert rules["kubelet"]["ports"] == [{"protocol": "TCP", "port": 10250}]
    assert rules["dns"]["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    gateway = found[("observability", "otelstack-gateway")]
    assert {"kube-apiserver", "kubelet"}.isdisjoint(rule_names(gateway, "egress"))


def test_beyla_reaches_the_agents_and_the_agents_accept_it() -> None:
    ctx = context({"beyla": {"enabled": True}})
    found = policies(ctx)
    agent = found[("observability-agent", "otelstack-agent")]
    apps = dict(zip(rule_names(agent, "ingress"), agent["spec"]["ingress"], strict=True))["apps-to-agent"]
    beyla_peer = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability-beyla"}},
        "podSelector": {"matchLabels": {
            "app.kubernetes.io/name": "beyla", "app.kubernetes.io/part-of": "otelstack",
            "app.kubernetes.io/component": "beyla",
        }},
    }  # fmt: skip
    assert beyla_peer in apps["from"]
    beyla = found[("observability-beyla", "otelstack-beyla")]
    assert rule_names(beyla, "egress") == ["apps-to-agent", "dns", "kube-apiserver"]
    assert beyla["spec"]["egress"][0]["to"] == [AGENTS_PEER]
    assert "ingress" not in beyla["spec"]


def test_the_agents_namespace_is_denied_by_default_and_its_flows_cross_namespaces() -> None:
    ctx = context({"opampServer": OPAMP})
    found = policies(ctx)
    deny = found[("observability-agent", "otelstack-default-deny")]
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    agent = found[("observability-agent", "otelstack-agent")]
    egress = dict(zip(rule_names(agent, "egress"), agent["spec"]["egress"], strict=True))
    gateways = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}},
        "podSelector": {"matchLabels": flows.tier("gateways").labels},
    }
    assert egress["agent-to-gateway"]["to"] == [gateways]
    opamp = found[("observability", "otelstack-opamp-server")]
    ingress = dict(zip(rule_names(opamp, "ingress"), opamp["spec"]["ingress"], strict=True))
    assert [AGENTS_PEER] in [rule["from"] for rule in ingress.values()]
    # Peers in the policy's own namespace stay plain podSelectors.
    gateway = found[("observability", "otelstack-gateway")]
    peers = [peer for rule in gateway["spec"]["egress"] for peer in rule["to"] if "podSelector" in peer]
    assert {"podSelector": opamp["spec"]["podSelector"]} in peers


def test_disabled_renders_nothing() -> None:
    assert network.component(context({"networkPolicies": {"enabled": False}})) is None


@pytest.mark.parametrize(
    ("cluster", "key"),
    [
        ({"networkPolicies": {"apps": {"cidrs": ["10.0.0.1/8"]}}}, "networkPolicies.apps.cidrs[0]"),
        ({"networkPolicies": {"outside": {"kafka": []}}}, "networkPolicies.outside"),
        ({"networkPolicies": {"apiServer": {"ports": [0]}}}, "networkPolicies.apiServer.ports[0]"),
        ({"networkPolicies": {"denyAll": True}}, "networkPolicies.denyAll"),
    ],
)
def test_bad_settings_name_the_key(cluster: dict[str, Any], key: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_cluster(cluster, source="stacks/platform/Pulumi.dev.yaml")
    text = str(err.value) + "\n".join(getattr(err.value, "issues", []))
    assert "stacks/platform/Pulumi.dev.yaml" in text and key in text
