"""The flows matrix: which peer may open connections to which port of which platform tier.

One matrix for every delivery path. The VM firewall role renders it to nftables
(``otelstack.security.nftables``); the Kubernetes stacks render the same data to NetworkPolicies. The
data model is neutral:

- a :class:`Tier` is a part of the platform: an inventory group on VMs (``Tier.name``), the workloads
  labelled ``app.kubernetes.io/component=<Tier.component>`` on Kubernetes (``Tier.labels``). It lists
  every port its components listen on (:class:`Listener`), each named (the Kubernetes port name);
- an :class:`External` source is outside the platform (the applications it observes, the people who
  operate it): its addresses are given per environment (``firewall_sources`` on VMs, ``ipBlock`` or
  namespace selectors on Kubernetes);
- a :class:`Flow` lets a source (tier or external) reach ports of a target tier.

:func:`inbound_rules` gives what one tier must accept, with the peer resolved to a :class:`Peer` and the
ports to the target's named listeners. Every listener no flow opens is local to its host (health checks,
the supervisor's local OpAMP port). Ports come from ``otelstack.security.layout``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from otelstack.errors import OtelstackError
from otelstack.security import layout

Protocol = Literal["tcp", "udp"]

# Labels that select a tier's workloads on Kubernetes.
PART_OF_LABEL = "app.kubernetes.io/part-of"
COMPONENT_LABEL = "app.kubernetes.io/component"
PART_OF = "otelstack"

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
# Kubernetes port names: IANA service names (at most 15 characters, a letter, no leading/trailing '-').
_PORT_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$")


class FlowsError(OtelstackError):
    """A tier, source or flow is unknown, or the matrix contradicts itself."""


@dataclass(frozen=True)
class Listener:
    """A port a tier's components listen on."""

    port: int
    name: str
    protocol: Protocol = "tcp"
    description: str = ""


@dataclass(frozen=True)
class Tier:
    """A part of the platform: an inventory group on VMs, a labelled workload on Kubernetes."""

    name: str
    component: str
    description: str
    listeners: tuple[Listener, ...]

    @property
    def labels(self) -> dict[str, str]:
        """The pod labels that select this tier on Kubernetes."""
        return {PART_OF_LABEL: PART_OF, COMPONENT_LABEL: self.component}

    def listener(self, port: int, protocol: Protocol) -> Listener:
        for item in self.listeners:
            if item.port == port and item.protocol == protocol:
                return item
        raise FlowsError(f"tier {self.name!r} does not listen on {port}/{protocol}")


@dataclass(frozen=True)
class External:
    """A source outside the platform, selected by the addresses an environment gives for it."""

    name: str
    description: str


@dataclass(frozen=True)
class Flow:
    """Connections `source` may open to `ports` (all of `protocol`) of tier `target`."""

    name: str
    source: str
    target: str
    ports: tuple[int, ...]
    description: str
    protocol: Protocol = "tcp"


@dataclass(frozen=True)
class Peer:
    """The source side of an inbound rule: a tier (selected by group / labels) or an external source."""

    kind: Literal["tier", "external"]
    name: str
    labels: tuple[tuple[str, str], ...] = ()  # pod labels for a tier; empty for an external source


@dataclass(frozen=True)
class InboundRule:
    """One flow as its target tier sees it: who may connect, to which named listeners."""

    flow: str
    peer: Peer
    listeners: tuple[Listener, ...]
    protocol: Protocol
    description: str

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(item.port for item in self.listeners)


def _collector(description: str) -> tuple[Listener, ...]:
    return (
        Listener(layout.OTLP_GRPC_PORT, "otlp-grpc", description=f"OTLP/gRPC receiver ({description})"),
        Listener(layout.OTLP_HTTP_PORT, "otlp-http", description=f"OTLP/HTTP receiver ({description})"),
        Listener(layout.SELF_METRICS_PORT, "metrics", description="collector self-metrics (Prometheus)"),
        Listener(layout.HEALTH_CHECK_PORT, "health", description="health_check extension (local probes)"),
        Listener(layout.SUPERVISOR_LOCAL_OPAMP_PORT, "opamp-local", description="supervisor's local OpAMP server"),
    )


TIERS: tuple[Tier, ...] = (
    Tier("agents", "agent", "collector agents, one per node", _collector("applications")),
    Tier("gateways", "gateway", "collector gateways (tail sampling, export)", _collector("agents, apps")),
    Tier(
        "opamp_servers",
        "opamp-server",
        "the OpAMP server (fleet control plane)",
        (Listener(layout.OPAMP_PORT, "opamp", description="OpAMP WebSocket/HTTP, REST API, web page, /metrics"),),
    ),
    Tier(
        "clickhouse",
        "clickhouse",
        "ClickHouse",
        (
            Listener(layout.CLICKHOUSE_NATIVE_TLS_PORT, "native-tls", description="native protocol over TLS"),
            Listener(layout.CLICKHOUSE_HTTPS_PORT, "https", description="HTTP interface over TLS"),
            Listener(layout.CLICKHOUSE_METRICS_PORT, "metrics", description="Prometheus endpoint"),
        ),
    ),
    Tier(
        "tempo",
        "tempo",
        "Tempo (monolithic)",
        (
            Listener(layout.TEMPO_OTLP_GRPC_PORT, "otlp-grpc", description="OTLP/gRPC distributor"),
            Listener(layout.TEMPO_HTTP_PORT, "http", description="query API and /metrics"),
        ),
    ),
    Tier("loki", "loki", "Loki", (Listener(layout.LOKI_HTTP_PORT, "http", description="push, query API, /metrics"),)),
    Tier(
        "prometheus",
        "prometheus",
        "Prometheus",
        (Listener(layout.PROMETHEUS_PORT, "http", description="remote-write receiver, query API"),),
    ),
    Tier(
        "alertmanager",
        "alertmanager",
        "Alertmanager",
        (
            Listener(layout.ALERTMANAGER_PORT, "http", description="alerts API, web UI, /metrics"),
            Listener(layout.ALERTMANAGER_CLUSTER_PORT, "cluster", description="gossip between replicas"),
            Listener(layout.ALERTMANAGER_CLUSTER_PORT, "cluster-udp", "udp", "gossip between replicas"),
        ),
    ),
    Tier("grafana", "grafana", "Grafana", (Listener(layout.GRAFANA_PORT, "http", description="web UI, /metrics"),)),
)

EXTERNALS: tuple[External, ...] = (
    External("apps", "the instrumented applications' networks (SDKs, operator-injected agents, Beyla)"),
    External("operators", "the networks people and their tools work from (admin VPN, bastions)"),
)

_OTLP = (layout.OTLP_GRPC_PORT, layout.OTLP_HTTP_PORT)

FLOWS: tuple[Flow, ...] = (
    # Telemetry in.
    Flow(
        "apps-to-agent",
        "apps",
        "agents",
        _OTLP,
        "OTLP from applications on other hosts, when the agent listens beyond loopback (TLS from apps "
        "configured; always on Kubernetes). Node-local apps use 127.0.0.1 and never cross the firewall",
    ),
    Flow(
        "agent-to-gateway",
        "agents",
        "gateways",
        _OTLP,
        "the agents' load_balancing exporter (routing by trace ID) and OTLP export, mTLS",
    ),
    Flow("apps-to-gateway", "apps", "gateways", _OTLP, "OTLP from workloads without a node agent (TLS + token)"),
    # Telemetry out to the backends.
    Flow(
        "gateway-to-clickhouse",
        "gateways",
        "clickhouse",
        (layout.CLICKHOUSE_NATIVE_TLS_PORT, layout.CLICKHOUSE_HTTPS_PORT),
        "traces, logs and metrics into ClickHouse (native TLS, HTTPS)",
    ),
    Flow("gateway-to-tempo", "gateways", "tempo", (layout.TEMPO_OTLP_GRPC_PORT,), "traces into Tempo (OTLP/gRPC)"),
    Flow("gateway-to-loki", "gateways", "loki", (layout.LOKI_HTTP_PORT,), "logs into Loki (native OTLP/HTTP)"),
    Flow(
        "gateway-to-prometheus",
        "gateways",
        "prometheus",
        (layout.PROMETHEUS_PORT,),
        "span metrics and other metrics by remote write",
    ),
    Flow(
        "tempo-to-prometheus",
        "tempo",
        "prometheus",
        (layout.PROMETHEUS_PORT,),
        "service graphs and span metrics of the metrics generator by remote write",
    ),
    # Control plane.
    Flow("agent-to-opamp", "agents", "opamp_servers", (layout.OPAMP_PORT,), "OpAMP from agents' supervisors"),
    Flow("gateway-to-opamp", "gateways", "opamp_servers", (layout.OPAMP_PORT,), "OpAMP from gateways' supervisors"),
    Flow(
        "operators-to-opamp",
        "operators",
        "opamp_servers",
        (layout.OPAMP_PORT,),
        "fleet REST API, web page and `otelstack fleet` (admin token)",
    ),
    # Self-monitoring.
    Flow("prometheus-scrapes-agents", "prometheus", "agents", (layout.SELF_METRICS_PORT,), "collector self-metrics"),
    Flow(
        "prometheus-scrapes-gateways", "prometheus", "gateways", (layout.SELF_METRICS_PORT,), "collector self-metrics"
    ),
    Flow("prometheus-scrapes-opamp", "prometheus", "opamp_servers", (layout.OPAMP_PORT,), "fleet metrics (/metrics)"),
    Flow(
        "prometheus-scrapes-clickhouse",
        "prometheus",
        "clickhouse",
        (layout.CLICKHOUSE_METRICS_PORT,),
        "ClickHouse server metrics",
    ),
    Flow("prometheus-scrapes-tempo", "prometheus", "tempo", (layout.TEMPO_HTTP_PORT,), "Tempo metrics"),
    Flow("prometheus-scrapes-loki", "prometheus", "loki", (layout.LOKI_HTTP_PORT,), "Loki metrics"),
    Flow("prometheus-scrapes-grafana", "prometheus", "grafana", (layout.GRAFANA_PORT,), "Grafana metrics"),
    Flow(
        "prometheus-to-alertmanager",
        "prometheus",
        "alertmanager",
        (layout.ALERTMANAGER_PORT,),
        "alerts, and the Alertmanager's own metrics",
    ),
    Flow(
        "alertmanager-cluster",
        "alertmanager",
        "alertmanager",
        (layout.ALERTMANAGER_CLUSTER_PORT,),
        "gossip between Alertmanager replicas (TCP)",
    ),
    Flow(
        "alertmanager-cluster-udp",
        "alertmanager",
        "alertmanager",
        (layout.ALERTMANAGER_CLUSTER_PORT,),
        "gossip between Alertmanager replicas (UDP)",
        "udp",
    ),
    # Queries.
    Flow("grafana-to-prometheus", "grafana", "prometheus", (layout.PROMETHEUS_PORT,), "metric queries, exemplars"),
    Flow("grafana-to-tempo", "grafana", "tempo", (layout.TEMPO_HTTP_PORT,), "trace queries"),
    Flow("grafana-to-loki", "grafana", "loki", (layout.LOKI_HTTP_PORT,), "log queries"),
    Flow("grafana-to-clickhouse", "grafana", "clickhouse", (layout.CLICKHOUSE_HTTPS_PORT,), "SQL queries (HTTPS)"),
    Flow("grafana-to-alertmanager", "grafana", "alertmanager", (layout.ALERTMANAGER_PORT,), "alert state, silences"),
    # People.
    Flow("operators-to-grafana", "operators", "grafana", (layout.GRAFANA_PORT,), "dashboards, Explore"),
    Flow("operators-to-alertmanager", "operators", "alertmanager", (layout.ALERTMANAGER_PORT,), "silences (amtool)"),
)

_TIERS = {tier.name: tier for tier in TIERS}
_EXTERNALS = {source.name: source for source in EXTERNALS}
PLATFORM_ROLES: tuple[str, ...] = tuple(_TIERS)
EXTERNAL_SOURCES: tuple[str, ...] = tuple(_EXTERNALS)


def tier(name: str) -> Tier:
    """The tier called `name` (its inventory group), or a FlowsError naming it and the known tiers."""
    try:
        return _TIERS[name]
    except KeyError:
        raise FlowsError(f"unknown platform role {name!r}; known roles: {', '.join(PLATFORM_ROLES)}") from None


def check_source(name: str) -> None:
    """Raise a FlowsError unless `name` is a tier or an external source."""
    if name not in _TIERS and name not in _EXTERNALS:
        known = ", ".join((*PLATFORM_ROLES, *EXTERNAL_SOURCES))
        raise FlowsError(f"unknown source role {name!r}; known: {known}")


def peer(name: str) -> Peer:
    """The peer a flow's source names."""
    check_source(name)
    if name in _TIERS:
        return Peer("tier", name, tuple(sorted(_TIERS[name].labels.items())))
    return Peer("external", name)


def inbound(roles: Iterable[str]) -> list[Flow]:
    """Flows a host holding `roles` must accept, in matrix order; an unknown role raises FlowsError."""
    wanted = {tier(role).name for role in roles}
    return [flow for flow in FLOWS if flow.target in wanted]


def inbound_rules(name: str) -> tuple[InboundRule, ...]:
    """What tier `name` must accept, in matrix order: one rule per flow, peer and named listeners resolved."""
    target = tier(name)
    return tuple(
        InboundRule(
            flow=flow.name,
            peer=peer(flow.source),
            listeners=tuple(target.listener(port, flow.protocol) for port in flow.ports),
            protocol=flow.protocol,
            description=flow.description,
        )
        for flow in FLOWS
        if flow.target == target.name
    )


def listening_ports(roles: Iterable[str], protocol: Protocol) -> tuple[int, ...]:
    """Every `protocol` port the components of `roles` listen on: the ports their hosts' firewall guards."""
    ports = {item.port for role in roles for item in tier(role).listeners if item.protocol == protocol}
    return tuple(sorted(ports))


def local_only(name: str) -> tuple[Listener, ...]:
    """Listeners of tier `name` that no flow opens: reachable from the host itself only."""
    target = tier(name)
    opened = {(port, flow.protocol) for flow in FLOWS if flow.target == target.name for port in flow.ports}
    return tuple(item for item in target.listeners if (item.port, item.protocol) not in opened)


def check_matrix() -> None:
    """Raise a FlowsError listing every inconsistency of the matrix (names, ports, listeners)."""
    issues: list[str] = []
    for kind, names in (
        ("tier", [t.name for t in TIERS]),
        ("external source", [e.name for e in EXTERNALS]),
        ("flow", [f.name for f in FLOWS]),
    ):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            issues.append(f"duplicate {kind} names: {', '.join(duplicates)}")
    overlap = set(_TIERS) & set(_EXTERNALS)
    if overlap:
        issues.append(f"names both a tier and an external source: {', '.join(sorted(overlap))}")
    for item in TIERS:
        if not _NAME.match(item.component):
            issues.append(f"tier {item.name}: component {item.component!r} is not a DNS label")
        keys = [(listener.port, listener.protocol) for listener in item.listeners]
        if len(keys) != len(set(keys)):
            issues.append(f"tier {item.name}: a port/protocol is listed twice")
        for listener in item.listeners:
            if not _PORT_NAME.match(listener.name):
                issues.append(f"tier {item.name}: port name {listener.name!r} is not a valid Kubernetes port name")
            if not 0 < listener.port < 65536:
                issues.append(f"tier {item.name}: port {listener.port} out of range")
        names = [listener.name for listener in item.listeners]
        if len(names) != len(set(names)):
            issues.append(f"tier {item.name}: port names are not unique")
    for flow in FLOWS:
        if not _NAME.match(flow.name):
            issues.append(f"flow {flow.name!r}: names are lowercase words joined by '-'")
        if flow.source not in _TIERS and flow.source not in _EXTERNALS:
            issues.append(f"flow {flow.name}: unknown source {flow.source!r}")
        if flow.target not in _TIERS:
            issues.append(f"flow {flow.name}: unknown target tier {flow.target!r}")
            continue
        if not flow.ports or len(set(flow.ports)) != len(flow.ports):
            issues.append(f"flow {flow.name}: ports must be given once each")
        for port in flow.ports:
            if (port, flow.protocol) not in {(x.port, x.protocol) for x in _TIERS[flow.target].listeners}:
                issues.append(f"flow {flow.name}: tier {flow.target} does not listen on {port}/{flow.protocol}")
        if not flow.description or '"' in flow.description:
            issues.append(f"flow {flow.name}: needs a description without double quotes")
    if issues:
        raise FlowsError("the flows matrix is inconsistent", issues)


def markdown() -> str:
    """The matrix as the tables in docs/vm/firewall.md (a test keeps the page in step)."""
    lines = [
        "| flow | from | to | ports | what |",
        "| --- | --- | --- | --- | --- |",
    ]
    for flow in FLOWS:
        ports = ", ".join(f"{p}/{flow.protocol}" for p in flow.ports)
        lines.append(f"| `{flow.name}` | {flow.source} | {flow.target} | {ports} | {flow.description} |")
    lines += [
        "",
        "| tier | Kubernetes component label | listens on | local only (no flow opens it) |",
        "| --- | --- | --- | --- |",
    ]
    for item in TIERS:
        listens = ", ".join(f"{x.port}/{x.protocol} `{x.name}`" for x in item.listeners)
        local = ", ".join(f"{x.port}/{x.protocol}" for x in local_only(item.name)) or "—"
        lines.append(f"| {item.name} | `{item.component}` | {listens} | {local} |")
    lines += [
        "",
        "| external source | what it stands for |",
        "| --- | --- |",
        *(f"| {source.name} | {source.description} |" for source in EXTERNALS),
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover - `python -m otelstack.security.flows` prints the tables
    print(markdown(), end="")
