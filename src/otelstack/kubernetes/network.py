"""NetworkPolicies: default deny in every namespace the stack owns, then the flows matrix, nothing else.

The stack owns the platform's namespace, the agents' (:func:`tier_namespace`: the agent DaemonSet runs in
a namespace of its own) and, with Beyla, Beyla's. A peer in the policy's own namespace is a podSelector; a
peer in another namespace is a namespaceSelector (``kubernetes.io/metadata.name``) and a podSelector in
one element, so it matches those pods of that namespace only.

The matrix is ``otelstack.security.flows`` — the one the VM firewall renders to nftables. For every tier the
stack runs (:data:`DEPLOYED_TIERS`), one NetworkPolicy selects its pods by the tier's labels and holds

- one ingress rule per flow into the tier whose source is present: a tier the stack runs (podSelector by
  its labels) or an external source (``apps``, ``operators``) given in the stack file (namespaceSelector
  and/or ipBlock); the ports are the tier's named listeners, which are its containers' port names;
- one egress rule per flow out of the tier whose target is reachable: a tier the stack runs (podSelector,
  named ports) or a tier outside the cluster the spec sends to (ipBlock from ``networkPolicies.outside``,
  any address otherwise, on the port of the spec's endpoint for the gateways' flows, the matrix's port for
  the others' (Prometheus' scrapes, Grafana's queries));
- egress to the cluster DNS, and for the tiers that call the Kubernetes API (:data:`API_CALLERS`) egress
  to the API server and the kubelets. NetworkPolicy cannot select the API server (it is not a pod), so its
  addresses come from ``networkPolicies.apiServer.cidrs`` (docs/kubernetes/network-policies.md).

Each policy names its rules, in order, in the annotations ``otelstack.io/ingress-rules`` and
``otelstack.io/egress-rules`` (flow names, or ``dns``/``kube-apiserver``/``kubelet``/``postgresql``), so
a reader — and the tests — can tell which flow opened which rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from otelstack.kubernetes import beyla, clickhouse, clickhouse_altinity, clickhouse_server, grafana
from otelstack.kubernetes.objects import Component, K8sObject, metadata, obj
from otelstack.security import flows, layout

if TYPE_CHECKING:
    from otelstack.kubernetes.stack import StackContext
    from otelstack.model.spec import PlatformSpec

API = "networking.k8s.io/v1"
COMPONENT = "network-policies"
INGRESS_ANNOTATION = "otelstack.io/ingress-rules"
EGRESS_ANNOTATION = "otelstack.io/egress-rules"
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace
KUBELET_PORT = 10250
ANY_ADDRESS = ("0.0.0.0/0", "::/0")

# The tiers the stack runs, each with the settings that switch it on. A backend the stack does not run
# (cluster.backends.<name>.enabled off) is a target outside the cluster.
DEPLOYED_TIERS: tuple[tuple[str, Callable[[StackContext], bool]], ...] = (
    ("agents", lambda ctx: True),
    ("gateways", lambda ctx: True),
    ("opamp_servers", lambda ctx: ctx.cluster.opamp_server.enabled),
    ("prometheus", lambda ctx: ctx.cluster.backends.prometheus.enabled),
    ("alertmanager", lambda ctx: ctx.cluster.backends.alertmanager.enabled),
    ("tempo", lambda ctx: ctx.cluster.backends.tempo.enabled),
    ("loki", lambda ctx: ctx.cluster.backends.loki.enabled),
    ("grafana", lambda ctx: ctx.cluster.backends.grafana.enabled),
    ("clickhouse", lambda ctx: ctx.cluster.backends.clickhouse.enabled),
)
# Egress outside the flows matrix: Alertmanager's receivers (PagerDuty, Slack, webhooks: HTTPS to addresses
# the stack cannot know), Tempo's object storage (the spec's S3 endpoint) and Grafana's plugin download.
RECEIVERS_PORT = 443

# Tiers whose workloads call the Kubernetes API: the agents' k8s_attributes processor (and the k8s resolver
# of the load_balancing exporter) call the API server; kubelet_stats calls the kubelet on its node;
# Prometheus finds the collectors' pods through the API server (kubernetes_sd_configs).
API_CALLERS: dict[str, tuple[str, ...]] = {"agents": ("kube-apiserver", "kubelet"), "prometheus": ("kube-apiserver",)}


def deployed_tiers(ctx: StackContext) -> tuple[str, ...]:
    """The flows matrix's tiers the stack runs in these settings, in matrix order."""
    return tuple(name for name, runs in DEPLOYED_TIERS if runs(ctx))


def _url_port(url: str, defaults: dict[str, int]) -> int:
    parts = urlsplit(url)
    return parts.port or defaults[parts.scheme]


def outside_ports(spec: PlatformSpec, tier: str) -> tuple[int, ...] | None:
    """The port(s) the spec sends to when `tier` runs outside the cluster; None: the spec does not use it."""
    backends = spec.backends
    if tier == "clickhouse" and backends.clickhouse.enabled:
        url = backends.clickhouse.endpoint
        native = layout.CLICKHOUSE_NATIVE_TLS_PORT if "secure=true" in url.lower() else layout.CLICKHOUSE_NATIVE_PORT
        defaults = {"tcp": native, "clickhouse": native, "http": layout.CLICKHOUSE_HTTP_PORT}
        return (_url_port(url, {**defaults, "https": layout.CLICKHOUSE_HTTPS_PORT}),)
    if tier == "tempo" and backends.tempo.enabled:
        return (int(backends.tempo.endpoint.rsplit(":", 1)[1]),)
    if tier == "loki" and backends.loki.enabled:
        return (_url_port(backends.loki.endpoint, {"http": 80, "https": 443}),)
    if tier == "prometheus" and backends.prometheus.enabled:
        return (_url_port(backends.prometheus.endpoint, {"http": 80, "https": 443}),)
    if tier == "opamp_servers":
        return (_url_port(spec.security.opamp.endpoint, {"ws": 80, "wss": 443, "http": 80, "https": 443}),)
    return None


def _ip_blocks(cidrs: list[str] | tuple[str, ...]) -> list[K8sObject]:
    return [{"ipBlock": {"cidr": cidr}} for cidr in (cidrs or ANY_ADDRESS)]


def _numbered(ports: tuple[int, ...] | list[int], protocol: str = "TCP") -> list[K8sObject]:
    return [{"protocol": protocol, "port": port} for port in ports]


def _named(listeners: tuple[flows.Listener, ...]) -> list[K8sObject]:
    return [{"protocol": item.protocol.upper(), "port": item.name} for item in listeners]


def _served(ctx: StackContext, tier: str, listeners: tuple[flows.Listener, ...]) -> tuple[flows.Listener, ...]:
    """The listeners the pods of `tier` serve for the matrix's: an in-cluster ClickHouse without TLS serves
    its plaintext ports (clickhouse_server.serve)."""
    if tier != clickhouse_server.CLICKHOUSE.name:
        return listeners
    if clickhouse_server.mode(ctx) == "altinity":
        return tuple(map(clickhouse_altinity.served(ctx), listeners))
    return tuple(map(clickhouse_server.serve(ctx), listeners))


def _altinity(ctx: StackContext) -> bool:
    return clickhouse_server.runs(ctx) and clickhouse_server.mode(ctx) == "altinity"


def _clickhouse_peers(ctx: StackContext) -> tuple[K8sObject, tuple[flows.Listener, ...]]:
    """The replicas of the operator's cluster as a peer, and what they call on each other: interserver
    HTTP (part fetches) and the native protocol (Distributed queries, ON CLUSTER DDL)."""
    tier = flows.tier(clickhouse_server.CLICKHOUSE.name)
    native = _served(ctx, tier.name, (tier.listener(layout.CLICKHOUSE_NATIVE_TLS_PORT, "tcp"),))
    return _pods(ctx, tier.name, ctx.namespace), (*native, clickhouse_altinity.INTERSERVER)


def _keeper_pods() -> K8sObject:
    keeper = clickhouse_altinity.KEEPER
    return {"podSelector": {"matchLabels": {flows.PART_OF_LABEL: flows.PART_OF, flows.COMPONENT_LABEL: keeper}}}


def _clickhouse_ingress(ctx: StackContext) -> list[tuple[str, K8sObject]]:
    """Into an in-cluster ClickHouse besides the matrix: the operator's replicas and the operator (mode
    altinity), and the schema Job (its runner calls the HTTP(S) interface)."""
    rules = _altinity_ingress(ctx) if _altinity(ctx) else []
    if clickhouse.runs(ctx):
        job = {"podSelector": {"matchLabels": _schema_job_labels()}}
        rules.append((clickhouse.COMPONENT, {"from": [job], "ports": _named((_schema_job_listener(ctx),))}))
    return rules


def _altinity_ingress(ctx: StackContext) -> list[tuple[str, K8sObject]]:
    """Into the operator's ClickHouse pods besides the matrix: the other replicas, and the operator itself
    (it queries every host over the HTTP(S) interface)."""
    replicas, calls = _clickhouse_peers(ctx)
    tier = flows.tier(clickhouse_server.CLICKHOUSE.name)
    http = _served(ctx, tier.name, (tier.listener(layout.CLICKHOUSE_HTTPS_PORT, "tcp"),))
    operator = _in_namespace(clickhouse_altinity.OPERATOR_NAMESPACE, clickhouse_altinity.OPERATOR_POD_LABELS)
    return [
        ("clickhouse-replicas", {"from": [replicas], "ports": _named(calls)}),
        ("clickhouse-operator", {"from": [operator], "ports": _named(http)}),
    ]


def _altinity_egress(ctx: StackContext) -> list[tuple[str, K8sObject]]:
    replicas, calls = _clickhouse_peers(ctx)
    return [
        ("clickhouse-replicas", {"to": [replicas], "ports": _named(calls)}),
        ("clickhouse-keeper", {"to": [_keeper_pods()], "ports": _named((clickhouse_altinity.KEEPER_CLIENT,))}),
    ]


def keeper_policy(ctx: StackContext) -> K8sObject:
    """The operator's Keeper pods: ClickHouse calls them on the ZooKeeper port, they speak Raft to each other."""
    clickhouse_pods = _pods(ctx, clickhouse_server.CLICKHOUSE.name, ctx.namespace)
    raft = {"ports": _named((clickhouse_altinity.KEEPER_RAFT,))}
    ingress = (
        ["clickhouse-keeper", "keeper-raft"],
        [
            {"from": [clickhouse_pods], "ports": _named((clickhouse_altinity.KEEPER_CLIENT,))},
            {"from": [_keeper_pods()], **raft},
        ],
    )
    egress = (["keeper-raft", "dns"], [{"to": [_keeper_pods()], **raft}, _dns_rule(ctx)])
    selector = _keeper_pods()["podSelector"]
    return _policy(ctx, f"otelstack-{clickhouse_altinity.KEEPER}", ctx.namespace, selector, ingress, egress)


def tier_namespace(ctx: StackContext, tier: str) -> str:
    """The namespace a tier the stack runs is in: the agents' own, or the platform's."""
    return ctx.agent_namespace if tier == "agents" else ctx.namespace


def _pods(ctx: StackContext, tier: str, here: str) -> K8sObject:
    """The pods of `tier` as a peer of a policy in namespace `here`."""
    pod_labels = dict(flows.tier(tier).labels)
    there = tier_namespace(ctx, tier)
    return {"podSelector": {"matchLabels": pod_labels}} if there == here else _in_namespace(there, pod_labels)


def _in_namespace(namespace: str, pod_labels: dict[str, str]) -> K8sObject:
    return {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: namespace}},
        "podSelector": {"matchLabels": dict(pod_labels)},
    }


def _external_peers(ctx: StackContext, name: str, target: str) -> list[K8sObject]:
    """Peers of external source `name` from the stack file; Beyla counts among `apps` toward the agents."""
    settings = ctx.cluster.network_policies
    peers_of = {"apps": settings.apps, "operators": settings.operators}
    given = peers_of[name]
    peers: list[K8sObject] = []
    if given.namespace_labels:
        peers.append({"namespaceSelector": {"matchLabels": dict(given.namespace_labels)}})
    peers += [{"ipBlock": {"cidr": cidr}} for cidr in given.cidrs]
    if name == "apps" and target == beyla.TARGET_TIER and ctx.cluster.beyla.enabled:
        if beyla.host_network(ctx.cluster.beyla):
            # A host-network pod connects from its node's address; NetworkPolicy sees no pod.
            peers += [{"ipBlock": {"cidr": cidr}} for cidr in settings.node_cidrs]
        else:
            peers.append(_in_namespace(beyla.namespace(ctx), beyla.pod_labels()))
    return peers


def _ingress(ctx: StackContext, tier: str, running: tuple[str, ...]) -> tuple[list[str], list[K8sObject]]:
    names: list[str] = []
    rules: list[K8sObject] = []
    here = tier_namespace(ctx, tier)
    for rule in flows.inbound_rules(tier):
        if rule.peer.kind == "tier":
            peers = [_pods(ctx, rule.peer.name, here)] if rule.peer.name in running else []
        else:
            peers = _external_peers(ctx, rule.peer.name, tier)
        if peers:
            names.append(rule.flow)
            rules.append({"from": peers, "ports": _named(_served(ctx, tier, rule.listeners))})
    for name, extra in _clickhouse_ingress(ctx) if tier == clickhouse_server.CLICKHOUSE.name else ():
        names.append(name)
        rules.append(extra)
    return names, rules


def _dns_rule(ctx: StackContext) -> K8sObject:
    dns = ctx.cluster.network_policies.dns
    return {"to": [_in_namespace(dns.namespace, dns.pod_labels)], "ports": _numbered([53], "UDP") + _numbered([53])}


def _api_rules(ctx: StackContext, tier: str) -> list[tuple[str, K8sObject]]:
    settings = ctx.cluster.network_policies
    rules: list[tuple[str, K8sObject]] = []
    for name in API_CALLERS.get(tier, ()):
        if name == "kube-apiserver":
            rules.append(
                (name, {"to": _ip_blocks(settings.api_server.cidrs), "ports": _numbered(settings.api_server.ports)})
            )
        else:
            rules.append((name, {"to": _ip_blocks(settings.node_cidrs), "ports": _numbered([KUBELET_PORT])}))
    return rules


def _egress(ctx: StackContext, tier: str, running: tuple[str, ...]) -> tuple[list[str], list[K8sObject]]:
    names: list[str] = []
    rules: list[K8sObject] = []
    outside = ctx.cluster.network_policies.outside
    for flow in flows.FLOWS:
        if flow.source != tier:
            continue
        if flow.target in running:
            target = flows.tier(flow.target)
            listeners = _served(ctx, flow.target, tuple(target.listener(port, flow.protocol) for port in flow.ports))
            rule: K8sObject = {"to": [_pods(ctx, flow.target, tier_namespace(ctx, tier))], "ports": _named(listeners)}
        else:
            ports = outside_ports(ctx.spec, flow.target)
            if ports is None:
                continue
            if flow.source != "gateways":
                # The gateways send to the spec's endpoint (its port); other sources scrape or query the
                # backend on the matrix's own port (Prometheus → ClickHouse's metrics port, …).
                ports = flow.ports
            rule = {"to": _ip_blocks(outside.get(flow.target, [])), "ports": _numbered(ports, flow.protocol.upper())}
        names.append(flow.name)
        rules.append(rule)
    for name, extra in _altinity_egress(ctx) if tier == clickhouse_server.CLICKHOUSE.name and _altinity(ctx) else ():
        names.append(name)
        rules.append(extra)
    names.append("dns")
    rules.append(_dns_rule(ctx))
    for name, api_rule in _api_rules(ctx, tier):
        names.append(name)
        rules.append(api_rule)
    if tier == "alertmanager" and ctx.spec.alerting.receivers:
        names.append("receivers")
        rules.append({"to": _ip_blocks([]), "ports": _numbered([RECEIVERS_PORT])})
    storage = ctx.spec.backends.tempo.storage
    if tier == "tempo" and storage.kind == "s3" and storage.endpoint:
        names.append("object-storage")
        rules.append({"to": _ip_blocks([]), "ports": _numbered([int(storage.endpoint.rsplit(":", 1)[1])])})
    plugins = grafana.plugin_egress(ctx) if tier == "grafana" else None
    if plugins is not None:  # the ClickHouse datasource plugin, from grafana.com (grafana.py)
        names.append("plugins")
        rules.append(plugins)
    postgresql = ctx.cluster.opamp_server.postgresql
    if tier == "opamp_servers" and postgresql is not None:
        names.append("postgresql")
        rules.append(
            {
                "to": _ip_blocks([]),
                "ports": _numbered([_url_port(postgresql.url, {"postgresql": 5432, "postgres": 5432})]),
            }
        )
    return names, rules


def _policy(
    ctx: StackContext,
    name: str,
    namespace: str,
    pod_selector: K8sObject,
    ingress: tuple[list[str], list[K8sObject]] = ([], []),
    egress: tuple[list[str], list[K8sObject]] = ([], []),
) -> K8sObject:
    annotations = {}
    if ingress[0]:
        annotations[INGRESS_ANNOTATION] = ",".join(ingress[0])
    if egress[0]:
        annotations[EGRESS_ANNOTATION] = ",".join(egress[0])
    spec: K8sObject = {"podSelector": pod_selector, "policyTypes": ["Ingress", "Egress"]}
    if ingress[1]:
        spec["ingress"] = ingress[1]
    if egress[1]:
        spec["egress"] = egress[1]
    meta = metadata(name, COMPONENT, namespace=namespace, environment=ctx.spec.environment, annotations=annotations)
    return obj(API, "NetworkPolicy", meta, spec=spec)


def default_deny(ctx: StackContext, namespace: str) -> K8sObject:
    """Every pod of `namespace`: no ingress, no egress, unless another policy of the namespace allows it."""
    return _policy(ctx, "otelstack-default-deny", namespace, {})


def tier_policy(ctx: StackContext, tier: str) -> K8sObject:
    running = deployed_tiers(ctx)
    item = flows.tier(tier)
    selector = {"matchLabels": dict(item.labels)}
    return _policy(
        ctx,
        f"otelstack-{item.component}",
        tier_namespace(ctx, tier),
        selector,
        _ingress(ctx, tier, running),
        _egress(ctx, tier, running),
    )


def beyla_policy(ctx: StackContext) -> K8sObject:
    """Beyla sends OTLP to the agents (the flow apps-to-agent), resolves names and reads pod metadata."""
    agents = flows.tier(beyla.TARGET_TIER)
    otlp = tuple(agents.listener(port, "tcp") for port in (layout.OTLP_GRPC_PORT, layout.OTLP_HTTP_PORT))
    settings = ctx.cluster.network_policies
    names = ["apps-to-agent", "dns", "kube-apiserver"]
    rules = [
        {"to": [_in_namespace(tier_namespace(ctx, beyla.TARGET_TIER), agents.labels)], "ports": _named(otlp)},
        _dns_rule(ctx),
        {"to": _ip_blocks(settings.api_server.cidrs), "ports": _numbered(settings.api_server.ports)},
    ]
    return _policy(
        ctx,
        "otelstack-beyla",
        beyla.namespace(ctx),
        {"matchLabels": beyla.pod_labels()},
        egress=(names, rules),
    )


def _schema_job_labels() -> dict[str, str]:
    return {flows.PART_OF_LABEL: flows.PART_OF, flows.COMPONENT_LABEL: clickhouse.COMPONENT}


def _schema_job_listener(ctx: StackContext) -> flows.Listener:
    """The in-cluster ClickHouse's HTTP(S) listener, which the schema Job's runner calls."""
    tier = flows.tier(clickhouse_server.CLICKHOUSE.name)
    return _served(ctx, tier.name, (tier.listener(layout.CLICKHOUSE_HTTPS_PORT, "tcp"),))[0]


def schema_job_policy(ctx: StackContext) -> K8sObject:
    """The ClickHouse schema Job (clickhouse.py) calls ClickHouse's HTTP(S) interface and resolves names;
    it takes no connection. ClickHouse in the cluster: its pods, on the named HTTP(S) port (the ClickHouse
    policy lets the Job in); outside: ``networkPolicies.outside.clickhouse`` or any address, on the runner's
    port only."""
    if clickhouse_server.runs(ctx):
        pods = _pods(ctx, clickhouse_server.CLICKHOUSE.name, ctx.namespace)
        to_clickhouse: K8sObject = {"to": [pods], "ports": _named((_schema_job_listener(ctx),))}
    else:
        target = urlsplit(clickhouse.url(ctx))
        port = target.port or {"http": 80, "https": 443}[target.scheme]
        outside = ctx.cluster.network_policies.outside.get("clickhouse", [])
        to_clickhouse = {"to": _ip_blocks(outside), "ports": _numbered([port])}
    egress = (["clickhouse", "dns"], [to_clickhouse, _dns_rule(ctx)])
    selector = {"matchLabels": _schema_job_labels()}
    return _policy(ctx, f"otelstack-{clickhouse.COMPONENT}", ctx.namespace, selector, egress=egress)


# The operator's manager pods (config/manager/manager.yaml of the pinned kustomization) and its ports:
# the webhook server (config/default/manager_webhook_patch.yaml) and the metrics endpoint.
OPERATOR_POD_LABELS = {"app.kubernetes.io/name": "opentelemetry-operator", "control-plane": "controller-manager"}
OPERATOR_WEBHOOK_PORT = 9443
OPERATOR_METRICS_PORT = 8443


def operator_policies(ctx: StackContext) -> list[K8sObject]:
    """The installed operator's namespace: default deny; its manager takes webhook calls (from the API
    server, whose address `networkPolicies.apiServer.cidrs` may narrow) and metrics scrapes, and calls DNS
    and the API server."""
    settings = ctx.cluster.network_policies
    namespace = ctx.cluster.operator_namespace
    ingress = (
        ["kube-apiserver-to-webhook", "metrics"],
        [
            {"from": _ip_blocks(settings.api_server.cidrs), "ports": _numbered([OPERATOR_WEBHOOK_PORT])},
            {"ports": _numbered([OPERATOR_METRICS_PORT])},
        ],
    )
    egress = (
        ["dns", "kube-apiserver"],
        [_dns_rule(ctx), {"to": _ip_blocks(settings.api_server.cidrs), "ports": _numbered(settings.api_server.ports)}],
    )
    selector = {"matchLabels": dict(OPERATOR_POD_LABELS)}
    return [
        default_deny(ctx, namespace),
        _policy(ctx, "otelstack-opentelemetry-operator", namespace, selector, ingress, egress),
    ]


def component(ctx: StackContext) -> Component | None:
    if not ctx.cluster.network_policies.enabled:
        return None
    objects = [default_deny(ctx, ctx.namespace), default_deny(ctx, ctx.agent_namespace)]
    objects += [tier_policy(ctx, tier) for tier in deployed_tiers(ctx)]
    if clickhouse.runs(ctx):
        objects.append(schema_job_policy(ctx))
    if _altinity(ctx):
        objects.append(keeper_policy(ctx))
    depends = ["namespace"]
    if ctx.cluster.beyla.enabled:
        objects += [default_deny(ctx, beyla.namespace(ctx)), beyla_policy(ctx)]
        depends.append("beyla")
    return Component(COMPONENT, tuple(objects), depends_on=tuple(depends))
