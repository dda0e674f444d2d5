"""The platform's dashboards, written with Grafana's Foundation SDK and rendered to JSON files that the
file provider loads: collector pipelines, RED per service (exemplars on), SLO and error budget, the OpAMP
fleet, and the health of ClickHouse, Loki and Tempo. Every metric name comes from ``metrics``; every
datasource is one of the provisioned UIDs.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.builders import gauge as gauge_panel
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableOption,
    VariableRefresh,
)

from otelstack.backends.endpoints import PROMETHEUS_UID
from otelstack.backends.grafana import metrics as m
from otelstack.model.spec import PlatformSpec, SloObjective

PROM = DataSourceRef(type_val="prometheus", uid=PROMETHEUS_UID)
SIGNALS = ("traces", "metrics", "logs")
ERROR = 'status_code="STATUS_CODE_ERROR"'
SERVER = 'span_kind="SPAN_KIND_SERVER"'
SERVED = 'span_kind=~"SPAN_KIND_SERVER|SPAN_KIND_CONSUMER"'


class _Ids:
    def __init__(self) -> None:
        self.next = 0

    def __call__(self) -> int:
        self.next += 1
        return self.next


def _q(expr: str, legend: str = "", ref: str = "A", *, exemplar: bool = False) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(PROM).range()
    if legend:
        query = query.legend_format(legend)
    if exemplar:
        query = query.exemplar(True)
    return query


def _steps(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    return (
        dashboard.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=value, color=color) for value, color in steps])
    )


def _series(ids: _Ids, title: str, unit: str, *queries: prometheus.Dataquery, width: int = 12) -> timeseries.Panel:
    panel = timeseries.Panel().id(ids()).title(title).datasource(PROM).unit(unit).height(8).span(width)
    for query in queries:
        panel = panel.with_target(query)
    return panel


def _stat(
    ids: _Ids,
    title: str,
    unit: str,
    query: prometheus.Dataquery,
    thresholds: dashboard.ThresholdsConfig,
    width: int = 6,
) -> stat.Panel:
    return (
        stat.Panel()
        .id(ids())
        .title(title)
        .datasource(PROM)
        .unit(unit)
        .height(6)
        .span(width)
        .thresholds(thresholds)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]))
        .with_target(query)
    )


def _label_variable(name: str, label: str, metric: str, *, multi: bool = True) -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(PROM)
        .query({"query": f"label_values({metric}, {name if label == name else label})", "refId": "var"})
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .multi(multi)
        .include_all(multi)
        .current(
            VariableOption(text="All", value="$__all", selected=True) if multi else VariableOption(text="", value="")
        )
    )


def _base(uid: str, title: str, description: str) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["otelstack"])
        .editable()
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("utc")
    )


def _rate(metric: str, by: str = "", where: str = "") -> str:
    """``sum [by (…)] (rate(metric{where}[$__rate_interval]))``."""
    grouping = f" by ({by})" if by else ""
    matchers = f"{{{where}}}" if where else ""
    return f"sum{grouping} (rate({metric}{matchers}[$__rate_interval]))"


def _rates(ids: _Ids, title: str, by: str, where: str, series: list[tuple[str, str]], width: int) -> timeseries.Panel:
    """One panel with the rate of each (metric, what) grouped by ``by``, legends ``{{by}} what``."""
    queries = [
        _q(_rate(metric, by, where), f"{{{{{by}}}}} {what}", chr(ord("A") + i))
        for i, (metric, what) in enumerate(series)
    ]
    return _series(ids, title, "short", *queries, width=width)


def collector_pipelines(spec: PlatformSpec) -> dashboard.Dashboard:
    ids = _Ids()
    sel = 'job=~"$job"'
    d = _base(
        "otelstack-collector-pipelines",
        "Collector pipelines",
        "Agents and gateways: items accepted and refused by receivers, sent and failed by exporters, sending queues.",
    ).with_variable(_label_variable("job", "job", m.PROCESS_UPTIME))
    d = d.with_row(dashboard.Row("Receivers").id(ids()))
    for signal in SIGNALS:
        outcomes = [
            (m.RECEIVER_ACCEPTED[signal], "accepted"),
            (m.RECEIVER_REFUSED[signal], "refused"),
            (m.RECEIVER_FAILED[signal], "failed"),
        ]
        d = d.with_panel(_rates(ids, f"Receivers: {signal} accepted / refused / failed", "receiver", sel, outcomes, 8))
    d = d.with_row(dashboard.Row("Processors").id(ids()))
    flow = [(m.PROCESSOR_INCOMING, "in"), (m.PROCESSOR_OUTGOING, "out")]
    d = d.with_panel(_rates(ids, "Processors: items in / out", "processor", sel, flow, 24))
    d = d.with_row(dashboard.Row("Exporters").id(ids()))
    for signal in SIGNALS:
        outcomes = [
            (m.EXPORTER_SENT[signal], "sent"),
            (m.EXPORTER_FAILED[signal], "failed"),
            (m.EXPORTER_ENQUEUE_FAILED[signal], "enqueue failed"),
        ]
        d = d.with_panel(_rates(ids, f"Exporters: {signal} sent / failed", "exporter", sel, outcomes, 8))
    per_queue = "{{exporter}} {{instance}}"
    fill = f"max by (exporter, instance) ({m.QUEUE_SIZE}{{{sel}}} / {m.QUEUE_CAPACITY}{{{sel}}})"
    d = d.with_panel(
        _series(ids, "Sending queue fill (size / capacity)", "percentunit", _q(fill, per_queue)).thresholds(
            _steps((None, "green"), (0.8, "red"))
        )
    )
    size = f"max by (exporter, instance) ({m.QUEUE_SIZE}{{{sel}}})"
    d = d.with_panel(_series(ids, "Sending queue size", "short", _q(size, per_queue)))
    d = d.with_row(dashboard.Row("Processes").id(ids()))
    rss = f"max by (instance) ({m.PROCESS_RSS}{{{sel}}})"
    d = d.with_panel(_series(ids, "Memory (RSS)", "bytes", _q(rss, "{{instance}}"), width=8))
    cpu = _rate(m.PROCESS_CPU, "instance", sel)
    d = d.with_panel(_series(ids, "CPU", "percentunit", _q(cpu, "{{instance}}"), width=8))
    d = d.with_panel(_series(ids, "Targets up", "short", _q(f"sum by (job) ({m.UP}{{{sel}}})", "{{job}}"), width=8))
    return d


def red_per_service(spec: PlatformSpec) -> dashboard.Dashboard:
    ids = _Ids()
    span = m.gateway_span_metrics(spec)
    # Requests a service serves (server and consumer spans): its client and internal spans are other services'
    # requests or parts of its own, and would count one request several times.
    sel = f'service_name=~"$service", {SERVED}'
    d = _base(
        "otelstack-red",
        "RED per service",
        "Rate, errors and duration per service from the gateways' span metrics (every span, before sampling); "
        "exemplars link a point to its trace in Tempo.",
    ).with_variable(_label_variable("service", "service_name", span.calls))
    d = d.with_panel(
        _series(
            ids,
            "Requests per second",
            "reqps",
            _q(
                _rate(span.calls, "service_name", sel),
                "{{service_name}}",
                exemplar=True,
            ),
            width=8,
        )
    )
    d = d.with_panel(
        _series(
            ids,
            "Error ratio",
            "percentunit",
            _q(
                f"{_rate(span.calls, 'service_name', f'{sel}, {ERROR}')} / {_rate(span.calls, 'service_name', sel)}",
                "{{service_name}}",
                exemplar=True,
            ),
            width=8,
        )
    )
    d = d.with_panel(
        _series(
            ids,
            f"Duration p50 / p95 / p99 ({span.unit})",
            span.unit,
            *(
                _q(
                    f"histogram_quantile({q}, sum by (le, service_name) "
                    f"(rate({span.duration_bucket}{{{sel}}}[$__rate_interval])))",
                    f"{{{{service_name}}}} p{int(q * 100)}",
                    ref,
                    exemplar=True,
                )
                for q, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
            ),
            width=8,
        )
    )
    d = d.with_panel(
        _series(
            ids,
            "Requests per route",
            "reqps",
            _q(
                f"sum by (service_name, http_route) (rate({span.calls}{{{sel}}}[$__rate_interval]))",
                "{{service_name}} {{http_route}}",
                exemplar=True,
            ),
        )
    )
    d = d.with_panel(
        _series(
            ids,
            "Calls between services (Tempo service graph)",
            "reqps",
            _q(
                f'sum by (client, server) (rate({m.SERVICE_GRAPH_REQUESTS}{{server=~"$service"}}[$__rate_interval]))',
                "{{client}} → {{server}}",
                "A",
            ),
            _q(
                f'sum by (client, server) (rate({m.SERVICE_GRAPH_FAILED}{{server=~"$service"}}[$__rate_interval]))',
                "{{client}} → {{server}} failed",
                "B",
            ),
        )
    )
    return d


# Burn-rate windows of the multi-window alerts (14.4×: 1h, 6×: 6h, 3×: 1d, 1×: 3d) and the colours at
# those factors.
BURN_WINDOWS = ("1h", "6h", "1d", "3d")


def slo_error_ratio(span: m.SpanMetrics, slo: SloObjective, window: str, sel: str) -> str:
    """The share of bad server requests over ``window`` (all selected services together)."""
    only = f'service_name="{slo.service}"' if slo.service else sel
    if slo.kind == "availability":
        bad = f"sum(rate({span.calls}{{{SERVER}, {ERROR}, {only}}}[{window}]))"
        return f"({bad} or vector(0)) / sum(rate({span.calls}{{{SERVER}, {only}}}[{window}]))"
    threshold = slo.latency_threshold_ms if span.unit == "ms" else (slo.latency_threshold_ms or 0) / 1000
    le = f'le=~"{threshold:g}(\\\\.0)?"'
    good = f"sum(rate({span.duration_bucket}{{{SERVER}, {le}, {only}}}[{window}]))"
    return f"1 - ({good} / sum(rate({span.duration_count}{{{SERVER}, {only}}}[{window}])))"


def slo(spec: PlatformSpec) -> dashboard.Dashboard:
    """One row per objective of ``alerting.slos``: SLI against the objective, error budget left over the
    SLO's window, and the burn rates at the alerts' long windows."""
    ids = _Ids()
    span = m.gateway_span_metrics(spec)
    sel = 'service_name=~"$service"'
    d = _base(
        "otelstack-slo",
        "SLO and error budget",
        "The objectives of alerting.slos on the gateways' span metrics (server spans): the SLI, the error budget "
        "left over each SLO's window and the burn rates of the multi-window alerts (14.4×, 6×, 3×, 1×).",
    ).with_variable(_label_variable("service", "service_name", span.calls))
    for objective in spec.alerting.slos:
        target = objective.objective_percent / 100
        budget = round(1 - target, 10)
        what = f"≤ {objective.latency_threshold_ms} ms" if objective.kind == "latency" else "without error"
        scope = objective.service or "$service"
        d = d.with_row(dashboard.Row(f"{objective.name}: {objective.objective_percent:g} % {what} ({scope})").id(ids()))
        d = d.with_panel(
            _series(
                ids,
                f"{objective.name}: SLI (1h) against the objective",
                "percentunit",
                _q(f"1 - ({slo_error_ratio(span, objective, '1h', sel)})", "SLI", "A"),
                _q(f"vector({target:g})", "objective", "B"),
                width=12,
            )
        )
        d = d.with_panel(
            gauge_panel.Panel()
            .id(ids())
            .title(f"{objective.name}: error budget left ({objective.window_days}d)")
            .datasource(PROM)
            .unit("percentunit")
            .min(0)
            .max(1)
            .height(8)
            .span(4)
            .thresholds(_steps((None, "red"), (0.2, "yellow"), (0.5, "green")))
            .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]))
            .with_target(_q(f"1 - ({slo_error_ratio(span, objective, f'{objective.window_days}d', sel)}) / {budget:g}"))
        )
        for window in BURN_WINDOWS:
            d = d.with_panel(
                _stat(
                    ids,
                    f"Burn rate {window}",
                    "x",
                    _q(f"({slo_error_ratio(span, objective, window, sel)}) / {budget:g}"),
                    _steps((None, "green"), (1, "yellow"), (6, "orange"), (14.4, "red")),
                    width=2,
                ).height(8)
            )
    return d


def opamp_fleet(spec: PlatformSpec) -> dashboard.Dashboard:
    ids = _Ids()
    d = _base("otelstack-opamp-fleet", "OpAMP fleet", "Managed collectors by status, config compliance and rollouts.")
    d = d.with_panel(
        _series(ids, "Collectors by status", "short", _q(f"sum by (status) ({m.FLEET_TOTAL})", "{{status}}"), width=12)
    )
    d = d.with_panel(
        _stat(
            ids,
            "Config compliance",
            "percentunit",
            _q(f"avg({m.FLEET_COMPLIANT})"),
            _steps((None, "red"), (0.9, "yellow"), (0.99, "green")),
        )
    )
    d = d.with_panel(
        _stat(
            ids,
            "Agents silent > 5 min",
            "short",
            _q(f"count(time() - {m.FLEET_LAST_SEEN} > 300) or vector(0)"),
            _steps((None, "green"), (1, "red")),
        )
    )
    d = d.with_panel(
        _series(
            ids,
            "Non-compliant collectors by profile",
            "short",
            _q(f"count by (profile) ({m.FLEET_COMPLIANT} == 0)", "{{profile}}"),
            width=12,
        )
    )
    d = d.with_panel(
        _series(
            ids,
            "Rollouts: progress and wave",
            "short",
            _q(f"max by (rollout) ({m.ROLLOUT_PROGRESS})", "{{rollout}} progress", "A"),
            _q(f"max by (rollout) ({m.ROLLOUT_WAVE})", "{{rollout}} wave", "B"),
            width=12,
        )
    )
    return d


_5XX = 'status_code=~"5.."'

# Backend health panels: (row, [(title, unit, PromQL, legend, width)]).
_BACKEND_PANELS: list[tuple[str, list[tuple[str, str, str, str, int]]]] = [
    (
        "ClickHouse",
        [
            ("Rows inserted", "rowsps", _rate(m.CLICKHOUSE_INSERTED_ROWS), "rows", 8),
            ("Failed queries", "short", _rate(m.CLICKHOUSE_FAILED_QUERIES), "failed", 8),
            (
                "Disk used",
                "percentunit",
                f"1 - max by (instance) ({m.CLICKHOUSE_DISK_AVAILABLE} / {m.CLICKHOUSE_DISK_TOTAL})",
                "{{instance}}",
                8,
            ),
        ],
    ),
    (
        "Loki",
        [
            ("Log lines received", "short", _rate(m.LOKI_LINES_RECEIVED), "lines", 6),
            ("Bytes received", "Bps", _rate(m.LOKI_BYTES_RECEIVED), "bytes", 6),
            ("Discarded by reason", "short", _rate(m.LOKI_DISCARDED, "reason"), "{{reason}}", 6),
            ("Request errors (5xx)", "short", _rate(m.LOKI_REQUEST_DURATION, "route", _5XX), "{{route}}", 6),
            ("Streams in memory", "short", f"sum({m.LOKI_STREAMS})", "streams", 24),
        ],
    ),
    (
        "Tempo",
        [
            ("Spans received", "short", _rate(m.TEMPO_SPANS_RECEIVED), "spans", 6),
            ("Spans discarded by reason", "short", _rate(m.TEMPO_DISCARDED, "reason"), "{{reason}}", 6),
            ("Request errors (5xx)", "short", _rate(m.TEMPO_REQUEST_DURATION, "route", _5XX), "{{route}}", 6),
            ("Live traces", "short", f"sum({m.TEMPO_LIVE_TRACES})", "traces", 6),
        ],
    ),
]


def backends_health(spec: PlatformSpec) -> dashboard.Dashboard:
    ids = _Ids()
    d = _base(
        "otelstack-backends", "Backends: ClickHouse, Loki, Tempo", "Ingestion, discards, errors and disk of the stores."
    )
    for row, panels in _BACKEND_PANELS:
        d = d.with_row(dashboard.Row(row).id(ids()))
        for title, unit, expr, legend, width in panels:
            panel = _series(ids, title, unit, _q(expr, legend), width=width)
            if unit == "percentunit":
                panel = panel.thresholds(_steps((None, "green"), (0.8, "orange"), (0.9, "red")))
            d = d.with_panel(panel)
    return d


DASHBOARDS: dict[str, Callable[[PlatformSpec], dashboard.Dashboard]] = {
    "collector-pipelines": collector_pipelines,
    "red-per-service": red_per_service,
    "slo": slo,
    "opamp-fleet": opamp_fleet,
    "backends": backends_health,
}


def render_dashboards(spec: PlatformSpec) -> dict[str, str]:
    """``grafana/dashboards/<name>.json``, one per dashboard, deterministic (sorted keys)."""
    out: dict[str, str] = {}
    for name, build in DASHBOARDS.items():
        text = JSONEncoder(sort_keys=True, indent=2).encode(build(spec).build())
        out[f"grafana/dashboards/{name}.json"] = json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n"
    return out
