"""ClickHouse in the cluster (``otelstack:cluster.backends.clickhouse``), mode ``single``: one server.

A StatefulSet of one ``clickhouse/clickhouse-server`` pod on a volume claim (``/var/lib/clickhouse``), behind
Service ``clickhouse``. Its ``config.d/`` is a projected volume holding the rendered
``clickhouse/config.d/otelstack.xml`` byte for byte and the stack's own ``otelstack-kubernetes.xml``
(clickhouse_config.py: listeners, console logging, ``<openSSL>``); ``users.d/`` holds the admin user the
schema Job logs in as (its password from ``otelstack-secrets``, the Job's ``adminPasswordKey``); ``tls/``
holds the cert-manager Certificate's files. The image's entrypoint (which writes into ``/etc`` and wants
root to drop privileges) is not used: the container runs ``clickhouse-server`` itself, read-only root.

TLS follows the spec's endpoint: a TLS endpoint (``?secure=true`` or https) gets a server on the TLS ports
the flows matrix opens (9440, 8443); a plaintext one (allowed in dev only) a server on 9000 and 8123, and
the NetworkPolicies open those instead (:func:`serve`). Either must agree with the backends' hop
(``security.tls.gateway_to_backends``): the gateways trust the platform CA only when it is not
``insecure``. The altinity mode is clickhouse_altinity.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otelstack.backends.clickhouse.server import SERVER_CONFIG
from otelstack.errors import SpecError
from otelstack.kubernetes import backend, clickhouse_config
from otelstack.kubernetes.backend import Backend
from otelstack.kubernetes.clickhouse import ADMIN_PASSWORD_ENV
from otelstack.kubernetes.objects import SECRETS_NAME, Component, K8sObject
from otelstack.model.spec import TlsMode, clickhouse_plaintext
from otelstack.security import flows
from otelstack.security.layout import (
    CLICKHOUSE_HTTP_PORT,
    CLICKHOUSE_HTTPS_PORT,
    CLICKHOUSE_NATIVE_PORT,
    CLICKHOUSE_NATIVE_TLS_PORT,
)

if TYPE_CHECKING:
    from otelstack.kubernetes.stack import StackContext

# Not the image's user (101): checkov CKV_K8S_40 asks for a uid above 10000, as for Grafana. The server runs as
# any uid (a non-root owner mismatch of the data directory is a warning); the volume is group-owned (fsGroup).
UID = 10001
CLICKHOUSE = Backend("clickhouse", "clickhouse", clickhouse_config.CONFIG_D, clickhouse_config.DATA_DIR, UID)
USERS_VOLUME = "users"
TLS_VOLUME = "tls"
SERVER_BINARY = "/usr/bin/clickhouse-server"
MAIN_CONFIG = f"{clickhouse_config.SERVER_DIR}/config.xml"


def runs(ctx: StackContext) -> bool:
    return backend.runs(ctx, CLICKHOUSE.name)


def mode(ctx: StackContext) -> str:
    return ctx.cluster.backends.clickhouse.mode


def endpoint_tls(ctx: StackContext) -> bool:
    """The in-cluster server serves TLS: the spec's endpoint asks for it. Checked against the backends' hop;
    an endpoint that skips verification is refused (the server's certificate is the platform CA's)."""
    endpoint = ctx.spec.backends.clickhouse.endpoint
    why = clickhouse_plaintext(endpoint)
    hop = backend.backend_tls(ctx)
    if why and "skip_verify" in why:
        raise SpecError(
            f"`backends.clickhouse.endpoint` = {endpoint!r} {why}, but the stack runs ClickHouse in the cluster "
            "with a certificate of the platform CA, which the gateways verify; allowed: the endpoint without "
            "skip_verify"
        )
    if why is None and hop is TlsMode.INSECURE:
        raise SpecError(
            f"`backends.clickhouse.endpoint` = {endpoint!r} asks for TLS, but `security.tls.gateway_to_backends` is "
            "insecure: the gateways would not trust the platform CA that signs the in-cluster server's certificate; "
            "allowed: gateway_to_backends tls or mtls, or a plaintext endpoint (tcp://HOST:9000, http://HOST:8123)"
        )
    if why is not None and hop is not TlsMode.INSECURE:
        raise SpecError(
            f"`backends.clickhouse.endpoint` = {endpoint!r} {why}, but `security.tls.gateway_to_backends` is "
            f"{hop.value}: the in-cluster server would serve plaintext on a hop the spec protects; allowed: "
            "tcp://HOST:9440?secure=true or https://HOST:8443, or gateway_to_backends insecure (dev)"
        )
    return why is None


def native_port(tls: bool) -> int:
    return CLICKHOUSE_NATIVE_TLS_PORT if tls else CLICKHOUSE_NATIVE_PORT


def http_port(tls: bool) -> int:
    return CLICKHOUSE_HTTPS_PORT if tls else CLICKHOUSE_HTTP_PORT


def endpoint_port(ctx: StackContext, tls: bool) -> int:
    """The Service port the spec's endpoint must name: the HTTP(S) interface for http(s)://, else native."""
    scheme = ctx.spec.backends.clickhouse.endpoint.split("://", 1)[0].lower()
    return http_port(tls) if scheme in ("http", "https") else native_port(tls)


def serve(ctx: StackContext) -> backend.Serve:
    """Listener of the flows matrix → the one the in-cluster server serves: itself with TLS, the plaintext
    port of the same role (9000 for 9440, 8123 for 8443; same names as a plaintext endpoint) without."""
    tls = endpoint_tls(ctx)

    def served(listener: flows.Listener) -> flows.Listener:
        if tls or listener.port not in clickhouse_config.PLAINTEXT_PORTS:
            return listener
        return flows.Listener(
            clickhouse_config.PLAINTEXT_PORTS[listener.port],
            clickhouse_config.PLAINTEXT_NAMES[listener.port],
            listener.protocol,
            f"{listener.description} (plaintext: the spec's endpoint)",
        )

    return served


def check(ctx: StackContext) -> bool:
    """The spec's ClickHouse settings fit a server the stack runs; returns whether it serves TLS."""
    backend.require_spec_backend(ctx, CLICKHOUSE.name, ctx.spec.backends.clickhouse.enabled)
    tls = endpoint_tls(ctx)
    spec = ctx.spec.backends.clickhouse
    backend.check_endpoint(ctx, CLICKHOUSE.name, "backends.clickhouse.endpoint", spec.endpoint, endpoint_port(ctx, tls))
    schema_url = ctx.cluster.clickhouse_schema.url
    if schema_url:
        backend.check_endpoint(ctx, CLICKHOUSE.name, "otelstack:cluster.clickhouseSchema.url", schema_url,
                               http_port(tls))  # fmt: skip
    if mode(ctx) == "single" and spec.cluster:
        raise SpecError(
            f"`backends.clickhouse.cluster` is {spec.cluster!r}: its ReplicatedMergeTree tables and ON CLUSTER "
            "statements need ClickHouse Keeper and a cluster in remote_servers, but "
            "otelstack:cluster.backends.clickhouse.mode is single (one server); allowed: mode altinity, or "
            "backends.clickhouse.cluster null"
        )
    if mode(ctx) == "altinity" and not spec.cluster:
        raise SpecError(
            "otelstack:cluster.backends.clickhouse.mode is altinity (a replicated cluster with Keeper), but "
            "`backends.clickhouse.cluster` is null, so the tables would be plain MergeTree on each server; "
            "allowed: a cluster name in backends.clickhouse.cluster, or mode single"
        )
    return tls


def config_files(ctx: StackContext, tls: bool) -> dict[str, str]:
    """config.d/: the render byte for byte and the stack's listener fragment."""
    mtls = backend.backend_tls(ctx) is TlsMode.MTLS
    return {
        SERVER_CONFIG.rsplit("/", 1)[1]: ctx.backend_file(SERVER_CONFIG),
        clickhouse_config.SERVER_FILE: clickhouse_config.server_fragment(tls, mtls),
    }


def users_files(ctx: StackContext) -> dict[str, str]:
    admin = ctx.cluster.clickhouse_schema.admin_user
    return {clickhouse_config.ADMIN_FILE: clickhouse_config.admin_fragment(admin, ADMIN_PASSWORD_ENV)}


def admin_password_env(ctx: StackContext) -> K8sObject:
    key = ctx.cluster.clickhouse_schema.admin_password_key
    return {"name": ADMIN_PASSWORD_ENV, "valueFrom": {"secretKeyRef": {"name": SECRETS_NAME, "key": key}}}


def tls_volume(ctx: StackContext) -> K8sObject:
    """The Certificate's files under tls/ as the fragment names them (ca.crt, server.crt, server.key)."""
    items = [
        {"key": "ca.crt", "path": "ca.crt"},
        {"key": "tls.crt", "path": "server.crt"},
        {"key": "tls.key", "path": "server.key"},
    ]
    return {"name": TLS_VOLUME, "secret": {"secretName": CLICKHOUSE.tls_secret, "defaultMode": 0o440, "items": items}}


def single_component(ctx: StackContext, tls: bool) -> Component:
    config, users = config_files(ctx, tls), users_files(ctx)
    scheme = "HTTPS" if tls else "HTTP"
    probe = backend.probes("/ping", "https" if tls else "http", scheme)
    mounts: list[K8sObject] = [{"name": USERS_VOLUME, "mountPath": clickhouse_config.USERS_D, "readOnly": True}]
    if tls:
        mounts.append({"name": TLS_VOLUME, "mountPath": clickhouse_config.TLS_DIR, "readOnly": True})
    args = [f"--config-file={MAIN_CONFIG}"]
    main = backend.container(ctx, CLICKHOUSE, args=args, probe=probe, env=[admin_password_env(ctx)],
                             extra_mounts=mounts, serve=serve(ctx))  # fmt: skip
    main = {"name": main.pop("name"), "image": main.pop("image"), "command": [SERVER_BINARY], **main}
    pod = backend.pod_spec(ctx, CLICKHOUSE, main, [backend.config_map_source("clickhouse-config", config)])
    pod["volumes"].append(backend.projected_config([backend.config_map_source("clickhouse-users", users)]))
    pod["volumes"][-1]["name"] = USERS_VOLUME
    if tls:
        pod["volumes"].append(tls_volume(ctx))
    checksum = backend.checksum([*config.values(), *users.values(), *args])
    objects = [
        *(backend.tls_certificate(ctx, CLICKHOUSE) if tls else []),
        *backend.config_maps(ctx, CLICKHOUSE, {"config": config, "users": users}),
        backend.service(ctx, CLICKHOUSE, serve(ctx)),
        backend.statefulset(ctx, CLICKHOUSE, pod, checksum),
    ]
    return Component(CLICKHOUSE.name, tuple(objects), depends_on=backend.depends(ctx))


def component(ctx: StackContext) -> Component | None:
    if not runs(ctx):
        return None
    tls = check(ctx)
    if mode(ctx) == "altinity":
        from otelstack.kubernetes import clickhouse_altinity

        return clickhouse_altinity.component(ctx, tls)
    return single_component(ctx, tls)
