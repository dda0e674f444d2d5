"""The OpAMP server on Kubernetes: ``otelstack opamp serve`` in a Deployment.

- One replica with the SQLite registry on a PersistentVolumeClaim (``Recreate``: the old pod releases
  the volume and the database before the new one opens them), or several with the PostgreSQL registry
  (``cluster.opampServer.postgresql``), rolling;
- its settings file (``otelstack.opamp.settings.ServerSettings``, validated here as the server will read
  it) in a ConfigMap, as roles/opamp_server writes it on VMs; the tokens come from Secret keys as
  environment variables, never from the file;
- TLS from the cert-manager Certificate ``otelstack-opamp-server`` unless the spec's collectors reach the
  server in plaintext (``security.tls.collectors_to_opamp: insecure``, dev only);
- probes on ``/healthz`` (src/otelstack/opamp/server.py).

There is no published image: the operator builds one (docs/kubernetes/opamp-server.md) and names it in
``cluster.opampServer.image``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otelstack.kubernetes.collector import config_checksum, scheduling
from otelstack.kubernetes.objects import (
    CONFIG_CHECKSUM_ANNOTATION,
    OPAMP_NAME,
    OPAMP_SERVER_SECRET,
    Component,
    K8sObject,
    container_security_context,
    labels,
    metadata,
    obj,
    pod_security_context,
    secret_env,
    selector_labels,
)
from otelstack.model.spec import TlsMode
from otelstack.opamp.cli import ADMIN_TOKEN_ENV
from otelstack.opamp.settings import ServerSettings
from otelstack.security.layout import OPAMP_PORT
from otelstack.yamlout import dump

if TYPE_CHECKING:
    from otelstack.kubernetes.stack import StackContext

COMPONENT = "opamp-server"
SETTINGS_DIR = "/etc/otelstack-opamp"
TLS_DIR = "/etc/otelstack-opamp/tls"
DATA_DIR = "/var/lib/otelstack-opamp"
DATA_CLAIM = f"{OPAMP_NAME}-data"
POSTGRES_PASSWORD_ENV = "OTELSTACK_OPAMP_POSTGRESQL_PASSWORD"
UID = 10001


def tls_enabled(ctx: StackContext) -> bool:
    return ctx.spec.security.tls.collectors_to_opamp is not TlsMode.INSECURE


def _token_env(ctx: StackContext) -> str:
    kind, _, name = ctx.spec.security.opamp.token.partition(":")
    if kind != "env":
        raise ValueError(
            f"security.opamp.token is {ctx.spec.security.opamp.token!r}; on Kubernetes the server reads the token "
            "from the otelstack-secrets Secret: use env:NAME"
        )
    return name


def secret_names(ctx: StackContext) -> tuple[str, ...]:
    """The keys of Secret otelstack-secrets the server reads (besides the spec's own)."""
    server = ctx.cluster.opamp_server
    if not server.enabled:
        return ()
    names = [ADMIN_TOKEN_ENV]
    if server.postgresql is not None and server.postgresql.password_secret_key:
        names.append(server.postgresql.password_secret_key)
    return tuple(names)


def settings(ctx: StackContext) -> dict[str, object]:
    """The server's settings file, as roles/opamp_server/templates/server.yaml.j2 writes it on VMs."""
    server = ctx.cluster.opamp_server
    data: dict[str, object] = {"listen": f"0.0.0.0:{OPAMP_PORT}", "configs_dir": server.configs_dir}
    if server.postgresql is not None:
        pg: dict[str, object] = {"url": server.postgresql.url}
        if server.postgresql.password_secret_key:
            pg["password"] = {"env": POSTGRES_PASSWORD_ENV}
        data["postgresql"] = pg
    else:
        data["database"] = f"{DATA_DIR}/fleet.db"
    if tls_enabled(ctx):
        data["tls"] = {"cert_file": f"{TLS_DIR}/tls.crt", "key_file": f"{TLS_DIR}/tls.key"}
    else:
        data["allow_insecure"] = True
    data["tokens"] = {ctx.spec.environment: {"env": _token_env(ctx)}}
    data["admin_token"] = {"env": ADMIN_TOKEN_ENV}
    ServerSettings.model_validate(data)  # what `otelstack opamp serve` will accept, checked now
    return data


def _env(ctx: StackContext) -> list[K8sObject]:
    env = secret_env([_token_env(ctx), ADMIN_TOKEN_ENV])
    pg = ctx.cluster.opamp_server.postgresql
    if pg is not None and pg.password_secret_key:
        env += [{"name": POSTGRES_PASSWORD_ENV, "valueFrom": secret_env([pg.password_secret_key])[0]["valueFrom"]}]
    return env


def deployment(ctx: StackContext, settings_text: str) -> K8sObject:
    server = ctx.cluster.opamp_server
    assert server.image is not None  # ClusterSettings requires it when the server is enabled
    env = ctx.spec.environment
    scheme = "HTTPS" if tls_enabled(ctx) else "HTTP"
    probe = {"httpGet": {"path": "/healthz", "port": "opamp", "scheme": scheme}}
    mounts: list[K8sObject] = [
        {"name": "settings", "mountPath": SETTINGS_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes: list[K8sObject] = [
        {"name": "settings", "configMap": {"name": OPAMP_NAME}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
    ]
    if tls_enabled(ctx):
        mounts.append({"name": "tls", "mountPath": TLS_DIR, "readOnly": True})
        volumes.append({"name": "tls", "secret": {"secretName": OPAMP_SERVER_SECRET, "defaultMode": 0o440}})
    if server.postgresql is None:
        mounts.append({"name": "data", "mountPath": DATA_DIR})
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": DATA_CLAIM}})
    container: K8sObject = {
        "name": "opamp-server",
        "image": server.image.reference,
        "imagePullPolicy": "IfNotPresent",
        "command": ["otelstack", "opamp", "serve", "--settings", f"{SETTINGS_DIR}/server.yaml"],
        "env": _env(ctx),
        "ports": [{"name": "opamp", "containerPort": OPAMP_PORT, "protocol": "TCP"}],
        "livenessProbe": {**probe, "initialDelaySeconds": 10, "periodSeconds": 10, "failureThreshold": 6},
        "readinessProbe": {**probe, "periodSeconds": 5, "failureThreshold": 3},
        "resources": {
            "requests": {"cpu": "100m", "memory": server.memory_limit},
            "limits": {"cpu": server.cpu_limit, "memory": server.memory_limit},
        },
        "securityContext": container_security_context(),
        "volumeMounts": mounts,
    }
    strategy: K8sObject = (
        {"type": "Recreate"}
        if server.postgresql is None
        else {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    )
    pod: K8sObject = {
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(UID),
        **scheduling(ctx),
        "containers": [container],
        "volumes": volumes,
    }
    return obj(
        "apps/v1",
        "Deployment",
        metadata(OPAMP_NAME, COMPONENT, namespace=ctx.namespace, environment=env),
        spec={
            "replicas": server.replicas,
            "strategy": strategy,
            "selector": {"matchLabels": selector_labels(COMPONENT, OPAMP_NAME)},
            "template": {
                "metadata": {
                    "labels": labels(COMPONENT, OPAMP_NAME, env),
                    "annotations": {CONFIG_CHECKSUM_ANNOTATION: config_checksum(settings_text)},
                },
                "spec": pod,
            },
        },
    )


def _ingress(ctx: StackContext) -> K8sObject:
    ingress = ctx.cluster.ingress
    spec: K8sObject = {}
    if ingress.class_name:
        spec["ingressClassName"] = ingress.class_name
    backend = {"service": {"name": OPAMP_NAME, "port": {"name": "opamp"}}}
    spec["tls"] = [{"hosts": [ingress.host], "secretName": OPAMP_SERVER_SECRET}]
    spec["rules"] = [
        {"host": ingress.host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}
    ]
    meta = metadata(OPAMP_NAME, COMPONENT, namespace=ctx.namespace, environment=ctx.spec.environment)
    return obj("networking.k8s.io/v1", "Ingress", meta, spec=spec)


def component(ctx: StackContext) -> Component | None:
    server = ctx.cluster.opamp_server
    if not server.enabled:
        return None
    env = ctx.spec.environment
    ns = ctx.namespace
    settings_text = dump(settings(ctx))
    objects: list[K8sObject] = [
        obj("v1", "ConfigMap", metadata(OPAMP_NAME, COMPONENT, namespace=ns, environment=env),
            data={"server.yaml": settings_text}),
    ]  # fmt: skip
    if server.postgresql is None:
        claim_spec: K8sObject = {"accessModes": ["ReadWriteOnce"]}
        if ctx.cluster.storage_class:
            claim_spec["storageClassName"] = ctx.cluster.storage_class
        claim_spec["resources"] = {"requests": {"storage": f"{server.storage_gib}Gi"}}
        objects.append(
            obj("v1", "PersistentVolumeClaim", metadata(DATA_CLAIM, COMPONENT, namespace=ns, environment=env,
                app=OPAMP_NAME), spec=claim_spec)
        )  # fmt: skip
    objects.append(deployment(ctx, settings_text))
    objects.append(
        obj("v1", "Service", metadata(OPAMP_NAME, COMPONENT, namespace=ns, environment=env),
            spec={"type": "ClusterIP", "selector": selector_labels(COMPONENT, OPAMP_NAME),
                  "ports": [{"name": "opamp", "port": OPAMP_PORT, "targetPort": "opamp", "protocol": "TCP"}]})
    )  # fmt: skip
    if ctx.cluster.ingress.enabled:
        objects.append(_ingress(ctx))
    return Component(COMPONENT, tuple(objects), depends_on=("certificates",) if tls_enabled(ctx) else ())
