"""What the agent DaemonSet and the gateway StatefulSet share: the config ConfigMap (the plan's render,
byte for byte), the container (image, args, environment, probes, resources, security context) and the
certificate volume (cert-manager Secrets projected under the file names the config uses)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from otelstack.kubernetes.objects import (
    K8sObject,
    config_env_names,
    container_security_context,
    go_runtime_env,
    metadata,
    obj,
    secret_env,
    spec_secret_names,
    tier_resources,
)
from otelstack.security.layout import HEALTH_CHECK_PORT, K8S, SELF_METRICS_PORT
from otelstack.sizing import TierSizing

if TYPE_CHECKING:
    from otelstack.kubernetes.stack import StackContext

CONFIG_VOLUME = "config"
TLS_VOLUME = "tls"
STATE_VOLUME = "state"


def config_key(profile: str) -> str:
    return f"{profile}.yaml"


def config_path(profile: str) -> str:
    return f"{K8S.config_dir}/{config_key(profile)}"


def config_checksum(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def config_map(ctx: StackContext, name: str, component: str, profile: str, namespace: str | None = None) -> K8sObject:
    """The collector config exactly as `otelstack plan` renders it (build/ENV/collector/<profile>.yaml)."""
    meta = metadata(name, component, namespace=namespace or ctx.namespace, environment=ctx.spec.environment)
    return obj("v1", "ConfigMap", meta, data={config_key(profile): ctx.collector_config(profile)})


def collector_env(ctx: StackContext, text: str, sizing: TierSizing, fields: Mapping[str, str]) -> list[K8sObject]:
    """The variables the config reads: pod fields (downward API) and the spec's secrets (Secret keys)."""
    env = go_runtime_env(sizing)
    wanted = config_env_names(text)
    secrets = set(spec_secret_names(ctx.spec))
    unknown = [n for n in wanted if n not in fields and n not in secrets]
    if unknown:
        raise ValueError(f"the collector config reads {', '.join(unknown)}, which no pod field or secret provides")
    env += [{"name": n, "valueFrom": {"fieldRef": {"fieldPath": fields[n]}}} for n in wanted if n in fields]
    env += secret_env(n for n in wanted if n in secrets)
    return env


def tls_volume(secrets: Sequence[tuple[str, str]]) -> K8sObject:
    """One directory with, per (secret, role), <role>.crt and <role>.key (role: server/client), and ca.crt:
    the platform CA, which cert-manager's CA issuer writes into every leaf Secret (the CA's own Secret is in
    cert-manager's namespace: certificates.py)."""
    sources: list[K8sObject] = []
    for index, (secret, role) in enumerate(secrets):
        items = [{"key": "tls.crt", "path": f"{role}.crt"}, {"key": "tls.key", "path": f"{role}.key"}]
        if index == 0:
            items.insert(0, {"key": "ca.crt", "path": "ca.crt"})
        sources.append({"secret": {"name": secret, "items": items}})
    return {"name": TLS_VOLUME, "projected": {"defaultMode": 0o440, "sources": sources}}


def health_probes(initial_delay: int = 5) -> K8sObject:
    """Liveness and readiness on the health_check extension (port 13133, path /)."""
    get = {"path": "/", "port": "health"}
    return {
        "livenessProbe": {
            "httpGet": get,
            "initialDelaySeconds": initial_delay,
            "periodSeconds": 10,
            "failureThreshold": 6,
        },
        "readinessProbe": {"httpGet": dict(get), "periodSeconds": 5, "failureThreshold": 3},
    }


def collector_container(
    ctx: StackContext,
    profile: str,
    sizing: TierSizing,
    *,
    ports: Sequence[tuple[str, int]],
    fields: Mapping[str, str],
    mounts: Sequence[K8sObject],
    run_as_root: bool = False,
    lifecycle: K8sObject | None = None,
) -> K8sObject:
    text = ctx.collector_config(profile)
    security = container_security_context()
    if run_as_root:
        security["runAsNonRoot"] = False
    container: K8sObject = {
        "name": "otelcol",
        "image": ctx.cluster.collector_image.reference,
        "imagePullPolicy": "IfNotPresent",
        "args": [f"--config={config_path(profile)}"],
        "env": collector_env(ctx, text, sizing, fields),
        "ports": [
            *({"name": n, "containerPort": p, "protocol": "TCP"} for n, p in ports),
            {"name": "metrics", "containerPort": SELF_METRICS_PORT, "protocol": "TCP"},
            {"name": "health", "containerPort": HEALTH_CHECK_PORT, "protocol": "TCP"},
        ],
        **health_probes(),
        "resources": tier_resources(sizing),
        "securityContext": security,
        "volumeMounts": [
            {"name": CONFIG_VOLUME, "mountPath": K8S.config_dir, "readOnly": True},
            {"name": TLS_VOLUME, "mountPath": K8S.tls_dir, "readOnly": True},
            *mounts,
        ],
    }
    if lifecycle:
        container["lifecycle"] = lifecycle
    return container


def scheduling(ctx: StackContext) -> K8sObject:
    """nodeSelector (Linux nodes, plus the stack's) and tolerations of every workload."""
    result: K8sObject = {"nodeSelector": {"kubernetes.io/os": "linux", **ctx.cluster.node_selector}}
    if ctx.cluster.tolerations:
        result["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in ctx.cluster.tolerations]
    return result
