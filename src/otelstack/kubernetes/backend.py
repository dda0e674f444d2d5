"""What the backend components share (docs/kubernetes/backends.md).

Each backend runs its program on the files ``otelstack.backends.render_backends`` renders — the same
texts ``otelstack plan`` writes to build/ENV/<backend>/ — never a second copy of a config:

- the rendered files go into ConfigMaps (one per directory of the render, keys = file names), and a
  single *projected* volume puts them, the TLS files and the secret files back into the directory layout
  the render refers to (``/etc/prometheus/prometheus.yml``, ``/etc/prometheus/rules/*.yml``,
  ``/etc/prometheus/tls/ca.crt``, …), so every path in a rendered config or flag is valid as rendered;
- the data directory the render names is the workload's PersistentVolumeClaim (size and StorageClass
  from ``otelstack:cluster.backends.<backend>``, the class defaulting to ``storageClass``);
- the TLS files (``ca.crt``, ``server.crt``/``.key``, ``client.crt``/``.key``) come from one cert-manager
  Certificate per backend, for both server and client use, when the backends' hops use TLS;
- the spec's endpoint of the backend must name the Service the stack creates
  (:func:`check_endpoint`): the gateways, Grafana and Prometheus' scrape jobs are rendered from the spec's
  endpoints, so the stack validates rather than rewrites them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from otelstack.errors import SpecError
from otelstack.kubernetes.certificates import CLIENT, SERVER, certificate, service_names
from otelstack.kubernetes.collector import scheduling
from otelstack.kubernetes.objects import (
    CONFIG_CHECKSUM_ANNOTATION,
    VALUES_FROM_ANNOTATION,
    VALUES_FROM_CONFIG,
    K8sObject,
    container_security_context,
    labels,
    metadata,
    obj,
    pod_security_context,
    selector_labels,
)
from otelstack.kubernetes.settings import BackendWorkload
from otelstack.model.spec import TlsMode
from otelstack.security import flows

if TYPE_CHECKING:
    from otelstack.kubernetes.stack import StackContext

# What a pod serves for a listener of its tier: the listener itself, except where a backend serves the same
# role on another port (an in-cluster ClickHouse without TLS: clickhouse_server.py).
Serve = Callable[[flows.Listener], flows.Listener]
CONFIG_VOLUME = "config"
DATA_VOLUME = "data"
TMP_VOLUME = "tmp"


@dataclass(frozen=True)
class Backend:
    """One backend as the stack runs it: its name (component, Service, workload, flows tier), the
    rendered directory, where the program reads it, where it keeps its data, and its uid."""

    name: str
    render_dir: str
    config_dir: str
    data_dir: str
    uid: int

    @property
    def tier(self) -> flows.Tier:
        return flows.tier(self.name)

    @property
    def tls_secret(self) -> str:
        return f"{self.name}-tls"


def workload(ctx: StackContext, backend: Backend) -> BackendWorkload:
    settings: BackendWorkload = getattr(ctx.cluster.backends, backend.name)
    return settings


def runs(ctx: StackContext, name: str) -> bool:
    """The stack runs backend `name` in the cluster."""
    return ctx.cluster.backends.enabled(name)


def backend_tls(ctx: StackContext) -> TlsMode:
    return ctx.spec.security.tls.gateway_to_backends


def host_port(value: str, default_ports: Mapping[str, int] | None = None) -> tuple[str, int | None]:
    """(host, port) of a URL or of host:port."""
    if "://" in value:
        parts = urlsplit(value)
        return parts.hostname or "", parts.port or (default_ports or {}).get(parts.scheme)
    host, _, port = value.rpartition(":")
    return host, int(port) if port.isdigit() else None


def check_endpoint(ctx: StackContext, backend: str, key: str, value: str, port: int) -> None:
    """The spec's `key` (value `value`) must reach the Service `backend` the stack creates, on `port`: one
    of the Service's in-cluster names, short to fully qualified. A SpecError names both values."""
    host, given = host_port(value, {"http": 80, "https": 443})
    allowed = service_names(backend, ctx.namespace, ctx.cluster.cluster_domain)
    if host in allowed and given == port:
        return
    raise SpecError(
        f"`{key}` is {value!r}, but the stack runs {backend} in the cluster "
        f"(otelstack:cluster.backends.{backend}.enabled) as Service {backend!r} in namespace {ctx.namespace!r}, "
        f"port {port}; allowed hosts: {', '.join(allowed)}, e.g. {allowed[-1]}:{port} — or turn "
        f"otelstack:cluster.backends.{backend}.enabled off and keep the backend outside the cluster"
    )


def require_spec_backend(ctx: StackContext, backend: str, enabled: bool) -> None:
    if not enabled:
        raise SpecError(
            f"otelstack:cluster.backends.{backend}.enabled is true, but the spec's `backends.{backend}.enabled` "
            f"is false; allowed: enable both, or neither"
        )


def config_maps(ctx: StackContext, backend: Backend, groups: Mapping[str, Mapping[str, str]]) -> list[K8sObject]:
    """One ConfigMap per group (name suffix → {file name: rendered text}), named ``<backend>-<suffix>``."""
    env = ctx.spec.environment
    out = []
    for suffix, files in groups.items():
        meta = metadata(f"{backend.name}-{suffix}", backend.name, namespace=ctx.namespace, environment=env,
                        app=backend.name)  # fmt: skip
        out.append(obj("v1", "ConfigMap", meta, data=dict(files)))
    return out


def checksum(texts: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def tls_sources(ctx: StackContext, backend: Backend, prefix: str = "tls/") -> list[K8sObject]:
    """The certificate files as the renders name them (ca.crt, server.crt/key, client.crt/key)."""
    if backend_tls(ctx) is TlsMode.INSECURE:
        return []
    items = [{"key": "ca.crt", "path": f"{prefix}ca.crt"}]
    for role in ("server", "client"):
        items += [{"key": "tls.crt", "path": f"{prefix}{role}.crt"}, {"key": "tls.key", "path": f"{prefix}{role}.key"}]
    return [{"secret": {"name": backend.tls_secret, "items": items}}]


def projected_config(sources: Sequence[K8sObject]) -> K8sObject:
    return {"name": CONFIG_VOLUME, "projected": {"defaultMode": 0o440, "sources": list(sources)}}


def config_map_source(name: str, files: Mapping[str, str], prefix: str = "") -> K8sObject:
    return {"configMap": {"name": name, "items": [{"key": k, "path": f"{prefix}{k}"} for k in sorted(files)]}}


def secret_source(name: str, items: Mapping[str, str]) -> K8sObject:
    """Secret `name`'s keys at the given relative paths."""
    return {"secret": {"name": name, "items": [{"key": k, "path": p} for k, p in sorted(items.items())]}}


def tls_certificate(ctx: StackContext, backend: Backend, extra_names: Sequence[str] = ()) -> list[K8sObject]:
    """The backend's Certificate (server and client use: it serves its API and calls other backends), for
    its Service's names and the host names the spec dials it by."""
    if backend_tls(ctx) is TlsMode.INSECURE:
        return []
    names = service_names(backend.name, ctx.namespace, ctx.cluster.cluster_domain)
    return [
        certificate(
            ctx,
            backend.tls_secret,
            backend.tls_secret,
            usages=sorted({*SERVER, *CLIENT}),
            common_name=f"{backend.name}.{ctx.namespace}.svc",
            dns_names=list(dict.fromkeys([*names, *extra_names])),
        )
    ]


def probes(path: str, port: str, scheme: str, *, tcp: bool = False, live: str | None = None) -> K8sObject:
    """Readiness on the program's ready endpoint `path`, liveness on `live` (default: the same); a TCP
    check where the server asks for client certificates (the kubelet has none)."""

    def check(where: str) -> K8sObject:
        if tcp:
            return {"tcpSocket": {"port": port}}
        return {"httpGet": {"path": where, "port": port, "scheme": scheme}}

    return {
        "livenessProbe": {**check(live or path), "initialDelaySeconds": 15, "periodSeconds": 15, "failureThreshold": 6},
        "readinessProbe": {**check(path), "periodSeconds": 10, "failureThreshold": 3},
    }


def container(
    ctx: StackContext,
    backend: Backend,
    *,
    args: Sequence[str],
    probe: K8sObject,
    env: Sequence[K8sObject] = (),
    extra_mounts: Sequence[K8sObject] = (),
    serve: Serve | None = None,
) -> K8sObject:
    settings = workload(ctx, backend)
    ports = [
        {"name": item.name, "containerPort": item.port, "protocol": item.protocol.upper()}
        for item in map(serve or _same, backend.tier.listeners)
    ]
    result: K8sObject = {
        "name": backend.name,
        "image": settings.image.reference,
        "imagePullPolicy": "IfNotPresent",
        "args": list(args),
    }
    if env:
        result["env"] = list(env)
    result |= {
        "ports": ports,
        **probe,
        "resources": {
            "requests": {"cpu": settings.cpu_request, "memory": settings.memory_limit},
            "limits": {"cpu": settings.cpu_limit, "memory": settings.memory_limit},
        },
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": CONFIG_VOLUME, "mountPath": backend.config_dir, "readOnly": True},
            {"name": DATA_VOLUME, "mountPath": backend.data_dir},
            {"name": TMP_VOLUME, "mountPath": "/tmp"},
            *extra_mounts,
        ],
    }
    return result


def claim_spec(ctx: StackContext, backend: Backend) -> K8sObject:
    settings = workload(ctx, backend)
    spec: K8sObject = {"accessModes": ["ReadWriteOnce"]}
    storage_class = settings.storage_class or ctx.cluster.storage_class
    if storage_class:
        spec["storageClassName"] = storage_class
    spec["resources"] = {"requests": {"storage": f"{settings.storage_gib}Gi"}}
    return spec


def pod_spec(ctx: StackContext, backend: Backend, main: K8sObject, sources: Sequence[K8sObject]) -> K8sObject:
    return {
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(backend.uid),
        "terminationGracePeriodSeconds": 60,
        **scheduling(ctx),
        "containers": [main],
        "volumes": [projected_config(sources), {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": "256Mi"}}],
    }


def _template(ctx: StackContext, backend: Backend, pod: K8sObject, config_checksum: str) -> K8sObject:
    return {
        "metadata": {
            "labels": labels(backend.name, backend.name, ctx.spec.environment),
            "annotations": {CONFIG_CHECKSUM_ANNOTATION: config_checksum},
        },
        "spec": pod,
    }


def statefulset(ctx: StackContext, backend: Backend, pod: K8sObject, config_checksum: str) -> K8sObject:
    """One replica with its data on a volumeClaimTemplate (kept when the set is deleted or scaled)."""
    env = ctx.spec.environment
    claim = {
        "metadata": {"name": DATA_VOLUME, "labels": labels(backend.name, backend.name, env)},
        "spec": claim_spec(ctx, backend),
    }
    spec: K8sObject = {
        "serviceName": backend.name,
        "replicas": 1,
        "podManagementPolicy": "OrderedReady",
        "updateStrategy": {"type": "RollingUpdate"},
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
        "selector": {"matchLabels": selector_labels(backend.name, backend.name)},
        "template": _template(ctx, backend, pod, config_checksum),
        "volumeClaimTemplates": [claim],
    }
    meta = metadata(backend.name, backend.name, namespace=ctx.namespace, environment=env)
    return obj("apps/v1", "StatefulSet", meta, spec=spec)


def deployment(ctx: StackContext, backend: Backend, pod: K8sObject, config_checksum: str) -> list[K8sObject]:
    """One replica on its own PersistentVolumeClaim (``Recreate``: the old pod releases the volume first)."""
    env = ctx.spec.environment
    claim_name = f"{backend.name}-data"
    pod = {
        **pod,
        "volumes": [*pod["volumes"], {"name": DATA_VOLUME, "persistentVolumeClaim": {"claimName": claim_name}}],
    }
    claim = obj("v1", "PersistentVolumeClaim",
                metadata(claim_name, backend.name, namespace=ctx.namespace, environment=env, app=backend.name),
                spec=claim_spec(ctx, backend))  # fmt: skip
    spec: K8sObject = {
        "replicas": 1,
        "strategy": {"type": "Recreate"},
        "selector": {"matchLabels": selector_labels(backend.name, backend.name)},
        "template": _template(ctx, backend, pod, config_checksum),
    }
    meta = metadata(backend.name, backend.name, namespace=ctx.namespace, environment=env)
    return [claim, obj("apps/v1", "Deployment", meta, spec=spec)]


def _same(listener: flows.Listener) -> flows.Listener:
    return listener


def service(ctx: StackContext, backend: Backend, serve: Serve | None = None) -> K8sObject:
    """The Service the spec's endpoint names: every listener a flow opens (the same names as the pods')."""
    opened = {
        (p, f.protocol) for f in flows.FLOWS if f.target == backend.name and f.source != backend.name for p in f.ports
    }
    served = [(serve or _same)(item) for item in backend.tier.listeners if (item.port, item.protocol) in opened]
    ports = [
        {"name": item.name, "port": item.port, "targetPort": item.name, "protocol": item.protocol.upper()}
        for item in served
    ]
    meta = metadata(backend.name, backend.name, namespace=ctx.namespace, environment=ctx.spec.environment)
    selector = selector_labels(backend.name, backend.name)
    return obj("v1", "Service", meta, spec={"type": "ClusterIP", "selector": selector, "ports": ports})


def config_secret(ctx: StackContext, backend: Backend, name: str, keys: Iterable[str]) -> K8sObject:
    """A Secret of `keys`, each empty here: the Pulumi program fills them from the stack's secret config
    (``otelstack:secrets.<key>``), as it fills otelstack-secrets."""
    meta = metadata(name, backend.name, namespace=ctx.namespace, environment=ctx.spec.environment,
                    annotations={VALUES_FROM_ANNOTATION: VALUES_FROM_CONFIG})  # fmt: skip
    return obj("v1", "Secret", meta, type="Opaque", stringData=dict.fromkeys(sorted(keys), ""))


def mapped_flags(flags_text: str, mounts: Mapping[str, str]) -> list[str]:
    """The rendered flags (one per line) as container args, each absolute path of a value moved from the
    rendered directory to where it is mounted (``mounts``: rendered directory → mount path). A path under
    none of them is an error: the container would not find it."""
    args = []
    for line in flags_text.splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if sep and value.startswith("/"):
            base = next(
                (d for d in sorted(mounts, key=len, reverse=True) if value == d or value.startswith(d + "/")), None
            )
            if base is None:
                raise ValueError(f"flag {name} names {value}, which no volume of the pod holds ({', '.join(mounts)})")
            value = mounts[base] + value[len(base) :]
        args.append(f"{name}{sep}{value}")
    return args


def depends(ctx: StackContext) -> tuple[str, ...]:
    return ("namespace", "certificates") if backend_tls(ctx) is not TlsMode.INSECURE else ("namespace",)
