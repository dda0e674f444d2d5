"""Grafana in the cluster: a Deployment running the rendered ``grafana/`` directory.

ConfigMap ``grafana-config`` holds ``grafana.ini`` and the two provisioning files, ``grafana-dashboards``
the dashboards as code; one projected volume puts them back under ``/etc/grafana`` as rendered, with the
certificate files (``tls/``) and the admin password and secret key (``secrets/``, from Secret
``grafana-admin``: keys ``GRAFANA_ADMIN_PASSWORD`` and ``GRAFANA_SECRET_KEY`` of the stack's secret config,
never a chart default). Anonymous access stays off (the rendered grafana.ini; ``check_grafana`` refuses
otherwise). Datasource secrets the provisioning reads as ``$__env{NAME}`` come from the keys of
``otelstack-secrets``. The database is on a PersistentVolumeClaim; probe: ``/api/health``.
"""

from __future__ import annotations

import re
from posixpath import basename
from typing import TYPE_CHECKING

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


def env_names(ctx: StackContext) -> tuple[str, ...]:
    """The variables the rendered Grafana files read (``$__env{NAME}``): keys of otelstack-secrets."""
    texts = [ctx.backend_file(path) for path in CONFIG_FILES]
    return tuple(sorted({name for text in texts for name in ENV_REFERENCE.findall(text)}))


def secret_names(ctx: StackContext) -> tuple[str, ...]:
    return env_names(ctx) if backend.runs(ctx, GRAFANA.name) else ()


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
    variables: list[K8sObject] = [{"name": "GF_PATHS_LOGS", "value": "/tmp/log"}, *secret_env(env_names(ctx))]
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
