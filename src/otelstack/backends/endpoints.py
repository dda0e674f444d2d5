"""What the Tempo, Loki and Grafana renders share: where each program finds its certificates and data,
the URLs Grafana queries (derived from the spec's backend endpoints), the datasource UIDs, and how a
signal's retention tiers become one retention period in a backend.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import yaml

from otelstack.model.spec import PlatformSpec, SignalRetention, TlsMode
from otelstack.security.layout import ALERTMANAGER_PORT, LOKI_HTTP_PORT, TEMPO_HTTP_PORT, CollectorFiles

Config = dict[str, Any]

# Fixed datasource UIDs: dashboards, links between datasources and alert rules refer to these.
PROMETHEUS_UID = "otelstack-prometheus"
TEMPO_UID = "otelstack-tempo"
LOKI_UID = "otelstack-loki"
CLICKHOUSE_UID = "otelstack-clickhouse"
ALERTMANAGER_UID = "otelstack-alertmanager"
DATASOURCE_UIDS = (PROMETHEUS_UID, TEMPO_UID, LOKI_UID, CLICKHOUSE_UID, ALERTMANAGER_UID)

# Loki's tenant when auth_enabled (staging, prod): writers and Grafana send it as X-Scope-OrgID.
LOKI_TENANT = "otelstack"
TEMPO_GRPC_PORT = 9095
LOKI_GRPC_PORT = 9096


@dataclass(frozen=True)
class ProgramFiles(CollectorFiles):
    """Where one backend program finds its certificates (the file names the PKI writes for collectors:
    ca.crt, server.crt/key, client.crt/key under ``tls_dir``) and keeps its data (``state_dir``)."""

    tls_dir: str
    state_dir: str


TEMPO_FILES = ProgramFiles(tls_dir="/etc/tempo/tls", state_dir="/var/lib/tempo")
LOKI_FILES = ProgramFiles(tls_dir="/etc/loki/tls", state_dir="/var/lib/loki")
GRAFANA_FILES = ProgramFiles(tls_dir="/etc/grafana/tls", state_dir="/var/lib/grafana")
GRAFANA_SECRETS_DIR = "/etc/grafana/secrets"  # files (mode 0400, owner grafana) or a mounted Secret
GRAFANA_DASHBOARDS_DIR = "/etc/grafana/dashboards"


def backend_tls(spec: PlatformSpec) -> TlsMode:
    """TLS on the hops into the backends (gateways → stores, Grafana → stores, Tempo → Prometheus)."""
    return spec.security.tls.gateway_to_backends


def retention_days(retention: SignalRetention) -> int:
    """The days a backend keeps a signal: its hot, warm and cold tiers (the longest of them). The archive
    tier is outside the backend (exported copies), so it does not lengthen the backend's retention."""
    return max(retention.hot_days, retention.warm_days, retention.cold_days)


def _scheme(spec: PlatformSpec) -> str:
    return "http" if backend_tls(spec) is TlsMode.INSECURE else "https"


def _host(host_port: str) -> str:
    return host_port.rsplit(":", 1)[0]


def tempo_query_url(spec: PlatformSpec) -> str:
    """Tempo's HTTP API (queries) on the host of the distributor endpoint."""
    return f"{_scheme(spec)}://{_host(spec.backends.tempo.endpoint)}:{TEMPO_HTTP_PORT}"


def loki_query_url(spec: PlatformSpec) -> str:
    """Loki's HTTP API: the OTLP endpoint's scheme, host and port (without /otlp)."""
    parts = urlsplit(spec.backends.loki.endpoint)
    port = parts.port or LOKI_HTTP_PORT
    return f"{parts.scheme}://{parts.hostname}:{port}"


def prometheus_query_url(spec: PlatformSpec) -> str:
    """Prometheus' HTTP API: the remote-write URL's scheme, host and port."""
    parts = urlsplit(spec.backends.prometheus.endpoint)
    return f"{parts.scheme}://{parts.netloc}"


def alertmanager_url(spec: PlatformSpec) -> str:
    """Alertmanager beside Prometheus: the host ``alertmanager`` in the Prometheus host's domain."""
    parts = urlsplit(spec.backends.prometheus.endpoint)
    host = parts.hostname or "prometheus"
    domain = host.split(".", 1)[1] if "." in host else ""
    name = f"alertmanager.{domain}" if domain else "alertmanager"
    return f"{parts.scheme}://{name}:{ALERTMANAGER_PORT}"


def dskit_tls_version(version: str) -> str:
    """The spec's lowest TLS version as Go's crypto/tls name, which dskit's server reads."""
    return "VersionTLS" + version.replace(".", "")


def server_block(spec: PlatformSpec, http_port: int, grpc_port: int, files: ProgramFiles) -> Config:
    """The dskit ``server`` block of Tempo and Loki: ports, JSON logs, TLS on the HTTP API (queries from
    Grafana, readiness), client certificates required with mTLS."""
    server: Config = {"http_listen_port": http_port, "grpc_listen_port": grpc_port, "log_format": "json"}
    mode = backend_tls(spec)
    if mode is not TlsMode.INSECURE:
        tls: Config = {"cert_file": files.server_cert, "key_file": files.server_key}
        if mode is TlsMode.MTLS:
            tls["client_auth_type"] = "RequireAndVerifyClientCert"
            tls["client_ca_file"] = files.ca_file
        server["http_tls_config"] = tls
        server["tls_min_version"] = dskit_tls_version(spec.security.tls_min_version)
    return server


def lookup(config: Any, path: str) -> Any:
    """The value at a dotted path of a parsed config, or None."""
    node = config
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def program_header(spec: PlatformSpec, program: str, verify: str) -> str:
    where = spec.environment + (f"/{spec.region}" if spec.region else "")
    return (
        f"{program} for {where} — rendered by otelstack.\n"
        f"Do not edit: change configs/ and re-render. Check with: {verify}"
    )


def parsed(files: Mapping[str, str], name: str) -> tuple[Mapping[str, Any] | None, list[str]]:
    """The YAML mapping in ``files[name]``, or None with the reason."""
    text = files.get(name)
    if text is None:
        return None, [f"{name}: missing"]
    config = yaml.safe_load(text)
    if not isinstance(config, Mapping):
        return None, [f"{name}: not a YAML mapping"]
    return config, []


def checked(files: dict[str, str], check: Callable[[Mapping[str, str]], list[str]]) -> dict[str, str]:
    """``files`` when otelstack's own ``check`` passes; ConfigValidationError (nothing written) otherwise."""
    from otelstack.errors import ConfigValidationError

    problems = check(files)
    if problems:
        raise ConfigValidationError(f"rendered {', '.join(files)} is invalid; nothing was written", problems)
    return files
