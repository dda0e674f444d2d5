"""Beyla (grafana/beyla, pinned in ClusterSettings.beyla.image): eBPF auto-instrumentation as a DaemonSet.

Least privilege, not ``privileged``: the container runs as root (Linux grants added capabilities only to
uid 0 here; Kubernetes has no ambient capabilities), drops ALL and adds only the capabilities of the
features chosen in ``cluster.beyla.features`` (:data:`CAPABILITIES`, from Beyla v3.33.0's
docs/sources/security.md). ``hostPID`` for application observability (it must see every process of its
node), ``hostNetwork`` for network observability and context propagation (they attach to the node's
interfaces). Those host namespaces, hostPath mounts and capabilities are what Pod Security "privileged"
alone admits, so Beyla gets its own namespace at that level and the platform's namespace stays
"restricted" (docs/kubernetes/beyla.md).

Beyla sends OTLP/gRPC to the node-local agent Service ``otel-agent.<agents' namespace>.svc``
(internalTrafficPolicy: Local), the flow ``apps-to-agent`` of the flows matrix.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from otelstack.kubernetes.namespace import namespace_object
from otelstack.kubernetes.objects import (
    AGENT_NAME,
    CONFIG_CHECKSUM_ANNOTATION,
    Component,
    K8sObject,
    checkov_skips,
    metadata,
    obj,
    resources,
    selector_labels,
)
from otelstack.model.spec import TlsMode
from otelstack.security import layout
from otelstack.yamlout import dump

if TYPE_CHECKING:
    from otelstack.kubernetes.settings import Beyla
    from otelstack.kubernetes.stack import StackContext

COMPONENT = "beyla"
NAME = "beyla"
TARGET_TIER = "agents"  # the flows matrix's tier Beyla sends to (it is one of the `apps`)
CONFIG_FILE = "beyla-config.yml"
CONFIG_DIR = "/etc/beyla/config"
HEALTH_PORT = 8099  # health_check.port: GET /healthz (vendor/go.opentelemetry.io/obi/pkg/health, v3.33.0)

# Linux capabilities per feature, from Beyla v3.33.0 docs/sources/security.md ("Beyla operation modes" and
# the tracer reference): each feature adds its set; the union is what the container gets.
CAPABILITIES: dict[str, tuple[str, ...]] = {
    # The watcher and the tracers of every language: load BPF programs (BPF, PERFMON), read /proc/<pid>/exe
    # and the executables (SYS_PTRACE, DAC_READ_SEARCH, CHECKPOINT_RESTORE), the HTTP socket filter (NET_RAW).
    "application": ("BPF", "CHECKPOINT_RESTORE", "DAC_READ_SEARCH", "NET_RAW", "PERFMON", "SYS_PTRACE"),
    # Network flows from a socket filter (network.source: socket_filter): an AF_PACKET socket and BPF.
    "network": ("BPF", "NET_RAW"),
    # Trace context propagation loads traffic-control programs (BPF_PROG_TYPE_SCHED_CLS).
    "context_propagation": ("NET_ADMIN",),
}


def capabilities(settings: Beyla) -> tuple[str, ...]:
    """The least capability set for the chosen features (sorted)."""
    return tuple(sorted({cap for feature in settings.features for cap in CAPABILITIES[feature]}))


def host_network(settings: Beyla) -> bool:
    """Network observability and context propagation attach to the node's interfaces."""
    return bool({"network", "context_propagation"} & set(settings.features))


def namespace(ctx: StackContext) -> str:
    return ctx.cluster.beyla.namespace or f"{ctx.namespace}-beyla"


def pod_labels() -> dict[str, str]:
    return selector_labels(COMPONENT, NAME)


def agent_otlp_url(ctx: StackContext, port: int) -> str:
    """The node-local agent Service's OTLP URL (``otel-agent`` in the agents' namespace, internalTrafficPolicy:
    Local) for workloads that send to it (plaintext: apps_to_agent is insecure)."""
    mode = ctx.spec.security.tls.apps_to_agent
    if mode is not TlsMode.INSECURE:
        raise ValueError(
            f"security.tls.apps_to_agent is {mode.value!r}: sending to the agent over TLS from Beyla and "
            "operator-injected SDKs is not supported yet (their CA would have to be in every application "
            "namespace); allowed: insecure (node-local plaintext, the Service has internalTrafficPolicy: Local)"
        )
    return f"http://{AGENT_NAME}.{ctx.agent_namespace}.svc:{port}"


def config(ctx: StackContext) -> dict[str, Any]:
    """Beyla's YAML configuration (keys of Beyla v3.33.0's docs/config-schema.json)."""
    settings = ctx.cluster.beyla
    kubernetes: dict[str, Any] = {"enable": "true"}
    if ctx.spec.cluster_name:
        kubernetes["cluster_name"] = ctx.spec.cluster_name
    result: dict[str, Any] = {
        "log_level": "INFO",
        # Missing capabilities stop Beyla at startup instead of failing later, feature by feature.
        "enforce_sys_caps": True,
        "health_check": {"listen_address": "0.0.0.0", "port": HEALTH_PORT},
        "attributes": {"kubernetes": kubernetes},
    }
    features = []
    if "application" in settings.features:
        result["discovery"] = {
            "instrument": [{"k8s_namespace": glob} for glob in settings.instrument_namespaces],
            # The platform's own workloads report through their own telemetry.
            "exclude_instrument": [
                {"k8s_namespace": ns} for ns in (ctx.namespace, ctx.agent_namespace, namespace(ctx))
            ],
        }
        result["ebpf"] = {"context_propagation": "all" if "context_propagation" in settings.features else "disabled"}
        result["otel_traces_export"] = {"protocol": "grpc"}
        features.append("application")
    if "network" in settings.features:
        result["network"] = {"enable": True, "source": "socket_filter"}
        features.append("network")
    result["otel_metrics_export"] = {"protocol": "grpc", "features": features}
    return result


def _container(ctx: StackContext, settings: Beyla) -> K8sObject:
    security = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"add": list(capabilities(settings)), "drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        # Added capabilities are effective for uid 0 only (Kubernetes sets no ambient capabilities).
        "runAsNonRoot": False,
        "runAsUser": 0,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    mounts = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "var-run-beyla", "mountPath": "/var/run/beyla"},
        {"name": "cgroup", "mountPath": "/sys/fs/cgroup", "readOnly": True},
        {"name": "tracefs", "mountPath": "/sys/kernel/tracing", "readOnly": True},
    ]
    probe = {"httpGet": {"path": "/healthz", "port": "health"}, "periodSeconds": 30, "timeoutSeconds": 5}
    return {
        "name": NAME,
        "image": settings.image.reference,
        "imagePullPolicy": "IfNotPresent",
        "env": [
            {"name": "BEYLA_CONFIG_PATH", "value": f"{CONFIG_DIR}/{CONFIG_FILE}"},
            {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": agent_otlp_url(ctx, layout.OTLP_GRPC_PORT)},
            {"name": "OTEL_EXPORTER_OTLP_PROTOCOL", "value": "grpc"},
        ],
        "ports": [{"name": "health", "containerPort": HEALTH_PORT, "protocol": "TCP"}],
        "livenessProbe": {**probe, "initialDelaySeconds": 30},
        "readinessProbe": probe,
        "resources": resources(0.1, 1.0, 256, 1024),
        "securityContext": security,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": mounts,
    }


# checkov's findings that are Beyla's documented needs (docs/kubernetes/beyla.md), skipped on its DaemonSet
# alone (checkov reads `checkov.io/skipN: CHECK=reason` annotations), so any other workload is still held to them.
CHECKOV_EXCEPTIONS = {
    "hostPID": ("CKV_K8S_17", "application observability attaches eBPF probes to every process of the node"),
    "hostNetwork": ("CKV_K8S_19", "network observability and context propagation watch the node's interfaces"),
}
CHECKOV_ROOT = (
    ("CKV_K8S_23", "added capabilities take effect only for uid 0 (docs/kubernetes/beyla.md)"),
    ("CKV_K8S_40", "the same uid 0 exception"),
    ("CKV_K8S_38", "Beyla reads pod metadata from the API to decorate its telemetry"),
)
CHECKOV_CAPABILITIES = ("CKV_K8S_25", "eBPF needs the capabilities of the chosen features, nothing more (CAPABILITIES)")


def checkov_exceptions(pod: K8sObject) -> dict[str, str]:
    """The checkov skips this pod spec needs, as annotations naming each check and its reason."""
    return checkov_skips(
        [CHECKOV_EXCEPTIONS[key] for key in CHECKOV_EXCEPTIONS if pod.get(key)] + [CHECKOV_CAPABILITIES, *CHECKOV_ROOT]
    )


def daemonset(ctx: StackContext, config_text: str) -> K8sObject:
    settings = ctx.cluster.beyla
    pod: K8sObject = {"serviceAccountName": NAME, "automountServiceAccountToken": True}
    if "application" in settings.features:
        pod["hostPID"] = True
    if host_network(settings):
        pod["hostNetwork"] = True
        pod["dnsPolicy"] = "ClusterFirstWithHostNet"
    pod["priorityClassName"] = "system-node-critical"
    pod["nodeSelector"] = {"kubernetes.io/os": "linux", **ctx.cluster.node_selector}
    # Like the agents it sends to, Beyla runs on every node, tainted or not.
    pod["tolerations"] = [{"operator": "Exists", "effect": "NoSchedule"}, {"operator": "Exists", "effect": "NoExecute"}]
    pod["securityContext"] = {"seccompProfile": {"type": "RuntimeDefault"}}
    pod["containers"] = [_container(ctx, settings)]
    pod["volumes"] = [
        {"name": "config", "configMap": {"name": NAME}},
        {"name": "var-run-beyla", "emptyDir": {"sizeLimit": "64Mi"}},
        {"name": "cgroup", "hostPath": {"path": "/sys/fs/cgroup", "type": "Directory"}},
        {"name": "tracefs", "hostPath": {"path": "/sys/kernel/tracing", "type": "Directory"}},
    ]
    checksum = hashlib.sha256(config_text.encode()).hexdigest()
    template = {
        "metadata": {"labels": pod_labels(), "annotations": {CONFIG_CHECKSUM_ANNOTATION: checksum}},
        "spec": pod,
    }
    return obj(
        "apps/v1",
        "DaemonSet",
        metadata(
            NAME,
            COMPONENT,
            namespace=namespace(ctx),
            environment=ctx.spec.environment,
            annotations=checkov_exceptions(pod),
        ),
        spec={
            "selector": {"matchLabels": pod_labels()},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": template,
        },
    )


def rbac(ctx: StackContext) -> tuple[K8sObject, ...]:
    """Read access for the Kubernetes metadata decoration (Beyla v3.33.0 charts/beyla cluster-role.yaml)."""
    env = ctx.spec.environment
    ns = namespace(ctx)
    cluster_name = f"otelstack-{ns}-beyla"
    return (
        obj("v1", "ServiceAccount", metadata(NAME, COMPONENT, namespace=ns, environment=env)),
        obj(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            metadata(cluster_name, COMPONENT, environment=env, app=NAME),
            rules=[
                {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["list", "watch"]},
                {"apiGroups": [""], "resources": ["nodes", "pods", "services"], "verbs": ["get", "list", "watch"]},
            ],
        ),
        obj(
            "rbac.authorization.k8s.io/v1",
            "ClusterRoleBinding",
            metadata(cluster_name, COMPONENT, environment=env, app=NAME),
            roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_name},
            subjects=[{"kind": "ServiceAccount", "name": NAME, "namespace": ns}],
        ),
    )


def component(ctx: StackContext) -> Component | None:
    if not ctx.cluster.beyla.enabled:
        return None
    config_text = dump(config(ctx))
    config_map = obj(
        "v1",
        "ConfigMap",
        metadata(NAME, COMPONENT, namespace=namespace(ctx), environment=ctx.spec.environment),
        data={CONFIG_FILE: config_text},
    )
    return Component(
        COMPONENT,
        (
            namespace_object(namespace(ctx), ctx.spec.environment, level="privileged"),
            *rbac(ctx),
            config_map,
            daemonset(ctx, config_text),
        ),
        depends_on=("namespace", "agent"),
    )
