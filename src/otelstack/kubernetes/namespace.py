"""The platform's namespace (Pod Security "restricted", enforced) and the Secret of the spec's secrets.

The Secret carries only keys: one per ``env:NAME`` reference of the spec, each with an empty value. The
Pulumi program fills the values from its secret config map ``otelstack:secrets``; no value is rendered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otelstack.kubernetes import opamp
from otelstack.kubernetes.objects import (
    SECRETS_NAME,
    VALUES_FROM_ANNOTATION,
    VALUES_FROM_CONFIG,
    Component,
    K8sObject,
    metadata,
    obj,
    spec_secret_names,
)

if TYPE_CHECKING:
    from otelstack.kubernetes.stack import StackContext

# The Pod Security Standards version the labels pin: the pinned Kubernetes release's minor version.
KUBERNETES_VERSION = "1.37.2"
POD_SECURITY_VERSION = "v" + ".".join(KUBERNETES_VERSION.split(".")[:2])


def pod_security_labels(level: str = "restricted") -> dict[str, str]:
    """enforce, audit and warn at one level, each pinned to the Kubernetes version (no drift on upgrades)."""
    result: dict[str, str] = {}
    for mode in ("enforce", "audit", "warn"):
        result[f"pod-security.kubernetes.io/{mode}"] = level
        result[f"pod-security.kubernetes.io/{mode}-version"] = POD_SECURITY_VERSION
    return result


def namespace_object(name: str, environment: str, level: str = "restricted") -> K8sObject:
    return obj(
        "v1",
        "Namespace",
        metadata(name, "namespace", environment=environment, extra_labels=pod_security_labels(level)),
    )


def secrets_object(ctx: StackContext) -> K8sObject:
    return obj(
        "v1",
        "Secret",
        metadata(
            SECRETS_NAME,
            "namespace",
            namespace=ctx.namespace,
            environment=ctx.spec.environment,
            annotations={VALUES_FROM_ANNOTATION: VALUES_FROM_CONFIG},
        ),
        type="Opaque",
        stringData={name: "" for name in sorted({*spec_secret_names(ctx.spec), *opamp.secret_names(ctx)})},
    )


def component(ctx: StackContext) -> Component:
    return Component(
        "namespace",
        (namespace_object(ctx.namespace, ctx.spec.environment), secrets_object(ctx)),
    )
