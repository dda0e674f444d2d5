"""Grafana's provisioning: datasources with fixed UIDs and the links between them (a span to its logs and
its metrics, an exemplar to its trace, a log line to its trace), the dashboards provider, and grafana.ini.

Secrets are never in these files: passwords and keys are ``$__file{…}`` references to files the
deployment provides (VM: root-owned files readable by grafana; Kubernetes: a mounted Secret). Grafana
expands ``$…`` in provisioning files, so every ``$`` meant for Grafana's own query variables is written
``$$`` (see ``literal``).
"""

from __future__ import annotations

from typing import Any

from otelstack.backends.endpoints import (
    ALERTMANAGER_UID,
    CLICKHOUSE_UID,
    GRAFANA_DASHBOARDS_DIR,
    GRAFANA_FILES,
    GRAFANA_SECRETS_DIR,
    LOKI_UID,
    PROMETHEUS_UID,
    TEMPO_UID,
    alertmanager_url,
    backend_tls,
    loki_query_url,
    prometheus_query_url,
    tempo_query_url,
)
from otelstack.backends.grafana.metrics import gateway_span_metrics
from otelstack.backends.loki import tenant_headers
from otelstack.model.spec import PlatformSpec, TlsMode
from otelstack.security.layout import CLICKHOUSE_HTTP_PORT, CLICKHOUSE_HTTPS_PORT, GRAFANA_PORT

DATASOURCES_FILE = "grafana/provisioning/datasources/otelstack.yaml"
DASHBOARDS_PROVIDER_FILE = "grafana/provisioning/dashboards/otelstack.yaml"
GRAFANA_INI_FILE = "grafana/grafana.ini"
ADMIN_PASSWORD_FILE = f"{GRAFANA_SECRETS_DIR}/admin-password"
SECRET_KEY_FILE = f"{GRAFANA_SECRETS_DIR}/secret-key"

Config = dict[str, Any]


def file_ref(path: str) -> str:
    """A Grafana variable-expansion reference to a file's content."""
    return "$__file{" + path + "}"


def secret_ref(ref: str) -> str:
    """A spec secret reference (env:NAME or file:/path) as Grafana variable expansion."""
    kind, _, value = ref.partition(":")
    return ("$__env{" if kind == "env" else "$__file{") + value + "}"


def literal(text: str) -> str:
    """Text that must reach Grafana as written: ``$`` escaped as ``$$`` in a provisioning file."""
    return text.replace("$", "$$")


def _tls(spec: PlatformSpec) -> tuple[Config, Config]:
    """jsonData and secureJsonData for a datasource reached over the backends' TLS."""
    mode = backend_tls(spec)
    if mode is TlsMode.INSECURE:
        return {}, {}
    json_data: Config = {"tlsAuthWithCACert": True, "tlsAuth": mode is TlsMode.MTLS}
    secure: Config = {"tlsCACert": file_ref(GRAFANA_FILES.ca_file)}
    if mode is TlsMode.MTLS:
        secure["tlsClientCert"] = file_ref(GRAFANA_FILES.client_cert)
        secure["tlsClientKey"] = file_ref(GRAFANA_FILES.client_key)
    return json_data, secure


def _datasource(name: str, kind: str, uid: str, url: str | None, json_data: Config, secure: Config) -> Config:
    ds: Config = {"name": name, "type": kind, "uid": uid, "access": "proxy", "orgId": 1, "editable": False}
    if url:
        ds["url"] = url
    ds["jsonData"] = json_data
    if secure:
        ds["secureJsonData"] = secure
    return ds


def datasources(spec: PlatformSpec) -> Config:
    tls_json, tls_secure = _tls(spec)
    span = gateway_span_metrics(spec)
    prometheus = _datasource(
        "Prometheus",
        "prometheus",
        PROMETHEUS_UID,
        prometheus_query_url(spec),
        {
            **tls_json,
            "httpMethod": "POST",
            "timeInterval": "15s",
            # Exemplars carry the trace id as label trace_id (OpenTelemetry's name).
            "exemplarTraceIdDestinations": [{"name": "trace_id", "datasourceUid": TEMPO_UID}],
        },
        dict(tls_secure),
    )
    prometheus["isDefault"] = True
    tempo = _datasource(
        "Tempo",
        "tempo",
        TEMPO_UID,
        tempo_query_url(spec),
        {
            **tls_json,
            "tracesToLogsV2": {
                "datasourceUid": LOKI_UID,
                "spanStartTimeShift": "-5m",
                "spanEndTimeShift": "5m",
                "filterByTraceID": True,
                "filterBySpanID": False,
                "customQuery": True,
                "tags": [{"key": "service.name", "value": "service_name"}],
                "query": literal('{${__tags}} | trace_id="${__span.traceId}"'),
            },
            "tracesToMetrics": {
                "datasourceUid": PROMETHEUS_UID,
                "spanStartTimeShift": "-5m",
                "spanEndTimeShift": "5m",
                "tags": [{"key": "service.name", "value": "service_name"}],
                "queries": [
                    {"name": "Request rate", "query": literal(f"sum(rate({span.calls}{{$__tags}}[5m]))")},
                    {
                        "name": "Error rate",
                        "query": literal(f'sum(rate({span.calls}{{$__tags, status_code="STATUS_CODE_ERROR"}}[5m]))'),
                    },
                    {
                        "name": "p95 latency",
                        "query": literal(
                            f"histogram_quantile(0.95, sum by (le) (rate({span.duration_bucket}{{$__tags}}[5m])))"
                        ),
                    },
                ],
            },
            "serviceMap": {"datasourceUid": PROMETHEUS_UID},
            "nodeGraph": {"enabled": True},
            "lokiSearch": {"datasourceUid": LOKI_UID},
            "search": {"hide": False},
            "streamingEnabled": {"search": True, "metrics": True},
        },
        dict(tls_secure),
    )
    loki_json: Config = {
        **tls_json,
        "maxLines": 1000,
        # Native OTLP keeps trace_id as structured metadata: match it as a label, link to Tempo.
        "derivedFields": [
            {
                "name": "TraceID",
                "matcherType": "label",
                "matcherRegex": "trace_id",
                "datasourceUid": TEMPO_UID,
                "url": literal("${__value.raw}"),
                "urlDisplayLabel": "Trace",
            }
        ],
    }
    loki_secure = dict(tls_secure)
    # The tenant is a routing key, not a secret: Loki's auth_enabled asks for it; TLS authenticates.
    for i, (header, value) in enumerate(tenant_headers(spec).items(), start=1):
        loki_json[f"httpHeaderName{i}"] = header
        loki_secure[f"httpHeaderValue{i}"] = value
    loki = _datasource("Loki", "loki", LOKI_UID, loki_query_url(spec), loki_json, loki_secure)
    alertmanager = _datasource(
        "Alertmanager",
        "alertmanager",
        ALERTMANAGER_UID,
        alertmanager_url(spec),
        {**tls_json, "implementation": "prometheus", "handleGrafanaManagedAlerts": False},
        dict(tls_secure),
    )
    return {
        "apiVersion": 1,
        "deleteDatasources": [],
        # ClickHouse only where the gateways write to it (its read-only user exists there).
        "datasources": [
            prometheus,
            tempo,
            loki,
            *([_clickhouse(spec)] if spec.backends.clickhouse.enabled else []),
            alertmanager,
        ],
    }


def _clickhouse(spec: PlatformSpec) -> Config:
    from urllib.parse import parse_qsl, urlsplit

    ch = spec.backends.clickhouse
    parts = urlsplit(ch.endpoint)
    query = {k.lower(): v.lower() for k, v in parse_qsl(parts.query)}
    http = parts.scheme in ("http", "https")
    secure = parts.scheme == "https" or query.get("secure") in ("1", "t", "true")
    # Grafana reads over ClickHouse's HTTP interface whatever protocol the gateways write with: the flows
    # matrix (grafana-to-clickhouse) opens HTTPS to Grafana, not the native port, on VMs and in the cluster.
    default_port = CLICKHOUSE_HTTPS_PORT if secure else CLICKHOUSE_HTTP_PORT
    json_data: Config = {
        "host": parts.hostname,
        "port": (parts.port if http else None) or default_port,
        "protocol": "http",
        "secure": secure,
        "username": ch.reader_username,  # SELECT only (the ClickHouse render's reader role)
        "defaultDatabase": ch.database,
        "tlsAuthWithCACert": secure,
        # OpenTelemetry schema defaults of the plugin: the exporter's tables in our database.
        "traces": {"defaultDatabase": ch.database, "defaultTable": "otel_traces", "otelEnabled": True},
        "logs": {"defaultDatabase": ch.database, "defaultTable": "otel_logs", "otelEnabled": True},
    }
    secure_data: Config = {"password": secret_ref(ch.reader_password)}
    if secure:
        secure_data["tlsCACert"] = file_ref(GRAFANA_FILES.ca_file)
    return _datasource("ClickHouse", "grafana-clickhouse-datasource", CLICKHOUSE_UID, None, json_data, secure_data)


def dashboards_provider() -> Config:
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "otelstack",
                "orgId": 1,
                "folder": "otelstack",
                "folderUid": "otelstack",
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 60,
                "options": {"path": GRAFANA_DASHBOARDS_DIR, "foldersFromFilesStructure": False},
            }
        ],
    }


def grafana_ini(spec: PlatformSpec) -> str:
    """grafana.ini: no anonymous access, admin password and secret key from files, secure cookies."""
    tls = backend_tls(spec) is not TlsMode.INSECURE
    sections: list[tuple[str, list[tuple[str, str]]]] = [
        (
            "server",
            [
                ("protocol", "https" if tls else "http"),
                ("http_port", str(GRAFANA_PORT)),
                *(
                    [
                        ("cert_file", GRAFANA_FILES.server_cert),
                        ("cert_key", GRAFANA_FILES.server_key),
                        ("min_tls_version", f"TLS{spec.security.tls_min_version}"),
                    ]
                    if tls
                    else []
                ),
                ("enforce_domain", "false"),
            ],
        ),
        ("paths", [("data", GRAFANA_FILES.state_dir), ("provisioning", "/etc/grafana/provisioning")]),
        (
            "security",
            [
                ("admin_user", "admin"),
                ("admin_password", file_ref(ADMIN_PASSWORD_FILE)),
                ("secret_key", file_ref(SECRET_KEY_FILE)),
                ("disable_gravatar", "true"),
                # Browsers only send the session cookie over HTTPS; behind a TLS-terminating proxy in dev too.
                ("cookie_secure", "true"),
                ("cookie_samesite", "strict"),
                ("strict_transport_security", "true" if tls else "false"),
                ("allow_embedding", "false"),
            ],
        ),
        ("auth", [("disable_login_form", "false")]),
        ("auth.anonymous", [("enabled", "false")]),
        ("auth.basic", [("enabled", "false")]),
        ("users", [("allow_sign_up", "false"), ("allow_org_create", "false"), ("auto_assign_org_role", "Viewer")]),
        ("snapshots", [("external_enabled", "false")]),
        (
            "analytics",
            [("reporting_enabled", "false"), ("check_for_updates", "false"), ("check_for_plugin_updates", "false")],
        ),
        ("log", [("mode", "console"), ("level", "info")]),
        ("log.console", [("format", "json")]),
    ]
    where = spec.environment + (f"/{spec.region}" if spec.region else "")
    lines = [f"; Grafana for {where} — rendered by otelstack. Do not edit: change configs/ and re-render."]
    for name, items in sections:
        lines.append("")
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {value}" for key, value in items)
    return "\n".join(lines) + "\n"
