"""Prometheus alerting and recording rules, and a ``promtool test rules`` file per rule file in which every
alert fires in one case and stays silent in another.

Metric names are those the pinned releases expose. The collector's were read off the real otelcol-contrib
0.159.0 at :8888 (tests/integration/test_collector_metric_names.py does it again): its Prometheus reader
serves the text format without the ``_total`` and unit suffixes (``otelcol_exporter_send_failed_spans``,
``otelcol_process_memory_rss``). The span metrics arrive by remote write from the gateways' span_metrics
connector (namespace ``traces.span.metrics``, unit ms, exporter suffixes on): ``traces_span_metrics_calls_total``
and ``traces_span_metrics_duration_milliseconds_bucket`` with ``service_name``, ``span_kind``,
``status_code``. OpAMP: our server's /metrics (otelstack.opamp.metrics). Loki, Tempo, ClickHouse and
node_exporter: the names their projects document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from otelstack.model.spec import PlatformSpec, SloObjective
from otelstack.sizing import size_platform
from otelstack.yamlout import dump

LONGEST_RANGE_DAYS = 7  # the trend alerts compare with a 7-day average
HEADER = "Rendered by otelstack (otelstack.backends.rules); changes are overwritten on the next plan."
COLLECTOR_JOBS = 'job=~"otel-agent|otel-gateway"'
SIGNALS = ("spans", "log_records", "metric_points")
MIB = 1024 * 1024

Labels = dict[str, str]


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str
    severity: str
    summary: str

    def rule(self) -> dict[str, Any]:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.for_,
            "labels": {"severity": self.severity},
            "annotations": {"summary": self.summary},
        }


@dataclass(frozen=True)
class Case:
    """One promtool test: input series, a time, and the alerts expected then (empty list: silent)."""

    series: dict[str, str]
    eval_time: str
    expect: dict[str, list[Labels]]


@dataclass
class Group:
    name: str
    file: str
    alerts: list[Alert] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    cases: list[Case] = field(default_factory=list)
    interval: str = "30s"
    test_interval: str = "1m"  # rule evaluation in the tests (coarser for the groups that span days)

    def rules_yaml(self) -> dict[str, Any]:
        rules = [*self.records, *(a.rule() for a in self.alerts)]
        return {"groups": [{"name": self.name, "interval": self.interval, "rules": rules}]}

    def tests_yaml(self) -> dict[str, Any]:
        by_name = {a.name: a for a in self.alerts}
        tests = []
        for case in self.cases:
            checks = []
            for alertname, expected in case.expect.items():
                alert = by_name[alertname]
                checks.append(
                    {
                        "eval_time": case.eval_time,
                        "alertname": alertname,
                        "exp_alerts": [
                            {
                                "exp_labels": {**labels, "severity": alert.severity},
                                "exp_annotations": {"summary": alert.summary},
                            }
                            for labels in expected
                        ],
                    }
                )
            tests.append(
                {
                    "interval": "1m",
                    "input_series": [{"series": s, "values": v} for s, v in case.series.items()],
                    "alert_rule_test": checks,
                }
            )
        return {"rule_files": [f"../rules/{self.file}"], "evaluation_interval": self.test_interval, "tests": tests}

    def untested(self) -> list[str]:
        """Alerts without a case that fires them or without one that keeps them silent."""
        fired = {n for c in self.cases for n, e in c.expect.items() if e}
        silent = {n for c in self.cases for n, e in c.expect.items() if not e}
        return [a.name for a in self.alerts if a.name not in fired or a.name not in silent]


def _names(prefix: str) -> str:
    return "|".join(f"{prefix}_{s}" for s in SIGNALS)


def _rate_of(prefix: str) -> str:
    """The 5-minute rate of the spans, log records and metric points counters named ``prefix_*``."""
    return f'rate({{__name__=~"{_names(prefix)}"}}[5m])'


# --- collector health -------------------------------------------------------------------------------


def collector_group(spec: PlatformSpec) -> Group:
    sizing = size_platform(spec)
    agent_rss = int(sizing.agent.memory_limiter_limit_mib * MIB * 0.9)
    gateway_rss = int(sizing.gateway.memory_limiter_limit_mib * MIB * 0.9)
    gateways = spec.tiers.gateway.min_replicas
    g = Group("otelstack-collector", "collector.yml")
    g.alerts = [
        Alert("OTelCollectorDown", f"up{{{COLLECTOR_JOBS}}} == 0", "2m", "critical", "A collector is not scraped"),
        Alert(
            "OTelCollectorRefusing",
            f"sum by (job, instance, receiver) ({_rate_of('otelcol_receiver_refused')}) > 0",
            "5m",
            "warning",
            "A collector's receiver refuses data (memory limiter or a full pipeline)",
        ),
        Alert(
            "OTelCollectorExportFailures",
            f"sum by (job, instance, exporter) ({_rate_of('otelcol_exporter_send_failed')}) > 0",
            "5m",
            "warning",
            "A collector's exporter fails to send after its retries",
        ),
        Alert(
            "OTelCollectorDroppedData",
            f"sum by (job, instance, exporter) ({_rate_of('otelcol_exporter_enqueue_failed')}) > 0",
            "1m",
            "warning",
            "A collector drops data: its sending queue is full",
        ),
        Alert(
            "OTelCollectorQueueNearFull",
            "max by (job, instance, exporter) (otelcol_exporter_queue_size / otelcol_exporter_queue_capacity) > 0.8",
            "5m",
            "warning",
            "A collector's sending queue is over 80 % full",
        ),
        Alert(
            "OTelCollectorMemoryNearLimit",
            f'otelcol_process_memory_rss{{job="otel-agent"}} > {agent_rss} '
            f'or otelcol_process_memory_rss{{job="otel-gateway"}} > {gateway_rss}',
            "5m",
            "warning",
            "A collector's memory is above 90 % of its memory_limiter limit",
        ),
        Alert(
            "OTelLoadBalancerNoBackends",
            'otelcol_loadbalancer_num_backends{job="otel-agent"} == 0',
            "2m",
            "critical",
            "An agent has no gateway to send traces to",
        ),
        Alert(
            "OTelLoadBalancerFewBackends",
            f'otelcol_loadbalancer_num_backends{{job="otel-agent"}} < {gateways}',
            "10m",
            "warning",
            f"An agent sees fewer gateways than the {gateways} the tier keeps",
        ),
    ]
    a = {"job": "otel-agent", "instance": "node-1:8888"}
    gw = {"job": "otel-gateway", "instance": "gw-1:8888"}
    sel = 'job="otel-gateway",instance="gw-1:8888"'
    lb = 'job="otel-agent",instance="node-1:8888",resolver="dns"'
    g.cases = [
        Case(
            {
                f"up{{{sel}}}": "0x10",
                f'otelcol_receiver_refused_spans{{{sel},receiver="otlp",transport="grpc"}}': "0+100x15",
                f'otelcol_exporter_send_failed_log_records{{{sel},exporter="otlp_http/loki"}}': "0+10x15",
                f'otelcol_exporter_enqueue_failed_metric_points{{{sel},exporter="prometheus_remote_write"}}': "0+5x15",
                f'otelcol_exporter_queue_size{{{sel},exporter="otlp_grpc/tempo",data_type="traces"}}': "900x15",
                f'otelcol_exporter_queue_capacity{{{sel},exporter="otlp_grpc/tempo",data_type="traces"}}': "1000x15",
                f"otelcol_process_memory_rss{{{sel}}}": f"{gateway_rss + MIB}x15",
                f"otelcol_loadbalancer_num_backends{{{lb}}}": "0x15",
            },
            "12m",
            {
                "OTelCollectorDown": [gw],
                "OTelCollectorRefusing": [{**gw, "receiver": "otlp"}],
                "OTelCollectorExportFailures": [{**gw, "exporter": "otlp_http/loki"}],
                "OTelCollectorDroppedData": [{**gw, "exporter": "prometheus_remote_write"}],
                "OTelCollectorQueueNearFull": [{**gw, "exporter": "otlp_grpc/tempo"}],
                "OTelCollectorMemoryNearLimit": [gw],
                "OTelLoadBalancerNoBackends": [{**a, "resolver": "dns"}],
                "OTelLoadBalancerFewBackends": [{**a, "resolver": "dns"}],
            },
        ),
        Case(
            {
                f"up{{{sel}}}": "1x15",
                f'otelcol_receiver_refused_spans{{{sel},receiver="otlp",transport="grpc"}}': "3x15",
                f'otelcol_exporter_send_failed_log_records{{{sel},exporter="otlp_http/loki"}}': "0x15",
                f'otelcol_exporter_enqueue_failed_metric_points{{{sel},exporter="prometheus_remote_write"}}': "7x15",
                f'otelcol_exporter_queue_size{{{sel},exporter="otlp_grpc/tempo",data_type="traces"}}': "500x15",
                f'otelcol_exporter_queue_capacity{{{sel},exporter="otlp_grpc/tempo",data_type="traces"}}': "1000x15",
                f"otelcol_process_memory_rss{{{sel}}}": f"{gateway_rss - MIB}x15",
                f"otelcol_loadbalancer_num_backends{{{lb}}}": f"{gateways}x15",
            },
            "12m",
            {a.name: [] for a in g.alerts},
        ),
    ]
    return g


# --- OpAMP fleet ------------------------------------------------------------------------------------


def opamp_group() -> Group:
    g = Group("otelstack-opamp", "opamp.yml")
    g.alerts = [
        Alert("OpAMPServerDown", 'up{job="opamp-server"} == 0', "2m", "critical", "The OpAMP server is not scraped"),
        Alert(
            "OpAMPFleetUnhealthy",
            'sum(agent_fleet_total{status=~"unhealthy|config_failed"}) / clamp_min(sum(agent_fleet_total), 1) > 0.05',
            "10m",
            "warning",
            "More than 5 % of the managed collectors are unhealthy or rejected their config",
        ),
        Alert(
            "OpAMPAgentNotCompliant",
            "otelstack_opamp_agent_config_compliant == 0",
            "30m",
            "warning",
            "A collector does not run the config it should",
        ),
        Alert(
            "OpAMPAgentSilent",
            "time() - otelstack_opamp_agent_last_seen_timestamp_seconds > 600",
            "5m",
            "warning",
            "A collector has not talked to the OpAMP server for 10 minutes",
        ),
    ]
    srv = 'job="opamp-server",instance="opamp:4320"'
    agent = f'{srv},instance_uid="a1",environment="dev",profile="agent-vm",config_hash="abc"'
    exp_agent = {
        "job": "opamp-server",
        "instance": "opamp:4320",
        "instance_uid": "a1",
        "environment": "dev",
        "profile": "agent-vm",
        "config_hash": "abc",
    }
    g.cases = [
        Case(
            {
                f"up{{{srv}}}": "0x40",
                f'agent_fleet_total{{{srv},status="healthy"}}': "8x40",
                f'agent_fleet_total{{{srv},status="config_failed"}}': "2x40",
                f"otelstack_opamp_agent_config_compliant{{{agent}}}": "0x40",
                f'otelstack_opamp_agent_last_seen_timestamp_seconds{{{srv},instance_uid="a1"}}': "0x40",
            },
            "35m",
            {
                "OpAMPServerDown": [{"job": "opamp-server", "instance": "opamp:4320"}],
                "OpAMPFleetUnhealthy": [{}],
                "OpAMPAgentNotCompliant": [exp_agent],
                "OpAMPAgentSilent": [{"job": "opamp-server", "instance": "opamp:4320", "instance_uid": "a1"}],
            },
        ),
        Case(
            {
                f"up{{{srv}}}": "1x40",
                f'agent_fleet_total{{{srv},status="healthy"}}': "100x40",
                f'agent_fleet_total{{{srv},status="config_failed"}}': "1x40",
                f"otelstack_opamp_agent_config_compliant{{{agent}}}": "1x40",
                f'otelstack_opamp_agent_last_seen_timestamp_seconds{{{srv},instance_uid="a1"}}': "0+60x40",
            },
            "35m",
            {a.name: [] for a in g.alerts},
        ),
    ]
    return g


# --- backends and hosts -----------------------------------------------------------------------------


def backends_group(spec: PlatformSpec) -> Group:
    skew = spec.alerting.clock_skew_ms / 1000
    g = Group("otelstack-backends", "backends.yml")
    g.alerts = [
        Alert(
            "BackendDown",
            'up{job=~"prometheus|alertmanager|tempo|loki|clickhouse"} == 0',
            "5m",
            "critical",
            "A backend is not scraped",
        ),
        Alert(
            "LokiDiscardingLogs",
            "sum by (job, instance, reason) (rate(loki_discarded_samples_total[5m])) > 0",
            "10m",
            "warning",
            "Loki discards log lines (rate limits or validation)",
        ),
        Alert(
            "LokiRequestErrors",
            'sum by (job) (rate(loki_request_duration_seconds_count{status_code=~"5.."}[5m])) '
            "/ sum by (job) (rate(loki_request_duration_seconds_count[5m])) > 0.05",
            "10m",
            "warning",
            "More than 5 % of Loki's requests fail",
        ),
        Alert(
            "TempoDiscardingSpans",
            "sum by (job, instance, reason) (rate(tempo_discarded_spans_total[5m])) > 0",
            "10m",
            "warning",
            "Tempo discards spans (rate limits, trace size or live traces)",
        ),
        Alert(
            "ClickHouseDiskAlmostFull",
            "ClickHouseAsyncMetrics_DiskAvailable_default / ClickHouseAsyncMetrics_DiskTotal_default < 0.1",
            "10m",
            "critical",
            "ClickHouse's default disk has less than 10 % free",
        ),
        Alert(
            "ClickHouseDiskFillingUp",
            "predict_linear(ClickHouseAsyncMetrics_DiskAvailable_default[6h], 24 * 3600) < 0",
            "30m",
            "warning",
            "ClickHouse's default disk fills up within a day at the current rate",
        ),
        Alert(
            "HostDiskFillingUp",
            'predict_linear(node_filesystem_avail_bytes{fstype!~"tmpfs|overlay|squashfs"}[6h], 24 * 3600) < 0',
            "1h",
            "warning",
            "A filesystem fills up within a day at the current rate",
        ),
        Alert(
            "HostClockSkew",
            f"abs(node_timex_offset_seconds) > {skew:g}",
            "10m",
            "warning",
            f"A host's clock is off by more than {spec.alerting.clock_skew_ms} ms (timestamps and trace order suffer)",
        ),
    ]
    ch = 'job="clickhouse",instance="ch-1:9363"'
    node = 'job="node",instance="vm-1:9100"'
    fs = f'{node},mountpoint="/var",fstype="ext4",device="/dev/sda2"'
    loki = 'job="loki",instance="loki:3100"'
    tempo = 'job="tempo",instance="tempo:3200"'
    gib = 1024**3
    g.cases = [
        Case(
            {
                'up{job="tempo",instance="tempo:3200"}': "0x400",
                f'loki_discarded_samples_total{{{loki},reason="rate_limited",tenant="otelstack"}}': "0+10x400",
                f'loki_request_duration_seconds_count{{{loki},route="otlp_v1_logs",status_code="500"}}': "0+20x400",
                f'loki_request_duration_seconds_count{{{loki},route="otlp_v1_logs",status_code="204"}}': "0+80x400",
                f'tempo_discarded_spans_total{{{tempo},reason="rate_limited",tenant="single-tenant"}}': "0+10x400",
                f"ClickHouseAsyncMetrics_DiskAvailable_default{{{ch}}}": f"{200 * gib}-{gib // 2}x400",
                f"ClickHouseAsyncMetrics_DiskTotal_default{{{ch}}}": f"{1000 * gib}x400",
                f"node_filesystem_avail_bytes{{{fs}}}": f"{100 * gib}-{gib // 4}x400",
                f"node_timex_offset_seconds{{{node}}}": f"{skew * 2:g}x400",
            },
            "6h",
            {
                "BackendDown": [{"job": "tempo", "instance": "tempo:3200"}],
                "LokiDiscardingLogs": [{"job": "loki", "instance": "loki:3100", "reason": "rate_limited"}],
                "LokiRequestErrors": [{"job": "loki"}],
                "TempoDiscardingSpans": [{"job": "tempo", "instance": "tempo:3200", "reason": "rate_limited"}],
                "ClickHouseDiskAlmostFull": [{"job": "clickhouse", "instance": "ch-1:9363"}],
                "ClickHouseDiskFillingUp": [{"job": "clickhouse", "instance": "ch-1:9363"}],
                "HostDiskFillingUp": [
                    {
                        "job": "node",
                        "instance": "vm-1:9100",
                        "mountpoint": "/var",
                        "fstype": "ext4",
                        "device": "/dev/sda2",
                    }
                ],
                "HostClockSkew": [{"job": "node", "instance": "vm-1:9100"}],
            },
        ),
        Case(
            {
                'up{job="tempo",instance="tempo:3200"}': "1x400",
                f'loki_discarded_samples_total{{{loki},reason="rate_limited",tenant="otelstack"}}': "5x400",
                f'loki_request_duration_seconds_count{{{loki},route="otlp_v1_logs",status_code="500"}}': "0+1x400",
                f'loki_request_duration_seconds_count{{{loki},route="otlp_v1_logs",status_code="204"}}': "0+99x400",
                f'tempo_discarded_spans_total{{{tempo},reason="rate_limited",tenant="single-tenant"}}': "5x400",
                f"ClickHouseAsyncMetrics_DiskAvailable_default{{{ch}}}": f"{500 * gib}-{gib // 1024}x400",
                f"ClickHouseAsyncMetrics_DiskTotal_default{{{ch}}}": f"{1000 * gib}x400",
                f"node_filesystem_avail_bytes{{{fs}}}": f"{100 * gib}-{gib // 1024}x400",
                f"node_timex_offset_seconds{{{node}}}": f"{skew / 10:g}x400",
            },
            "6h",
            {a.name: [] for a in g.alerts},
        ),
    ]
    return g


# --- trends ------------------------------------------------------------------------------------------

TREND_RECORD = "otelstack:otelcol_receiver_accepted_spans:rate5m"


def trend_group() -> Group:
    g = Group("otelstack-trends", "trends.yml", test_interval="5m")
    g.records = [
        {
            "record": TREND_RECORD,
            "expr": 'sum by (job) (rate(otelcol_receiver_accepted_spans{job="otel-gateway"}[5m]))',
        }
    ]
    g.alerts = [
        Alert(
            "TelemetryVolumeSpike",
            f"{TREND_RECORD} > 2 * avg_over_time({TREND_RECORD}[7d])",
            "30m",
            "warning",
            "The gateways accept more than twice their 7-day average of spans",
        ),
        Alert(
            "TelemetryVolumeDrop",
            f"{TREND_RECORD} < 0.2 * avg_over_time({TREND_RECORD}[7d])",
            "30m",
            "warning",
            "The gateways accept less than a fifth of their 7-day average of spans (a pipeline gap?)",
        ),
    ]
    series = 'otelcol_receiver_accepted_spans{job="otel-gateway",instance="gw-1:8888",receiver="otlp",transport="grpc"}'
    steady = 6 * 24 * 60  # six days of minutes at the usual rate
    g.cases = [
        Case(
            {series: f"0+600x{steady} {600 * steady}+3000x120"},
            f"{steady + 110}m",
            {"TelemetryVolumeSpike": [{"job": "otel-gateway"}], "TelemetryVolumeDrop": []},
        ),
        Case(
            {series: f"0+600x{steady} {600 * steady}+60x120"},
            f"{steady + 110}m",
            {"TelemetryVolumeDrop": [{"job": "otel-gateway"}], "TelemetryVolumeSpike": []},
        ),
    ]
    return g


# --- SLOs ---------------------------------------------------------------------------------------------

CALLS = "traces_span_metrics_calls_total"
BUCKET = "traces_span_metrics_duration_milliseconds_bucket"
COUNT = "traces_span_metrics_duration_milliseconds_count"
SERVER = 'span_kind="SPAN_KIND_SERVER"'
# (alert suffix, long window, short window, burn-rate factor, for, severity): 2 %, 5 %, 10 %, 10 % of a
# 30-day budget spent in the long window.
BURN_TIERS = (
    ("1h", "1h", "5m", 14.4, "2m", "critical"),
    ("6h", "6h", "30m", 6.0, "15m", "critical"),
    ("1d", "1d", "2h", 3.0, "1h", "warning"),
    ("3d", "3d", "6h", 1.0, "3h", "warning"),
)
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


def error_ratio(slo: SloObjective, window: str) -> str:
    """The share of bad server requests over ``window``, per service."""
    only = f',service_name="{slo.service}"' if slo.service else ""
    if slo.kind == "availability":
        bad = f'{CALLS}{{{SERVER},status_code="STATUS_CODE_ERROR"{only}}}'
        total = f"sum by (service_name) (rate({CALLS}{{{SERVER}{only}}}[{window}]))"
        return f"sum by (service_name) (rate({bad}[{window}])) / {total}"
    le = f'le=~"{slo.latency_threshold_ms}(\\\\.0)?"'
    good = f"sum by (service_name) (rate({BUCKET}{{{SERVER},{le}{only}}}[{window}]))"
    return f"1 - ({good} / sum by (service_name) (rate({COUNT}{{{SERVER}{only}}}[{window}])))"


def slo_record(window: str) -> str:
    return f"slo:sli_error:ratio_rate{window}"


def slo_group(slo: SloObjective) -> Group:
    budget = round(1 - slo.objective_percent / 100, 10)
    g = Group(f"otelstack-slo-{slo.name}", f"slo-{slo.name}.yml", test_interval="5m")
    sel = f'slo="{slo.name}"'
    g.records = [{"record": slo_record(w), "expr": error_ratio(slo, w), "labels": {"slo": slo.name}} for w in WINDOWS]
    g.alerts = [
        Alert(
            f"SLOBurnRate{suffix}_{slo.name}",
            f"{slo_record(long)}{{{sel}}} > {factor:g} * {budget:g}"
            f" and {slo_record(short)}{{{sel}}} > {factor:g} * {budget:g}",
            for_,
            severity,
            f"SLO {slo.name}: the error budget burns at {factor:g}x over {long} and {short}",
        )
        for suffix, long, short, factor, for_, severity in BURN_TIERS
    ]
    service = slo.service or "checkout"
    labels = f'service_name="{service}",{SERVER},span_name="GET /api",job="gateway",instance="gw-1"'
    minutes = 3 * 24 * 60 + 7 * 60  # past the 3-day window and its 3-hour `for`

    def inputs(bad_share: float) -> dict[str, str]:
        total = 1000
        bad = round(total * bad_share, 6)
        le = slo.latency_threshold_ms
        if slo.kind == "availability":
            return {
                f'{CALLS}{{{labels},status_code="STATUS_CODE_ERROR"}}': f"0+{bad:g}x{minutes}",
                f'{CALLS}{{{labels},status_code="STATUS_CODE_UNSET"}}': f"0+{total - bad:g}x{minutes}",
            }
        return {
            f'{BUCKET}{{{labels},status_code="STATUS_CODE_UNSET",le="{le}"}}': f"0+{total - bad:g}x{minutes}",
            f'{COUNT}{{{labels},status_code="STATUS_CODE_UNSET"}}': f"0+{total}x{minutes}",
        }

    expected = {"service_name": service, "slo": slo.name}
    at = f"{minutes - 10}m"
    g.cases = [
        Case(inputs(min(0.5, budget * 20)), at, {a.name: [expected] for a in g.alerts}),
        Case(inputs(budget / 2), at, {a.name: [] for a in g.alerts}),
    ]
    return g


# --- the whole set ------------------------------------------------------------------------------------


def groups(spec: PlatformSpec) -> list[Group]:
    return [
        collector_group(spec),
        opamp_group(),
        backends_group(spec),
        trend_group(),
        *(slo_group(s) for s in spec.alerting.slos),
    ]


def render_rules(spec: PlatformSpec) -> dict[str, str]:
    """``prometheus/rules/<group>.yml`` and ``prometheus/tests/<group>.yml`` for every group."""
    files: dict[str, str] = {}
    for group in groups(spec):
        missing = group.untested()
        if missing:  # a programming error in this module, not a user error
            raise AssertionError(f"{group.name}: alerts without a firing and a silent test case: {missing}")
        files[f"prometheus/rules/{group.file}"] = dump(group.rules_yaml(), HEADER)
        files[f"prometheus/tests/{group.file}"] = dump(group.tests_yaml(), HEADER)
    return files


def alert_names(spec: PlatformSpec) -> list[str]:
    return [a.name for g in groups(spec) for a in g.alerts]
