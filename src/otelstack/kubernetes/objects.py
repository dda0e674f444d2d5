"""Plain Kubernetes objects and the helpers every component builder shares.

A builder returns a :class:`Component`: its objects (dicts with the API's camelCase keys, in the order the
program creates them) and the names of the components that must exist first. Helpers here give every
object the same labels, every container the same hardened security context and every workload the same
scheduling settings, so a builder only writes what is its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from otelstack.model.spec import PlatformSpec
from otelstack.security.flows import COMPONENT_LABEL, PART_OF, PART_OF_LABEL
from otelstack.sizing import TierSizing

K8sObject = dict[str, Any]

# The names of the components, as render_stack orders them and `depends_on` refers to them.
COMPONENTS = (
    "namespace",
    "cert-manager",
    "certificates",
    "agent",
    "gateway",
    "opamp-server",
    "operator",
    "instrumentation",
    "beyla",
    "prometheus",
    "alertmanager",
    "tempo",
    "loki",
    "grafana",
    "clickhouse",
    "clickhouse-schema",
    "network-policies",
)

NAME_LABEL = "app.kubernetes.io/name"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
ENVIRONMENT_LABEL = "otelstack.io/environment"  # stacks/policy reads it (no-insecure-tls is relaxed in dev)
CONFIG_CHECKSUM_ANNOTATION = "otelstack.io/config-sha256"  # changes with the config: the pods roll

# The Secret holding every secret the spec references as env:NAME; the program fills in the values from the
# Pulumi config secret map `otelstack:secrets`. No value is ever rendered here.
SECRETS_NAME = "otelstack-secrets"
VALUES_FROM_ANNOTATION = "otelstack.io/values-from"
VALUES_FROM_CONFIG = "pulumi-config"
# Keys of such a Secret the program may generate when the config does not give them (stacks/components/
# generated.py): random once, kept encrypted in the stack's state.
GENERATED_KEYS_ANNOTATION = "otelstack.io/generated-keys"

# Workload names. The agent's own pod logs are excluded by name in its own namespace
# (collector/agent.py: ${env:K8S_POD_NAMESPACE}_otel-agent-*).
AGENT_NAME = "otel-agent"
AGENT_PROFILE = "agent-k8s"  # the collector profile the agent DaemonSet runs
GATEWAY_NAME = "otel-gateway"
OPAMP_NAME = "otelstack-opamp"

# cert-manager Secrets (tls.crt, tls.key, ca.crt), projected into the collectors' tls_dir. The CA's own
# Secret is in cert-manager's namespace (certificates.py); every leaf Secret carries the CA as ca.crt.
AGENT_CLIENT_SECRET = "otel-agent-client-tls"
AGENT_SERVER_SECRET = "otel-agent-server-tls"
GATEWAY_SERVER_SECRET = "otel-gateway-server-tls"
GATEWAY_CLIENT_SECRET = "otel-gateway-client-tls"
OPAMP_SERVER_SECRET = "otelstack-opamp-server-tls"

# The collector image's user (otel/opentelemetry-collector-contrib runs as 10001).
COLLECTOR_UID = 10001


@dataclass(frozen=True)
class ThirdParty:
    """A part installed from its own project's pinned manifests, rendered by the Pulumi provider itself
    (never copied into this repository): a Helm chart (``helm.v4.Chart``) or a kustomization
    (``kustomize.v2.Directory``) at ``path`` inside the Go module ``module@version``.

    ``values``: for a chart, the values passed to it; for a kustomization, our overlay kustomization
    without its ``resources`` entry, which the program adds once it has found the module on disk (``path``
    inside the module's directory, wherever the module cache holds it)."""

    kind: Literal["helm-chart", "kustomize"]
    name: str
    module: str
    version: str
    path: str
    namespace: str
    values: Mapping[str, Any]

    def record(self) -> K8sObject:
        """What `plan` exports for it: the source and the values, all deterministic."""
        return {
            "kind": self.kind,
            "name": self.name,
            "source": {"module": self.module, "version": self.version, "path": self.path},
            "namespace": self.namespace,
            "values" if self.kind == "helm-chart" else "overlay": dict(self.values),
        }


@dataclass(frozen=True)
class Component:
    """One part of the platform: its objects in creation order, what must be created before it, and the
    third-party installation it carries (created after its objects)."""

    name: str
    objects: tuple[K8sObject, ...]
    depends_on: tuple[str, ...] = ()
    source: ThirdParty | None = None

    def __post_init__(self) -> None:
        if self.name not in COMPONENTS:
            raise ValueError(f"unknown component {self.name!r}; allowed: {', '.join(COMPONENTS)}")


def labels(component: str, name: str, environment: str | None = None) -> dict[str, str]:
    """The labels of every object: name, part-of/component (the flows matrix selects pods by these)."""
    result = {
        NAME_LABEL: name,
        PART_OF_LABEL: PART_OF,
        COMPONENT_LABEL: component,
        MANAGED_BY_LABEL: "otelstack",
    }
    if environment:
        result[ENVIRONMENT_LABEL] = environment
    return result


def selector_labels(component: str, name: str) -> dict[str, str]:
    """The labels a workload selects its pods by (immutable: never the environment or a version)."""
    return {NAME_LABEL: name, PART_OF_LABEL: PART_OF, COMPONENT_LABEL: component}


def metadata(
    name: str,
    component: str,
    *,
    namespace: str | None = None,
    environment: str | None = None,
    app: str | None = None,
    annotations: Mapping[str, str] | None = None,
    extra_labels: Mapping[str, str] | None = None,
) -> K8sObject:
    """``metadata`` of an object: name, namespace (None: cluster-scoped), the standard labels."""
    meta: K8sObject = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = {**labels(component, app or name, environment), **(extra_labels or {})}
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def obj(api_version: str, kind: str, meta: K8sObject, **fields: Any) -> K8sObject:
    """An object with apiVersion, kind, metadata first, then its fields in the given order."""
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **fields}


def container_security_context(*, read_only_root: bool = True, add_capabilities: Iterable[str] = ()) -> K8sObject:
    """The hardened container security context (Pod Security "restricted" and more)."""
    caps: K8sObject = {"drop": ["ALL"]}
    added = sorted(add_capabilities)
    if added:
        caps["add"] = added
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": caps,
        "privileged": False,
        "readOnlyRootFilesystem": read_only_root,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security_context(uid: int = COLLECTOR_UID, *, fs_group: bool = True) -> K8sObject:
    """The pod security context: a fixed non-root user and group; volumes group-owned by it."""
    ctx: K8sObject = {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid}
    if fs_group:
        ctx["fsGroup"] = uid
        ctx["fsGroupChangePolicy"] = "OnRootMismatch"
    ctx["seccompProfile"] = {"type": "RuntimeDefault"}
    return ctx


def cpu_quantity(cores: float) -> str:
    """CPU as millicores (``500m``); whole cores stay whole numbers of millicores too, for one format."""
    return f"{max(1, round(cores * 1000))}m"


def resources(cpu_request: float, cpu_limit: float, memory_request_mib: int, memory_limit_mib: int) -> K8sObject:
    return {
        "requests": {"cpu": cpu_quantity(cpu_request), "memory": f"{memory_request_mib}Mi"},
        "limits": {"cpu": cpu_quantity(cpu_limit), "memory": f"{memory_limit_mib}Mi"},
    }


def tier_resources(sizing: TierSizing) -> K8sObject:
    """Requests and limits of a collector tier, from otelstack's sizing."""
    return resources(sizing.cpu_request, sizing.cpu_limit, sizing.memory_request_mib, sizing.memory_limit_mib)


def go_runtime_env(sizing: TierSizing) -> list[K8sObject]:
    """GOMEMLIMIT from sizing (the memory_limiter's hard limit) and GOMAXPROCS from the CPU limit."""
    return [
        {"name": "GOMEMLIMIT", "value": f"{sizing.gomemlimit_mib}MiB"},
        {"name": "GOMAXPROCS", "value": str(max(1, int(sizing.cpu_limit + 0.999)))},
    ]


def _secret_env_names(node: Any) -> Iterable[str]:
    if isinstance(node, str):
        if node.startswith("env:"):
            yield node.removeprefix("env:")
    elif isinstance(node, Mapping):
        for value in node.values():
            yield from _secret_env_names(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from _secret_env_names(value)


def spec_secret_names(spec: PlatformSpec) -> tuple[str, ...]:
    """Every ``env:NAME`` secret reference of the spec that is in use, sorted (the Secret's keys)."""
    names: set[str] = set()
    sec = spec.security
    if sec.receiver_auth.kind == "bearer":
        names.update(_secret_env_names(sec.receiver_auth.token))
    names.update(_secret_env_names(sec.opamp.token))
    if spec.backends.clickhouse.enabled:
        names.update(_secret_env_names(spec.backends.clickhouse.password))
    names.update(_secret_env_names(spec.collector_overrides.model_dump()))
    return tuple(sorted(names))


def secret_env(names: Iterable[str]) -> list[K8sObject]:
    """Container env vars taken from the keys of Secret ``otelstack-secrets`` (never a value)."""
    return [
        {"name": name, "valueFrom": {"secretKeyRef": {"name": SECRETS_NAME, "key": name}}} for name in sorted(names)
    ]


def config_env_names(config_text: str) -> tuple[str, ...]:
    """The ``${env:NAME}`` variables a rendered collector config reads, sorted."""
    return tuple(sorted(set(re.findall(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}", config_text))))


def checkov_skips(skips: Iterable[tuple[str, str]]) -> dict[str, str]:
    """checkov's per-object skips, as the annotations it reads (``checkov.io/skipN: CHECK=reason``): a
    workload's documented exception is skipped on that object alone, never for every object."""
    return {f"checkov.io/skip{number}": f"{check}={reason}" for number, (check, reason) in enumerate(skips, 1)}


def pinned_module(name: str) -> tuple[str, str]:
    """(module, version) of a third-party project the stack installs, from the catalog's ``crds:`` pins
    (catalog/kubernetes_tools.yaml): the module that carries the CRDs carries the chart/kustomization too,
    so the CRDs the tests apply and the ones the stack installs are the same release."""
    from importlib import resources as package_files

    import yaml

    text = package_files.files("otelstack.catalog").joinpath("kubernetes_tools.yaml").read_text(encoding="utf-8")
    pins = (yaml.safe_load(text) or {}).get("crds") or {}
    if name not in pins:
        raise KeyError(f"catalog/kubernetes_tools.yaml pins no module {name!r} under crds:; pinned: {', '.join(pins)}")
    return str(pins[name]["module"]), str(pins[name]["version"])
