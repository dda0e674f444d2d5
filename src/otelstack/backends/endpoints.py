"""What the Tempo, Loki and Grafana renders share: where each program finds its certificates and data,
the URLs Grafana queries (derived from the spec's backend endpoints), the datasource UIDs, and how a
signal's retention tiers become one retention period in a backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from otelstack.model.spec import PlatformSpec, SignalRetention, TlsMode
from otelstack.security.layout import ALERTMANAGER_PORT, LOKI_HTTP_PORT, TEMPO_HTTP_PORT

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
class ProgramFiles:
    """Where one backend program finds its certificates (the VM file names the PKI writes) and its data."""

    tls_dir: str
    data_dir: str

    @property
    def ca_file(self) -> str:
        return f"{self.tls_dir}/ca.crt"

    @property
    def server_cert(self) -> str:
        return f"{self.tls_dir}/server.crt"

    @property
    def server_key(self) -> str:
        return f"{self.tls_dir}/server.key"

    @property
    def client_cert(self) -> str:
        return f"{self.tls_dir}/client.crt"

    @property
    def client_key(self) -> str:
        return f"{self.tls_dir}/client.key"


TEMPO_FILES = ProgramFiles(tls_dir="/etc/tempo/tls", data_dir="/var/lib/tempo")
LOKI_FILES = ProgramFiles(tls_dir="/etc/loki/tls", data_dir="/var/lib/loki")
GRAFANA_FILES = ProgramFiles(tls_dir="/etc/grafana/tls", data_dir="/var/lib/grafana")
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
