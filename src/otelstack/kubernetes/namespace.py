"""The platform's namespaces and the Secrets of the spec's secrets.

- the platform's namespace (Pod Security ``restricted`` for enforce, audit and warn): every workload but
  the agents and Beyla;
- the agents' namespace (``cluster.agentNamespace``, default ``<namespace>-agent``): enforce
  ``privileged``, the one explained exception — the agent DaemonSet mounts hostPath volumes (the node's pod
  logs, its checkpoint directory) and runs as uid 0 without any capability (agent.py), and both ``baseline``
  and ``restricted`` refuse hostPath volumes. Audit and warn stay ``restricted``: every admission of an agent
  pod records each way it departs from the platform's level (hostPath volumes, runAsNonRoot/runAsUser 0), so
  a new departure (a capability, a host namespace) shows up as a new line; ``baseline`` would not record the
  uid-0 half of the exception.

A Secret ``otelstack-secrets`` in each namespace carries only keys, each with an empty value: in the
platform's namespace one per ``env:NAME`` reference of the spec (and the OpAMP server's), in the agents'
namespace only those the agent config reads. The Pulumi program fills every Secret annotated
``otelstack.io/values-from: pulumi-config`` from its secret config map ``otelstack:secrets``; no value is
rendered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otelstack.kubernetes import clickhouse, grafana, opamp, prometheus
from otelstack.kubernetes.objects import (
    AGENT_PROFILE,
    GENERATED_KEYS_ANNOTATION,
    SECRETS_NAME,
    VALUES_FROM_ANNOTATION,
    VALUES_FROM_CONFIG,
    Component,
    K8sObject,
    config_env_names,
    metadata,
    obj,
    spec_secret_names,
)

if TYPE_CHECKING:
    from otelstack.kubernetes.stack import StackContext

# The Pod Security Standards version the labels pin: the pinned Kubernetes release's minor version.
KUBERNETES_VERSION = "1.37.2"
POD_SECURITY_VERSION = "v" + ".".join(KUBERNETES_VERSION.split(".")[:2])


# The agents' namespace: enforce admits the hostPath volumes and uid 0; audit and warn record them.
AGENT_LEVELS = {"enforce": "privileged", "audit": "restricted", "warn": "restricted"}


def pod_security_labels(level: str = "restricted", levels: dict[str, str] | None = None) -> dict[str, str]:
    """enforce, audit and warn (at one level, or per mode from `levels`), each pinned to the Kubernetes
    version (no drift on upgrades)."""
    result: dict[str, str] = {}
    for mode in ("enforce", "audit", "warn"):
        result[f"pod-security.kubernetes.io/{mode}"] = (levels or {}).get(mode, level)
        result[f"pod-security.kubernetes.io/{mode}-version"] = POD_SECURITY_VERSION
    return result


def namespace_object(
    name: str, environment: str, level: str = "restricted", levels: dict[str, str] | None = None
) -> K8sObject:
    return obj(
        "v1",
        "Namespace",
        metadata(name, "namespace", environment=environment, extra_labels=pod_security_labels(level, levels)),
    )


def secrets_object(
    ctx: StackContext, namespace: str, keys: set[str] | tuple[str, ...], generated: tuple[str, ...] = ()
) -> K8sObject:
    annotations = {VALUES_FROM_ANNOTATION: VALUES_FROM_CONFIG}
    if generated:
        annotations[GENERATED_KEYS_ANNOTATION] = ",".join(sorted(generated))
    return obj(
        "v1",
        "Secret",
        metadata(
            SECRETS_NAME,
            "namespace",
            namespace=namespace,
            environment=ctx.spec.environment,
            annotations=annotations,
        ),
        type="Opaque",
        stringData={name: "" for name in sorted(keys)},
    )


def agent_secret_names(ctx: StackContext) -> tuple[str, ...]:
    """The spec's secrets the agent config reads (``${env:NAME}``): the keys of its namespace's Secret."""
    secrets = set(spec_secret_names(ctx.spec))
    return tuple(n for n in config_env_names(ctx.collector_config(AGENT_PROFILE)) if n in secrets)


def component(ctx: StackContext) -> Component:
    env = ctx.spec.environment
    objects = [
        namespace_object(ctx.namespace, env),
        secrets_object(
            ctx,
            ctx.namespace,
            {
                *spec_secret_names(ctx.spec),
                *opamp.secret_names(ctx),
                *prometheus.secret_names(ctx),
                *grafana.secret_names(ctx),
                *clickhouse.secret_names(ctx),
            },
            clickhouse.generated_keys(ctx),
        ),
        namespace_object(ctx.agent_namespace, env, levels=AGENT_LEVELS),
    ]
    agent_keys = agent_secret_names(ctx)
    if agent_keys:
        objects.append(secrets_object(ctx, ctx.agent_namespace, agent_keys))
    return Component("namespace", tuple(objects))
