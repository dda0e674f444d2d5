"""ClickHouse in the cluster, mode ``altinity``: a replicated cluster run by the Altinity ClickHouse operator.

Two custom resources of the operator's release **0.25.6** (``ALTINITY_OPERATOR``), every field checked against
that release's CRDs (``deploy/operator/clickhouse-operator-install-bundle.yaml``) and Go types
(``pkg/apis/clickhouse.altinity.com/v1``); tests/unit/test_k8s_clickhouse_altinity.py validates the rendered
resources against the CRDs' ``openAPIV3Schema`` when the bundle is given (``OTELSTACK_ALTINITY_BUNDLE``):

- ``ClickHouseKeeperInstallation`` ``otelstack`` (clickhouse-keeper.altinity.com/v1): ``keeperReplicas`` Keeper
  nodes, a Raft quorum; the operator's Service ``keeper-otelstack`` (its ``keeper-<name>`` pattern) on the
  ZooKeeper port 2181;
- ``ClickHouseInstallation`` ``otelstack`` (clickhouse.altinity.com/v1): cluster ``backends.clickhouse.cluster``
  (the name the DDL's ``ON CLUSTER`` and ``Distributed`` tables use) of ``shards`` × ``replicas`` servers
  with Keeper as ``zookeeper``; the operator writes ``remote_servers`` and the ``{shard}``/``{replica}``
  macros the ReplicatedMergeTree paths need. ``files`` holds the rendered ``config.d/otelstack.xml`` byte
  for byte and the ``<openSSL>`` fragment; ``users`` the admin user, its password an environment variable
  from ``otelstack-secrets`` (``k8s_secret_env_password``); the installation's Service is named ``clickhouse``
  (a service template's ``generateName``), so the spec's endpoint names it as in mode single. With TLS the
  cluster is ``secure`` and not ``insecure``: the operator opens 9440/8443 only and ``remote_servers`` uses
  the TLS port.

The operator itself is not installed by the stack: it must be present (its CRDs, and its Deployment, which
in the operator's bundle runs in ``kube-system`` with label ``app: clickhouse-operator``), or the API
server refuses both resources. Pulumi does not wait for the operator to finish; the schema Job retries.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from otelstack.kubernetes import backend, clickhouse_config
from otelstack.kubernetes.clickhouse_server import (
    CLICKHOUSE,
    MAIN_CONFIG,
    SERVER_BINARY,
    admin_password_env,
    serve,
    tls_volume,
)
from otelstack.kubernetes.collector import scheduling
from otelstack.kubernetes.objects import (
    SECRETS_NAME,
    Component,
    K8sObject,
    container_security_context,
    labels,
    metadata,
    obj,
    pod_security_context,
)
from otelstack.model.spec import TlsMode
from otelstack.security import flows, layout

if TYPE_CHECKING:
    from otelstack.kubernetes.stack import StackContext

ALTINITY_OPERATOR = "0.25.6"
CHI_API = "clickhouse.altinity.com/v1"
CHK_API = "clickhouse-keeper.altinity.com/v1"
# The operator's install bundle at the pinned release, given by hand (its module is not on the Go module proxy).
BUNDLE_ENV = "OTELSTACK_ALTINITY_BUNDLE"
NAME = "otelstack"
KEEPER = "clickhouse-keeper"  # the Keeper pods' component label (their NetworkPolicy selects it)
KEEPER_SERVICE = f"keeper-{NAME}"
# The operator's port names and numbers (pkg/apis/clickhouse.altinity.com/v1/type_host.go): it adds each to
# the container under these names; the pods' metrics port is ours (podTemplate).
OPERATOR_PORT_NAMES = {
    layout.CLICKHOUSE_NATIVE_TLS_PORT: "secureclient",
    layout.CLICKHOUSE_HTTPS_PORT: "https",
    layout.CLICKHOUSE_NATIVE_PORT: "tcp",
    layout.CLICKHOUSE_HTTP_PORT: "http",
}
INTERSERVER = flows.Listener(9009, "interserver", description="replicas fetch parts from each other")
KEEPER_CLIENT = flows.Listener(2181, "zk", description="ClickHouse Keeper's ZooKeeper protocol")
KEEPER_RAFT = flows.Listener(9444, "raft", description="Keeper's Raft between its nodes")
# The operator's Deployment in its bundle (deploy/operator/clickhouse-operator-install-bundle.yaml).
OPERATOR_NAMESPACE = "kube-system"
OPERATOR_POD_LABELS = {"app": "clickhouse-operator"}
LOG_DIRS = {"clickhouse": "/var/log/clickhouse-server", "clickhouse-keeper": "/var/log/clickhouse-keeper"}


def served(ctx: StackContext) -> backend.Serve:
    """A listener of the matrix as the operator's pods serve it: its port under the operator's name."""
    plain = serve(ctx)

    def named(listener: flows.Listener) -> flows.Listener:
        item = plain(listener)
        name = OPERATOR_PORT_NAMES.get(item.port)
        return flows.Listener(item.port, name, item.protocol, item.description) if name else item

    return named


def _claim(ctx: StackContext, name: str, size_gib: int) -> K8sObject:
    spec = backend.claim_spec(ctx, CLICKHOUSE)
    spec["resources"] = {"requests": {"storage": f"{size_gib}Gi"}}
    return {"name": name, "reclaimPolicy": "Retain", "spec": spec}


def _container(ctx: StackContext, name: str, image: str, mounts: list[K8sObject], memory: str) -> K8sObject:
    """The operator's container `name` (the operator finds it by name), hardened; the log directory the
    operator's logger configuration names is an emptyDir (read-only root)."""
    settings = ctx.cluster.backends.clickhouse
    mounts = [{"name": "logs", "mountPath": LOG_DIRS[name]}, *mounts]
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "resources": {
            "requests": {"cpu": settings.cpu_request, "memory": memory},
            "limits": {"cpu": settings.cpu_limit, "memory": memory},
        },
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}, *mounts],
    }


def _pod_template(ctx: StackContext, name: str, component: str, main: K8sObject, volumes: list[K8sObject]) -> K8sObject:
    return {
        "name": name,
        "metadata": {"labels": labels(component, component, ctx.spec.environment)},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": pod_security_context(CLICKHOUSE.uid),
            **scheduling(ctx),
            "containers": [main],
            "volumes": [
                {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
                {"name": "logs", "emptyDir": {"sizeLimit": "1Gi"}},
                *volumes,
            ],
        },
    }


def keeper(ctx: StackContext) -> K8sObject:
    settings = ctx.cluster.backends.clickhouse
    main = _container(ctx, "clickhouse-keeper", settings.keeper_image.reference, [], settings.keeper_memory_limit)
    main["ports"] = [{"name": item.name, "containerPort": item.port} for item in (KEEPER_CLIENT, KEEPER_RAFT)]
    spec = {
        "defaults": {"templates": {"podTemplate": "keeper", "dataVolumeClaimTemplate": "keeper-data"}},
        "configuration": {"clusters": [{"name": "keeper", "layout": {"replicasCount": settings.keeper_replicas}}]},
        "templates": {
            "podTemplates": [_pod_template(ctx, "keeper", KEEPER, main, [])],
            "volumeClaimTemplates": [_claim(ctx, "keeper-data", settings.keeper_storage_gib)],
        },
    }
    meta = metadata(NAME, KEEPER, namespace=ctx.namespace, environment=ctx.spec.environment)
    return obj(CHK_API, "ClickHouseKeeperInstallation", meta, spec=spec)


def installation(ctx: StackContext, tls: bool) -> K8sObject:
    settings = ctx.cluster.backends.clickhouse
    spec_ch = ctx.spec.backends.clickhouse
    mtls = backend.backend_tls(ctx) is TlsMode.MTLS
    files = {"config.d/otelstack.xml": ctx.backend_file("clickhouse/config.d/otelstack.xml")}
    mounts: list[K8sObject] = []
    volumes: list[K8sObject] = []
    if tls:
        files[f"config.d/{clickhouse_config.TLS_FILE}"] = clickhouse_config.tls_fragment(mtls)
        mounts.append({"name": "tls", "mountPath": clickhouse_config.TLS_DIR, "readOnly": True})
        volumes.append(tls_volume(ctx))
    main = _container(ctx, "clickhouse", settings.image.reference, mounts, settings.memory_limit)
    # As in mode single: the server itself, not the image's entrypoint (which writes under /etc).
    main["command"], main["args"] = [SERVER_BINARY], [f"--config-file={MAIN_CONFIG}"]
    main["ports"] = [{"name": "metrics", "containerPort": 9363}]
    main["env"] = [admin_password_env(ctx)]
    admin = ctx.cluster.clickhouse_schema.admin_user
    key = ctx.cluster.clickhouse_schema.admin_password_key
    ports = [
        {"name": item.name, "port": item.port, "targetPort": item.port}
        for item in map(served(ctx), flows.tier(CLICKHOUSE.name).listeners)
    ]
    spec = {
        "defaults": {
            "templates": {
                "podTemplate": "clickhouse",
                "dataVolumeClaimTemplate": "data",
                "serviceTemplate": "clickhouse",
            }
        },
        "configuration": {
            "zookeeper": {"nodes": [{"host": f"{KEEPER_SERVICE}.{ctx.namespace}.svc", "port": KEEPER_CLIENT.port}]},
            "users": {
                f"{admin}/k8s_secret_env_password": f"{SECRETS_NAME}/{key}",
                f"{admin}/networks/ip": ["::/0", "0.0.0.0/0"],
                f"{admin}/profile": "default",
                f"{admin}/access_management": 1,
            },
            "files": files,
            "clusters": [
                {
                    "name": spec_ch.cluster,
                    "secure": "yes" if tls else "no",
                    "insecure": "no" if tls else "yes",
                    "layout": {"shardsCount": settings.shards, "replicasCount": settings.replicas},
                }
            ],
        },
        "templates": {
            "podTemplates": [_pod_template(ctx, "clickhouse", CLICKHOUSE.name, main, volumes)],
            "volumeClaimTemplates": [_claim(ctx, "data", settings.storage_gib)],
            "serviceTemplates": [
                {
                    "name": "clickhouse",
                    "generateName": CLICKHOUSE.name,
                    "spec": {"type": "ClusterIP", "ports": ports},
                }
            ],
        },
    }
    meta = metadata(NAME, CLICKHOUSE.name, namespace=ctx.namespace, environment=ctx.spec.environment)
    return obj(CHI_API, "ClickHouseInstallation", meta, spec=spec)


def dns_names(ctx: StackContext) -> list[str]:
    """Every host's Service too (``chi-otelstack-<cluster>-<shard>-<replica>``, one label under the namespace)."""
    return [f"*.{ctx.namespace}.svc", f"*.{ctx.namespace}.svc.{ctx.cluster.cluster_domain}"]


def component(ctx: StackContext, tls: bool) -> Component:
    objects = [
        *(backend.tls_certificate(ctx, CLICKHOUSE, dns_names(ctx)) if tls else []),
        keeper(ctx),
        installation(ctx, tls),
    ]
    return Component(CLICKHOUSE.name, tuple(objects), depends_on=backend.depends(ctx))


def operator_resources(objects: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The objects of the operator's API groups (their CRDs are not among the pinned ones)."""
    return [o for o in objects if o.get("apiVersion") in (CHI_API, CHK_API)]


def crd_bundle() -> Path | None:
    """The operator's bundle named by ``OTELSTACK_ALTINITY_BUNDLE``, if any."""
    given = os.environ.get(BUNDLE_ENV)
    return Path(given) if given else None
