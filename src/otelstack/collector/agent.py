"""Agent tier (per VM or per Kubernetes node): collect locally, balance traces by trace ID to gateways."""

from __future__ import annotations

from otelstack.collector.blocks import (
    Config,
    Paths,
    cid,
    client_tls,
    env_ref,
    file_storage,
    health_check_extension,
    memory_limiter,
    retry_on_failure,
    sending_queue,
    server_tls,
    telemetry,
)
from otelstack.collector.opamp import opamp_extension
from otelstack.errors import ConfigValidationError
from otelstack.model.spec import JournaldLogs, PlatformSpec, TlsMode
from otelstack.security.layout import OTLP_GRPC_PORT, OTLP_HTTP_PORT

# Kubernetes' default DNS domain; a stack with another one passes its `clusterDomain` (render.build_collector).
DEFAULT_CLUSTER_DOMAIN = "cluster.local"

AGENT_QUEUE_SIZE = 5000


def render_agent(
    spec: PlatformSpec,
    paths: Paths,
    *,
    kubernetes: bool,
    opamp_extension_enabled: bool,
    cluster_domain: str = DEFAULT_CLUSTER_DOMAIN,
) -> Config:
    """The agent profile. ``opamp_extension_enabled`` is False when a supervisor injects its own."""
    tier = spec.tiers.agent
    hop = spec.security.tls.agent_to_gateway
    apps_tls = server_tls(spec.security.tls.apps_to_agent, paths, spec)
    # Plaintext from apps is node-local: loopback on VMs, the node's pods via hostPort on Kubernetes.
    bind = "0.0.0.0" if kubernetes or apps_tls else "127.0.0.1"

    ext_health = cid("extension", "health_check")
    ext_checkpoints = cid("extension", "file_storage", "checkpoints")
    ext_queue = cid("extension", "file_storage", "queue")
    ext_auth = cid("extension", "bearertokenauth", "gateway")
    extensions: Config = {
        ext_health: health_check_extension("0.0.0.0"),
        ext_checkpoints: file_storage(paths.checkpoint_dir),
        ext_queue: file_storage(paths.queue_dir),
    }
    auth = spec.security.receiver_auth.kind == "bearer"
    if auth:
        extensions[ext_auth] = {"token": env_ref(spec.security.receiver_auth.token)}
    if opamp_extension_enabled:
        extensions[cid("extension", "opamp")] = opamp_extension(spec, paths)

    otlp_rx = cid("receiver", "otlp")
    grpc: Config = {"endpoint": f"{bind}:{OTLP_GRPC_PORT}", "max_recv_msg_size_mib": 16}
    http: Config = {"endpoint": f"{bind}:{OTLP_HTTP_PORT}"}
    if apps_tls:
        grpc["tls"] = apps_tls
        http["tls"] = dict(apps_tls)
    receivers: Config = {otlp_rx: {"protocols": {"grpc": grpc, "http": http}}}

    if kubernetes:
        logs_rx = cid("receiver", "filelog", "pods")
        receivers[logs_rx] = _pod_logs(ext_checkpoints)
        logs_receivers = [otlp_rx, logs_rx]
        metrics_rx = cid("receiver", "kubeletstats")
        receivers[metrics_rx] = {
            "auth_type": "serviceAccount",
            "endpoint": "https://${env:K8S_NODE_NAME}:10250",
            "collection_interval": tier.kubelet_interval,
            "metric_groups": ["node", "pod", "container"],
            **_kubelet_tls(tier.kubelet_ca),
        }
    else:
        logs_rx = cid("receiver", "filelog", "host")
        receivers[logs_rx] = {
            "include": list(tier.log_include),
            "exclude": list(tier.log_exclude),
            "start_at": "end",
            "include_file_path": True,
            "storage": ext_checkpoints,
        }
        logs_receivers = [otlp_rx, logs_rx]
        if tier.journald.enabled:
            journal_rx = cid("receiver", "journald", "host")
            receivers[journal_rx] = _journal(tier.journald, ext_checkpoints)
            logs_receivers.append(journal_rx)
        metrics_rx = cid("receiver", "hostmetrics")
        receivers[metrics_rx] = {
            "collection_interval": tier.host_metrics_interval,
            "scrapers": {s: {} for s in ("cpu", "disk", "filesystem", "load", "memory", "network", "paging")},
        }

    p_mem = cid("processor", "memory_limiter")
    p_enrich = cid("processor", "k8sattributes") if kubernetes else cid("processor", "resourcedetection")
    p_resource = cid("processor", "resource", "platform")
    p_batch = cid("processor", "batch")
    processors: Config = {
        p_mem: memory_limiter(tier.memory_limit_mib),
        p_enrich: _k8s_attributes() if kubernetes else _resource_detection(),
        p_resource: {"attributes": _resource_attributes(spec)},
        p_batch: {"timeout": "1s", "send_batch_size": 1024, "send_batch_max_size": 2048},
    }

    x_lb = cid("exporter", "loadbalancing")
    x_otlp = cid("exporter", "otlp", "gateway")
    otlp_client: Config = {"tls": client_tls(hop, paths, spec), "compression": "gzip"}
    if auth:
        otlp_client["auth"] = {"authenticator": ext_auth}
    exporters: Config = {
        # The persistent queue sits on the load_balancing exporter itself: its per-gateway sub-exporters
        # all share the `protocol.otlp` settings, so a storage there would give every sub-exporter the
        # same ID and file — all but one fail to start (upstream README, "Resiliency options 2"). The
        # sub-exporters keep a short in-memory retry; what they give up returns to the top-level queue,
        # which re-routes it over the gateways resolved then.
        x_lb: {
            "routing_key": "traceID",
            "timeout": "10s",
            "sending_queue": sending_queue(ext_queue, AGENT_QUEUE_SIZE),
            "retry_on_failure": retry_on_failure(),
            "protocol": {
                "otlp": {
                    **otlp_client,
                    "timeout": "5s",
                    "sending_queue": {"enabled": True, "queue_size": 1000},
                    "retry_on_failure": {**retry_on_failure(), "max_elapsed_time": "30s"},
                }
            },
            "resolver": _resolver(spec, kubernetes),
        },
        x_otlp: {
            "endpoint": _balanced_endpoint(spec, kubernetes, cluster_domain),
            "balancer_name": "round_robin",
            **otlp_client,
            "sending_queue": sending_queue(ext_queue, AGENT_QUEUE_SIZE),
            "retry_on_failure": retry_on_failure(),
        },
    }
    if hop is TlsMode.INSECURE:
        for exporter in (exporters[x_lb]["protocol"]["otlp"], exporters[x_otlp]):
            exporter["tls"] = {"insecure": True}
    elif (service_name := _resolved_service_name(spec, kubernetes, cluster_domain)) is not None:
        # The dns and k8s resolvers hand the sub-exporters IP:port, so Go would check the gateway
        # certificate's IP addresses; verify it against the service name its certificate carries instead.
        exporters[x_lb]["protocol"]["otlp"]["tls"] = {**otlp_client["tls"], "server_name_override": service_name}

    chain = [p_mem, p_enrich, p_resource, p_batch]
    return {
        "extensions": extensions,
        "receivers": receivers,
        "processors": processors,
        "exporters": exporters,
        "service": {
            "extensions": list(extensions),
            "pipelines": {
                "traces": {"receivers": [otlp_rx], "processors": chain, "exporters": [x_lb]},
                "metrics": {"receivers": [otlp_rx, metrics_rx], "processors": chain, "exporters": [x_otlp]},
                "logs": {"receivers": logs_receivers, "processors": chain, "exporters": [x_otlp]},
            },
            "telemetry": telemetry(spec, supervised=not opamp_extension_enabled),
        },
    }


def _resolver(spec: PlatformSpec, kubernetes: bool) -> Config:
    """The gateways' resolver. On Kubernetes always ``k8s``: the gateways are the StatefulSet behind the
    headless Service ``tiers.agent.resolver.k8s_service``, whatever the spec's VM resolver is."""
    r = spec.tiers.agent.resolver
    if kubernetes or r.kind == "k8s":
        return {"k8s": {"service": _k8s_service(spec, kubernetes), "ports": [OTLP_GRPC_PORT]}}
    if r.kind == "static":
        return {"static": {"hostnames": [_with_port(h) for h in r.hostnames]}}
    return {"dns": {"hostname": r.dns_name, "port": str(OTLP_GRPC_PORT)}}


def _k8s_service(spec: PlatformSpec, kubernetes: bool) -> str:
    """``name.namespace`` of the gateways' headless Service. The Kubernetes agent runs in a namespace of its
    own, so a name without a namespace (which the resolver would look up in the agent's) is refused."""
    service = spec.tiers.agent.resolver.k8s_service
    name, _, namespace = service.partition(".")
    if kubernetes and (not name or not namespace or "." in namespace):
        raise ConfigValidationError(
            f"tiers.agent.resolver.k8s_service is {service!r}; the Kubernetes agent runs outside the gateways' "
            "namespace, so it needs <headless service>.<namespace>, e.g. otel-gateway-headless.observability"
        )
    return service


def _resolved_service_name(spec: PlatformSpec, kubernetes: bool, cluster_domain: str) -> str | None:
    """The name the gateways share when a resolver turns it into addresses (dns, k8s); None for static.
    ``cluster_domain``: the cluster's DNS domain (the stack's ``clusterDomain``)."""
    r = spec.tiers.agent.resolver
    if kubernetes or r.kind == "k8s":
        name, _, namespace = _k8s_service(spec, kubernetes).partition(".")
        return f"{name}.{namespace or 'default'}.svc.{cluster_domain}"
    if r.kind == "dns":
        return r.dns_name
    return None


def _balanced_endpoint(spec: PlatformSpec, kubernetes: bool, cluster_domain: str) -> str:
    """One gRPC target that spreads metrics and logs over every gateway (round_robin over DNS)."""
    r = spec.tiers.agent.resolver
    if kubernetes or r.kind == "k8s":
        return f"dns:///{_resolved_service_name(spec, kubernetes, cluster_domain)}:{OTLP_GRPC_PORT}"
    if r.kind == "static":
        return _with_port(r.otlp_target or r.hostnames[0])
    return f"dns:///{r.dns_name}:{OTLP_GRPC_PORT}"


def _with_port(host: str) -> str:
    return host if host.rsplit(":", 1)[-1].isdigit() and ":" in host else f"{host}:{OTLP_GRPC_PORT}"


def _resource_attributes(spec: PlatformSpec) -> list[Config]:
    attrs = [{"key": "deployment.environment.name", "value": spec.environment, "action": "upsert"}]
    if spec.cluster_name:
        attrs.append({"key": "k8s.cluster.name", "value": spec.cluster_name, "action": "insert"})
    if spec.region:
        attrs.append({"key": "cloud.region", "value": spec.region, "action": "insert"})
    return attrs


def _resource_detection() -> Config:
    return {"detectors": ["env", "system"], "timeout": "5s", "override": False}


def _k8s_attributes() -> Config:
    return {
        "auth_type": "serviceAccount",
        "passthrough": False,
        "filter": {"node_from_env_var": "K8S_NODE_NAME"},
        "extract": {
            "metadata": [
                "k8s.namespace.name",
                "k8s.pod.name",
                "k8s.pod.uid",
                "k8s.node.name",
                "k8s.container.name",
                "k8s.deployment.name",
                "k8s.statefulset.name",
                "k8s.daemonset.name",
            ],
            "labels": [
                {"tag_name": "app", "key": "app", "from": "pod"},
                {"tag_name": "service.version", "key": "version", "from": "pod"},
            ],
        },
        "pod_association": [
            {"sources": [{"from": "resource_attribute", "name": "k8s.pod.ip"}]},
            {"sources": [{"from": "resource_attribute", "name": "k8s.pod.uid"}]},
            {"sources": [{"from": "connection"}]},
        ],
    }


# The agent's own namespace, from the pod (downward API metadata.namespace): the stack chooses it
# (cluster.agentNamespace), the spec does not know it, and the config stays the same for every stack.
POD_NAMESPACE_ENV = "K8S_POD_NAMESPACE"


def _pod_logs(storage: str) -> Config:
    """Container logs of every pod on the node, except the agents' own (no feedback loop). Pod log
    directories are ``<namespace>_<pod>_<uid>``; the agent pods are ``otel-agent-<suffix>`` (DaemonSet)."""
    return {
        "include": ["/var/log/pods/*/*/*.log"],
        "exclude": [f"/var/log/pods/${{env:{POD_NAMESPACE_ENV}}}_otel-agent-*/*/*.log"],
        "start_at": "end",
        "include_file_path": True,
        "storage": storage,
        "operators": [{"type": "container", "id": "container-parser"}],
    }


def _journal(journald: JournaldLogs, storage: str) -> Config:
    """The systemd journal (VMs), read by ``journalctl --follow`` as a child of the collector.

    Keys of pkg/stanza v0.159.0 operator/input/journald (start_at, priority, units) and the adapter's
    ``storage``: the receiver keeps its journal cursor there, as file_log keeps its offsets, so a restart
    resumes after the last entry read instead of skipping to the end."""
    config: Config = {"start_at": "end", "priority": journald.priority}
    if journald.units:
        config["units"] = list(journald.units)
    config["storage"] = storage
    config["operators"] = [_journal_severity()]
    return config


def _journal_severity() -> Config:
    """The entry's syslog PRIORITY (0 emerg … 7 debug) as the record's severity.

    Without it every journal record has SEVERITY_NUMBER_UNSPECIFIED and a map body, which the emergency
    filter drops whatever its level. pkg/stanza v0.159.0 severity_parser (helper/severity_builder.go):
    preset ``none`` so the default mapping's OTel numbers ("1"…"24") cannot match a PRIORITY; an entry
    without PRIORITY passes unchanged (``send_quiet``)."""
    return {
        "type": "severity_parser",
        "id": "journal_priority",
        "parse_from": "body.PRIORITY",
        "preset": "none",
        "mapping": {
            "fatal": ["0", "1", "2"],
            "error": "3",
            "warn": "4",
            "info2": "5",
            "info": "6",
            "debug": "7",
        },
        "overwrite_text": True,
        "on_error": "send_quiet",
    }


def _kubelet_tls(choice: str) -> Config:
    """The kubelet's serving certificate: the cluster CA (default), a CA file, or (dev only) unverified.

    kubeadm clusters sign kubelet serving certificates with a per-node self-signed CA unless
    serverTLSBootstrap is on, so the cluster CA does not verify them: give that CA as a file there.
    """
    if choice == "insecure_skip_verify":
        return {"insecure_skip_verify": True}
    if choice.startswith("file:"):
        return {"ca_file": choice.removeprefix("file:")}
    return {}
