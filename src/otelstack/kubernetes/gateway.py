"""The gateway tier on Kubernetes: a StatefulSet running the plan's ``gateway-k8s`` config.

Each gateway keeps its persistent sending queue on its own PersistentVolumeClaim (volumeClaimTemplates,
kept when the set shrinks or is deleted, so queued data is never thrown away). Agents find the gateways
through the headless Service their resolver names (``tiers.agent.resolver.k8s_service``); metrics and
logs go through the same name, balanced per connection. A gateway that is asked to stop first sleeps
(``preStop``) so the agents' resolvers drop it, then drains its queues within the grace period.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otelstack.kubernetes.certificates import gateway_headless_name
from otelstack.kubernetes.collector import (
    CONFIG_VOLUME,
    STATE_VOLUME,
    collector_container,
    config_checksum,
    config_map,
    scheduling,
    tls_volume,
)
from otelstack.kubernetes.objects import (
    CONFIG_CHECKSUM_ANNOTATION,
    GATEWAY_CLIENT_SECRET,
    GATEWAY_NAME,
    GATEWAY_SERVER_SECRET,
    Component,
    K8sObject,
    labels,
    metadata,
    obj,
    pod_security_context,
    selector_labels,
)
from otelstack.security.layout import K8S, OTLP_GRPC_PORT, OTLP_HTTP_PORT

if TYPE_CHECKING:
    from otelstack.kubernetes.stack import StackContext

PROFILE = "gateway-k8s"
COMPONENT = "gateway"
SHUTDOWN_SECONDS = 30  # after the drain sleep: the collector flushes its in-memory batches and stops
CPU_TARGET_PERCENT = 70
MEMORY_TARGET_PERCENT = 75  # below the memory_limiter's soft limit (60 % of the limit is refused data)


def autoscaled(ctx: StackContext) -> bool:
    """A fixed ``tiers.gateway.replicas`` turns autoscaling off; otherwise an HPA owns the replica count."""
    return ctx.spec.tiers.gateway.replicas is None


def replica_bounds(ctx: StackContext) -> tuple[int, int]:
    g = ctx.spec.tiers.gateway
    low = ctx.sizing.gateway.replicas
    return low, max(low, g.max_replicas)


def statefulset(ctx: StackContext) -> K8sObject:
    env = ctx.spec.environment
    drain = ctx.cluster.gateway_drain_seconds
    container = collector_container(
        ctx,
        PROFILE,
        ctx.sizing.gateway,
        ports=[("otlp-grpc", OTLP_GRPC_PORT), ("otlp-http", OTLP_HTTP_PORT)],
        fields={},
        mounts=[{"name": STATE_VOLUME, "mountPath": K8S.state_dir}],
        lifecycle={"preStop": {"sleep": {"seconds": drain}}} if drain else None,
    )
    selector = selector_labels(COMPONENT, GATEWAY_NAME)
    spread = [
        {"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": when, "labelSelector": {"matchLabels": selector}}
        for key, when in (
            ("topology.kubernetes.io/zone", "ScheduleAnyway"),
            ("kubernetes.io/hostname", "DoNotSchedule"),
        )
    ]
    pod: K8sObject = {
        "serviceAccountName": GATEWAY_NAME,
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(),
        "terminationGracePeriodSeconds": drain + SHUTDOWN_SECONDS,
        **scheduling(ctx),
        "topologySpreadConstraints": spread,
        "containers": [container],
        "volumes": [
            {"name": CONFIG_VOLUME, "configMap": {"name": GATEWAY_NAME}},
            tls_volume([(GATEWAY_SERVER_SECRET, "server"), (GATEWAY_CLIENT_SECRET, "client")]),
        ],
    }
    claim: K8sObject = {
        "metadata": {"name": STATE_VOLUME, "labels": labels(COMPONENT, GATEWAY_NAME, env)},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            **({"storageClassName": ctx.cluster.storage_class} if ctx.cluster.storage_class else {}),
            "resources": {"requests": {"storage": f"{ctx.spec.tiers.gateway.queue_dir_gib}Gi"}},
        },
    }
    spec: K8sObject = {"serviceName": gateway_headless_name(ctx)}
    if not autoscaled(ctx):
        spec["replicas"] = ctx.sizing.gateway.replicas
    spec |= {
        "podManagementPolicy": "Parallel",
        "updateStrategy": {"type": "RollingUpdate"},
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
        "selector": {"matchLabels": selector},
        "template": {
            "metadata": {
                "labels": labels(COMPONENT, GATEWAY_NAME, env),
                "annotations": {CONFIG_CHECKSUM_ANNOTATION: config_checksum(ctx.collector_config(PROFILE))},
            },
            "spec": pod,
        },
        "volumeClaimTemplates": [claim],
    }
    return obj("apps/v1", "StatefulSet", metadata(GATEWAY_NAME, COMPONENT, namespace=ctx.namespace, environment=env),
               spec=spec)  # fmt: skip


def _service(ctx: StackContext, name: str, headless: bool) -> K8sObject:
    ports = (
        [("otlp-grpc", OTLP_GRPC_PORT)] if headless else [("otlp-grpc", OTLP_GRPC_PORT), ("otlp-http", OTLP_HTTP_PORT)]
    )
    spec: K8sObject = {"type": "ClusterIP"}
    if headless:
        # The load-balancing exporter's resolver lists the ready gateways only.
        spec |= {"clusterIP": "None", "publishNotReadyAddresses": False}
    spec |= {
        "selector": selector_labels(COMPONENT, GATEWAY_NAME),
        "ports": [{"name": n, "port": p, "targetPort": n, "protocol": "TCP"} for n, p in ports],
    }
    meta = metadata(name, COMPONENT, namespace=ctx.namespace, environment=ctx.spec.environment, app=GATEWAY_NAME)
    return obj("v1", "Service", meta, spec=spec)


def autoscaler(ctx: StackContext) -> K8sObject:
    low, high = replica_bounds(ctx)
    metrics = [
        {"type": "Resource", "resource": {"name": n, "target": {"type": "Utilization", "averageUtilization": t}}}
        for n, t in (("cpu", CPU_TARGET_PERCENT), ("memory", MEMORY_TARGET_PERCENT))
    ]
    return obj(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        metadata(GATEWAY_NAME, COMPONENT, namespace=ctx.namespace, environment=ctx.spec.environment),
        spec={
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": GATEWAY_NAME},
            "minReplicas": low,
            "maxReplicas": high,
            "metrics": metrics,
            # Scaling down re-balances trace IDs: do it slowly, one gateway at a time.
            "behavior": {
                "scaleDown": {
                    "stabilizationWindowSeconds": 600,
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}],
                }
            },
        },
    )


def disruption_budget(ctx: StackContext) -> K8sObject:
    return obj(
        "policy/v1",
        "PodDisruptionBudget",
        metadata(GATEWAY_NAME, COMPONENT, namespace=ctx.namespace, environment=ctx.spec.environment),
        spec={"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(COMPONENT, GATEWAY_NAME)}},
    )


def component(ctx: StackContext) -> Component:
    account = obj(
        "v1",
        "ServiceAccount",
        metadata(GATEWAY_NAME, COMPONENT, namespace=ctx.namespace, environment=ctx.spec.environment),
        automountServiceAccountToken=False,
    )
    objects = [
        account,
        config_map(ctx, GATEWAY_NAME, COMPONENT, PROFILE),
        _service(ctx, gateway_headless_name(ctx), headless=True),
        _service(ctx, GATEWAY_NAME, headless=False),
        statefulset(ctx),
        disruption_budget(ctx),
    ]
    if autoscaled(ctx):
        objects.append(autoscaler(ctx))
    # After the stores the stack runs and the ClickHouse schema Job (absent ones are dropped): the gateways'
    # first exports find the stores up and ClickHouse's tables created (the exporter never creates them).
    stores = ("prometheus", "tempo", "loki", "clickhouse", "clickhouse-schema")
    return Component(COMPONENT, tuple(objects), depends_on=("certificates", *stores))
