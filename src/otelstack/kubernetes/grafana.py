"""Grafana in the cluster: a Deployment running the rendered ``grafana/`` directory.

ConfigMap ``grafana-config`` holds ``grafana.ini`` and the two provisioning files, ``grafana-dashboards``
the dashboards as code; one projected volume puts them back under ``/etc/grafana`` as rendered, with the
certificate files (``tls/``) and the admin password and secret key (``secrets/``, from Secret
``grafana-admin``: keys ``GRAFANA_ADMIN_PASSWORD`` and ``GRAFANA_SECRET_KEY`` of the stack's secret config,
never a chart default). Anonymous access stays off (the rendered grafana.ini; ``check_grafana`` refuses
otherwise). Datasource secrets the provisioning reads as ``$__env{NAME}`` come from the keys of
``otelstack-secrets``. The database is on a PersistentVolumeClaim; probe: ``/api/health``.

The ClickHouse datasource needs the plugin ``grafana-clickhouse-datasource``, which the image lacks. Where
the rendered provisioning has that datasource, Grafana installs the pinned release before it serves
(``GF_PLUGINS_PREINSTALL_SYNC=<id>@<version>``: Grafana's ``[plugins] preinstall_sync``) onto its data
volume, and its NetworkPolicy opens HTTPS to public addresses (or ``downloadCidrs``) for the download
(:func:`plugin_egress`); with ``clickhousePlugin.install: image`` the image has it and Grafana downloads
nothing (``GF_PLUGINS_PREINSTALL_DISABLED``).
"""

from __future__ import annotations

import re
from posixpath import basename
from typing import TYPE_CHECKING

import yaml

from otelstack.backends.endpoints import GRAFANA_FILES
from otelstack.backends.grafana.provisioning import (
    ADMIN_PASSWORD_FILE,
    DASHBOARDS_PROVIDER_FILE,
    DATASOURCES_FILE,
    GRAFANA_INI_FILE,
    SECRET_KEY_FILE,
)
from otelstack.kubernetes import backend
from otelstack.kubernetes.backend import Backend
from otelstack.kubernetes.objects import Component, K8sObject, secret_env
from otelstack.model.spec import TlsMode

if TYPE_CHECKING:
    from otelstack.kubernetes.stack import StackContext

# Not the image's own user (472): checkov CKV_K8S_40 asks for a uid above 10000 (no clash with a node's users).
# The image runs as any uid (its files are group 0 and world-readable); its data volume is group-owned (fsGroup).
UID = 10001
GRAFANA = Backend("grafana", "grafana", "/etc/grafana", GRAFANA_FILES.state_dir, UID)
ADMIN_SECRET = "grafana-admin"
ADMIN_KEYS = {"GRAFANA_ADMIN_PASSWORD": basename(ADMIN_PASSWORD_FILE), "GRAFANA_SECRET_KEY": basename(SECRET_KEY_FILE)}
# Rendered path → (ConfigMap key, path under /etc/grafana).
CONFIG_FILES = {
    GRAFANA_INI_FILE: ("grafana.ini", "grafana.ini"),
    DATASOURCES_FILE: ("datasources.yaml", DATASOURCES_FILE.removeprefix("grafana/")),
    DASHBOARDS_PROVIDER_FILE: ("dashboards.yaml", DASHBOARDS_PROVIDER_FILE.removeprefix("grafana/")),
}
ENV_REFERENCE = re.compile(r"\$__env\{([A-Za-z_][A-Za-z0-9_]*)\}")
CLICKHOUSE_PLUGIN = "grafana-clickhouse-datasource"
PLUGIN_DOWNLOAD_PORT = 443
# Public addresses: everything but the private, shared (CGNAT), link-local (cloud metadata) and loopback
# ranges, where a cluster's pods, Services and nodes are.
PUBLIC_ADDRESSES = (
    ("0.0.0.0/0", ("10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16")),
    ("::/0", ("::1/128", "fc00::/7", "fe80::/10")),
)


def env_names(ctx: StackContext) -> tuple[str, ...]:
    """The variables the rendered Grafana files read (``$__env{NAME}``): keys of otelstack-secrets."""
    texts = [ctx.backend_file(path) for path in CONFIG_FILES]
    return tuple(sorted({name for text in texts for name in ENV_REFERENCE.findall(text)}))


def secret_names(ctx: StackContext) -> tuple[str, ...]:
    return env_names(ctx) if backend.runs(ctx, GRAFANA.name) else ()


def provisions_clickhouse(ctx: StackContext) -> bool:
    """The rendered datasources have one of the ClickHouse plugin's type."""
    rendered = yaml.safe_load(ctx.backend_file(DATASOURCES_FILE)) or {}
    return any(item.get("type") == CLICKHOUSE_PLUGIN for item in rendered.get("datasources") or [])


def downloads_plugin(ctx: StackContext) -> bool:
    """Grafana runs in the cluster, provisions the ClickHouse datasource and installs its plugin itself."""
    settings = ctx.cluster.backends.grafana.clickhouse_plugin
    return backend.runs(ctx, GRAFANA.name) and settings.install == "preinstall" and provisions_clickhouse(ctx)


def plugin_env(ctx: StackContext) -> list[K8sObject]:
    """Grafana's plugin settings (environment overrides of ``[plugins]``): install the pinned ClickHouse
    plugin before serving, or download nothing when the image has it."""
    settings = ctx.cluster.backends.grafana.clickhouse_plugin
    if settings.install == "image":
        return [{"name": "GF_PLUGINS_PREINSTALL_DISABLED", "value": "true"}]
    if not provisions_clickhouse(ctx):
        return []
    return [{"name": "GF_PLUGINS_PREINSTALL_SYNC", "value": f"{CLICKHOUSE_PLUGIN}@{settings.version}"}]


def plugin_egress(ctx: StackContext) -> K8sObject | None:
    """Egress of Grafana's NetworkPolicy for the plugin download: HTTPS to ``downloadCidrs``, or to any public
    address; None when Grafana downloads nothing."""
    if not downloads_plugin(ctx):
        return None
    cidrs = ctx.cluster.backends.grafana.clickhouse_plugin.download_cidrs
    peers: list[K8sObject]
    if cidrs:
        peers = [{"ipBlock": {"cidr": cidr}} for cidr in cidrs]
    else:
        peers = [{"ipBlock": {"cidr": cidr, "except": list(private)}} for cidr, private in PUBLIC_ADDRESSES]
    return {"to": peers, "ports": [{"protocol": "TCP", "port": PLUGIN_DOWNLOAD_PORT}]}


def component(ctx: StackContext) -> Component | None:
    if not backend.runs(ctx, GRAFANA.name):
        return None
    config = {key: ctx.backend_file(path) for path, (key, _) in CONFIG_FILES.items()}
    dashboards = {
        name.removeprefix("dashboards/"): text
        for name, text in ctx.backend_dir("grafana").items()
        if name.startswith("dashboards/")
    }
    config_items = [{"key": key, "path": where} for key, where in CONFIG_FILES.values()]
    sources = [
        {"configMap": {"name": "grafana-config", "items": config_items}},
        backend.config_map_source("grafana-dashboards", dashboards, "dashboards/"),
        backend.secret_source(ADMIN_SECRET, {k: f"secrets/{v}" for k, v in ADMIN_KEYS.items()}),
        *backend.tls_sources(ctx, GRAFANA),
    ]
    admin = backend.config_secret(ctx, GRAFANA, ADMIN_SECRET, ADMIN_KEYS)
    scheme = "HTTP" if backend.backend_tls(ctx) is TlsMode.INSECURE else "HTTPS"
    variables: list[K8sObject] = [
        {"name": "GF_PATHS_LOGS", "value": "/tmp/log"},
        *plugin_env(ctx),
        *secret_env(env_names(ctx)),
    ]
    main = backend.container(ctx, GRAFANA, args=[], probe=backend.probes("/api/health", "http", scheme), env=variables)
    del main["args"]  # the image's entrypoint reads /etc/grafana/grafana.ini (GF_PATHS_CONFIG)
    pod = backend.pod_spec(ctx, GRAFANA, main, sources)
    checksum = backend.checksum([*config.values(), *dashboards.values()])
    objects: list[K8sObject] = [
        *backend.tls_certificate(ctx, GRAFANA),
        admin,
        *backend.config_maps(ctx, GRAFANA, {"config": config, "dashboards": dashboards}),
        backend.service(ctx, GRAFANA),
        *backend.deployment(ctx, GRAFANA, pod, checksum),
    ]
    return Component("grafana", tuple(objects), depends_on=backend.depends(ctx))
