"""Grafana: provisioned datasources and their links, grafana.ini, and the dashboards — every panel queries
only provisioned datasource UIDs and known metric names (the collector's names checked on the real binary)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from otelstack.backends.endpoints import CLICKHOUSE_UID, LOKI_UID, PROMETHEUS_UID, TEMPO_UID
from otelstack.backends.grafana import check_grafana, dashboard_queries, render_grafana
from otelstack.backends.grafana import metrics as m
from otelstack.backends.grafana.promql import metric_names
from otelstack.backends.grafana.provisioning import DATASOURCES_FILE, GRAFANA_INI_FILE
from otelstack.dist.locate import locate
from otelstack.security.flows import FLOWS
from tests.backends.helpers import ENVIRONMENTS, env_spec, variant

REPO = Path(__file__).resolve().parents[2]


def _files(env: str = "dev") -> dict[str, str]:
    return render_grafana(env_spec(env))


def _datasources(files: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {ds["uid"]: ds for ds in yaml.safe_load(files[DATASOURCES_FILE])["datasources"]}


def _dashboards(files: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {k: json.loads(v) for k, v in files.items() if k.startswith("grafana/dashboards/")}


def _uids(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("datasource"), dict):
            found.add(node["datasource"].get("uid"))
        for value in node.values():
            found |= _uids(value)
    elif isinstance(node, list):
        for value in node:
            found |= _uids(value)
    return found


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_panels_query_only_provisioned_datasources_and_known_metrics(env: str) -> None:
    files = _files(env)
    provisioned = set(_datasources(files))
    known = m.known_metrics(env_spec(env))
    boards = _dashboards(files)
    assert {"collector-pipelines", "red-per-service", "slo", "opamp-fleet", "backends"} == {
        Path(k).stem for k in boards
    }
    for name, board in boards.items():
        used = _uids(board)
        assert used and used <= provisioned, (name, used - provisioned)
        queries = list(dashboard_queries(board))
        assert queries, name
        for title, expr in queries:
            names = metric_names(expr)
            assert names <= known, (name, title, sorted(names - known))
        assert all(metric_names(expr) for title, expr in queries if "vector(" not in expr), name
    assert check_grafana(files, known) == []


def test_the_metric_name_extractor() -> None:
    expr = (
        'sum by (exporter) (rate(a_total{job=~"$job", x="y{z}"}[$__rate_interval])) '
        "/ on (instance) group_left max(b) or vector(0) + histogram_quantile(0.9, c_bucket)"
    )
    assert metric_names(expr) == {"a_total", "b", "c_bucket"}


def test_unknown_metrics_and_datasources_are_reported() -> None:
    files = _files()
    name = "grafana/dashboards/slo.json"
    board = json.loads(files[name])
    first, second = [p for p in board["panels"] if p.get("targets")][:2]
    first["targets"][0]["expr"] = "sum(rate(otelcol_receiver_accepted_spans_total[5m]))"
    second["datasource"] = {"type": "prometheus", "uid": "prometheus"}
    problems = check_grafana({**files, name: json.dumps(board)}, m.known_metrics(env_spec("dev")))
    assert any("unknown metrics ['otelcol_receiver_accepted_spans_total']" in p for p in problems), problems
    assert any("queries datasource 'prometheus', which is not provisioned" in p for p in problems), problems


def test_span_metric_names_follow_the_gateway_render() -> None:
    span = m.gateway_span_metrics(env_spec("dev"))
    assert span.calls == "traces_span_metrics_calls_total"
    assert span.duration_bucket == "traces_span_metrics_duration_milliseconds_bucket"
    assert m.SpanMetrics({"namespace": "spans", "histogram": {"unit": "s"}}).duration_bucket == (
        "spans_duration_seconds_bucket"
    )


def test_opamp_fleet_names_are_the_servers() -> None:
    source = (REPO / "src/otelstack/opamp/metrics.py").read_text()
    exposed = set(re.findall(r"# TYPE (\S+) ", source))
    assert exposed >= m.OPAMP_METRICS, sorted(m.OPAMP_METRICS - exposed)


def test_datasource_links() -> None:
    ds = _datasources(_files("prod"))
    assert set(ds) == {PROMETHEUS_UID, TEMPO_UID, LOKI_UID, CLICKHOUSE_UID, "otelstack-alertmanager"}
    tempo = ds[TEMPO_UID]["jsonData"]
    assert tempo["tracesToLogsV2"]["datasourceUid"] == LOKI_UID
    assert tempo["tracesToMetrics"]["datasourceUid"] == PROMETHEUS_UID
    assert tempo["serviceMap"]["datasourceUid"] == PROMETHEUS_UID
    assert ds[PROMETHEUS_UID]["jsonData"]["exemplarTraceIdDestinations"] == [
        {"name": "trace_id", "datasourceUid": TEMPO_UID}
    ]
    (derived,) = ds[LOKI_UID]["jsonData"]["derivedFields"]
    assert derived["datasourceUid"] == TEMPO_UID and derived["matcherType"] == "label"
    assert ds[CLICKHOUSE_UID]["type"] == "grafana-clickhouse-datasource"
    # What Grafana reads after its own expansion ($$ → $): its query variables, intact.
    expanded = tempo["tracesToLogsV2"]["query"].replace("$$", "$")
    assert expanded == '{${__tags}} | trace_id="${__span.traceId}"'
    assert derived["url"].replace("$$", "$") == "${__value.raw}"
    assert ds[LOKI_UID]["jsonData"]["httpHeaderName1"] == "X-Scope-OrgID"  # auth_enabled in prod


def test_secrets_are_references_and_mtls_uses_client_certificates() -> None:
    files = render_grafana(variant("prod", {"security": {"tls": {"gateway_to_backends": "mtls"}}}))
    text = files[DATASOURCES_FILE]
    for ds in yaml.safe_load(text)["datasources"]:
        for key, value in ds.get("secureJsonData", {}).items():
            if key != "httpHeaderValue1":
                assert re.fullmatch(r"\$__(file|env)\{[^}]+\}", value), (ds["name"], key, value)
    tempo = _datasources(files)[TEMPO_UID]
    assert tempo["jsonData"]["tlsAuth"] is True
    assert tempo["secureJsonData"]["tlsClientKey"] == "$__file{/etc/grafana/tls/client.key}"
    clickhouse = _datasources(files)[CLICKHOUSE_UID]
    assert clickhouse["secureJsonData"]["password"] == "$__env{OTELSTACK_CLICKHOUSE_READER_PASSWORD}"
    assert clickhouse["jsonData"]["username"] == "grafana_reader"


def test_unescaped_dollar_and_inline_secret_are_reported() -> None:
    files = _files()
    doc = yaml.safe_load(files[DATASOURCES_FILE])
    tempo = next(d for d in doc["datasources"] if d["uid"] == TEMPO_UID)
    tempo["jsonData"]["tracesToLogsV2"]["query"] = '{${__tags}} | trace_id="${__span.traceId}"'
    clickhouse = next(d for d in doc["datasources"] if d["uid"] == CLICKHOUSE_UID)
    clickhouse["secureJsonData"]["password"] = "hunter2"
    problems = check_grafana({**files, DATASOURCES_FILE: yaml.safe_dump(doc)})
    assert any("Grafana would expand as an environment variable" in p for p in problems), problems
    assert any("secureJsonData.password is inline" in p for p in problems), problems


def test_grafana_ini_refuses_anonymous_access() -> None:
    files = _files("prod")
    ini = files[GRAFANA_INI_FILE]
    assert "admin_password = $__file{/etc/grafana/secrets/admin-password}" in ini
    assert re.search(r"\[auth\.anonymous\]\nenabled = false", ini)
    assert "cookie_secure = true" in ini and "protocol = https" in ini
    bad = ini.replace("[auth.anonymous]\nenabled = false", "[auth.anonymous]\nenabled = true\norg_role = Admin")
    bad = bad.replace("admin_password = $__file{/etc/grafana/secrets/admin-password}", "admin_password = admin")
    problems = check_grafana({**files, GRAFANA_INI_FILE: bad})
    assert any("[auth.anonymous] enabled = 'true'" in p for p in problems)
    assert any("org_role = 'Admin'" in p for p in problems)
    assert any("admin_password = 'admin'" in p for p in problems)


def test_without_clickhouse_no_clickhouse_datasource() -> None:
    files = render_grafana(variant("dev", {"backends": {"clickhouse": {"enabled": False}}}))
    assert CLICKHOUSE_UID not in _datasources(files)


@pytest.mark.parametrize(
    ("endpoint", "scheme", "port"),
    [
        ("tcp://clickhouse.dev.internal:9440?secure=true", True, 8443),
        ("https://clickhouse.dev.internal:8443", True, 8443),
        ("tcp://clickhouse.dev.internal:9000", False, 8123),
    ],
)
def test_grafana_queries_clickhouse_over_the_port_the_flows_open(endpoint: str, scheme: bool, port: int) -> None:
    """The gateways may write over the native protocol; Grafana reads over the HTTP interface, which is
    what the flows matrix (VM firewall, NetworkPolicies) opens to Grafana: the native port is not."""
    spec = variant("dev", {"backends": {"clickhouse": {"endpoint": endpoint}}})
    json_data = _datasources(render_grafana(spec))[CLICKHOUSE_UID]["jsonData"]
    assert (json_data["protocol"], json_data["secure"], json_data["port"]) == ("http", scheme, port)
    (flow,) = [f for f in FLOWS if f.name == "grafana-to-clickhouse"]
    if scheme:
        assert json_data["port"] in flow.ports
    assert 9440 not in flow.ports and 9000 not in flow.ports


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Collector:
    """The real collector at the pinned release with one config, on loopback ports."""

    def __init__(self, tmp_path: Path, config: dict[str, Any]) -> None:
        exe = locate("otelcol-contrib")
        if exe is None:
            pytest.fail("otelcol-contrib is not built: run `make binaries`")
        path = tmp_path / "collector.yaml"
        path.write_text(yaml.safe_dump(config))
        self.log_path = tmp_path / "collector.log"
        self.log = self.log_path.open("w")
        self.proc = subprocess.Popen([exe, "--config", str(path)], stdout=self.log, stderr=subprocess.STDOUT)

    def __enter__(self) -> _Collector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def _wait_for(check: Any, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not check():
        time.sleep(0.5)


def test_collector_metric_names_are_the_pinned_binarys(tmp_path: Path) -> None:
    """Traffic through a receiver, processors and a failing queued exporter of the real collector; then every
    name the dashboards take from the collector must be on its :8888-style endpoint."""
    otlp, telemetry = _free_port(), _free_port()
    dead = _free_port()  # nothing listens here: the exporter fails
    pipeline = {"receivers": ["otlp"], "processors": ["memory_limiter", "resource"], "exporters": ["otlp_grpc/dead"]}
    config = {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{otlp}"}}}},
        "processors": {
            "memory_limiter": {"check_interval": "1s", "limit_mib": 400},
            "resource": {"attributes": [{"key": "x", "value": "y", "action": "insert"}]},
        },
        "exporters": {
            "otlp_grpc/dead": {
                "endpoint": f"127.0.0.1:{dead}",
                "tls": {"insecure": True},
                "retry_on_failure": {"enabled": False},
                "sending_queue": {"enabled": True, "queue_size": 100},
            }
        },
        "service": {
            "pipelines": {"traces": pipeline, "metrics": pipeline, "logs": pipeline},
            "telemetry": {
                "metrics": {
                    "level": "detailed",
                    "readers": [{"pull": {"exporter": {"prometheus": {"host": "127.0.0.1", "port": telemetry}}}}],
                }
            },
        },
    }
    names: set[str] = set()

    def scraped() -> bool:
        nonlocal names
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{telemetry}/metrics", timeout=5).read().decode()
        except OSError:
            return False
        names = {line.split("{")[0].split(" ")[0] for line in body.splitlines() if line and line[0] != "#"}
        return names >= m.COLLECTOR_METRICS_SEEN

    with _Collector(tmp_path, config):
        _send_traffic(f"127.0.0.1:{otlp}")
        _wait_for(scraped)
    assert names >= m.COLLECTOR_METRICS_SEEN, sorted(m.COLLECTOR_METRICS_SEEN - names)


def test_span_metric_names_are_what_the_gateway_writes(tmp_path: Path) -> None:
    """The gateway render's span_metrics connector and remote-write exporter on the real collector, writing to
    a loopback receiver: the series names and labels the RED and SLO dashboards query arrive."""
    from otelstack.collector.blocks import Paths
    from otelstack.collector.gateway import render_gateway
    from otelstack.security.layout import VM
    from tests.backends.remote_write import Receiver

    spec = env_spec("dev")
    gateway = render_gateway(spec, Paths.for_vm(VM), opamp_extension_enabled=False)
    (connector_id,) = gateway["connectors"]
    connector = {**gateway["connectors"][connector_id], "metrics_flush_interval": "1s"}
    (exporter_id,) = [k for k in gateway["exporters"] if k.startswith("prometheus_remote_write")]
    otlp = _free_port()
    span = m.gateway_span_metrics(spec)
    with Receiver() as receiver:
        exporter = {
            **gateway["exporters"][exporter_id],
            "endpoint": f"http://127.0.0.1:{receiver.port}/api/v1/write",
            "tls": {"insecure": True},
        }
        config = {
            "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{otlp}"}}}},
            "connectors": {connector_id: connector},
            "exporters": {exporter_id: exporter},
            "service": {
                "pipelines": {
                    "traces": {"receivers": ["otlp"], "exporters": [connector_id]},
                    "metrics": {"receivers": [connector_id], "exporters": [exporter_id]},
                },
                "telemetry": {"metrics": {"level": "none"}},
            },
        }
        with _Collector(tmp_path, config):
            _send_traffic(f"127.0.0.1:{otlp}", error_span=True)
            _wait_for(lambda: receiver.names >= span.names)
        assert receiver.names >= span.names, sorted(span.names - receiver.names)
        calls = [labels for labels in receiver.series if labels.get("__name__") == span.calls]
        assert {"service_name", "span_name", "status_code"} <= set(calls[0]), calls[0]
        assert any(labels.get("status_code") == "STATUS_CODE_ERROR" for labels in calls), calls


def _send_traffic(endpoint: str, *, error_span: bool = False) -> None:
    import logging

    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the receiver listens once the collector has started
        with socket.socket() as s:
            host, port = endpoint.rsplit(":", 1)
            if s.connect_ex((host, int(port))) == 0:
                break
        time.sleep(0.2)
    traces = TracerProvider()
    traces.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    from opentelemetry.trace import Status, StatusCode

    for _ in range(3):
        with traces.get_tracer("otelstack-test").start_as_current_span("span") as current:
            if error_span:
                current.set_status(Status(StatusCode.ERROR))
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint, insecure=True), 500)
    meters = MeterProvider(metric_readers=[reader])
    meters.get_meter("otelstack-test").create_counter("requests").add(1)
    meters.force_flush()
    logs = LoggerProvider()
    logs.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=endpoint, insecure=True)))
    logger = logging.getLogger("otelstack-test-grafana")
    logger.addHandler(LoggingHandler(logger_provider=logs))
    logger.warning("a log record")
    logs.shutdown()
    meters.shutdown()
    traces.shutdown()


def test_slo_dashboard_follows_the_spec_objectives() -> None:
    spec = variant(
        "dev",
        {
            "alerting": {
                "slos": [
                    {
                        "name": "checkout_latency",
                        "kind": "latency",
                        "objective_percent": 99.5,
                        "latency_threshold_ms": 500,
                        "service": "checkout",
                        "window_days": 28,
                    },
                ]
            }
        },
    )
    board = json.loads(render_grafana(spec)["grafana/dashboards/slo.json"])
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert rows == ["checkout_latency: 99.5 % ≤ 500 ms (checkout)"]
    exprs = [expr for title, expr in dashboard_queries(board) if not title.startswith("variable")]
    budget = next(p for p in board["panels"] if p["type"] == "gauge")
    assert budget["title"] == "checkout_latency: error budget left (28d)"
    assert "[28d]" in budget["targets"][0]["expr"] and budget["targets"][0]["expr"].endswith("/ 0.005")
    assert all('service_name="checkout"' in e for e in exprs if "traces_span_metrics" in e)
    assert any('le=~"500(\\\\.0)?"' in e for e in exprs), exprs


def test_red_counts_the_requests_a_service_serves() -> None:
    board = json.loads(_files()["grafana/dashboards/red-per-service.json"])
    spans = [e for t, e in dashboard_queries(board) if "traces_span_metrics" in e and not t.startswith("variable")]
    assert spans and all('span_kind=~"SPAN_KIND_SERVER|SPAN_KIND_CONSUMER"' in e for e in spans), spans
    assert all(
        t.get("exemplar") is True for p in board["panels"] for t in p.get("targets", []) if "traces_span" in t["expr"]
    )
