"""The seeds' correlation queries, fixed for the exporter's real layout and written with ClickHouse query
parameters (``{name:Type}``: ``clickhouse-client --param_name=…``, the HTTP ``param_name`` argument, or
``SET param_name = …``).

What the seed got wrong (seed 000 §8.5, §15.4): there is no ``otel_metrics`` table (one per metric type;
exemplars of latency histograms are in ``otel_metrics_histogram``, which has no ``Value``); ``Exemplars`` is a
Nested column, so it is ``ARRAY JOIN``-ed once under an alias rather than ``arrayJoin`` called per field; the
exporter writes span status as ``Error``/``Ok``/``Unset``, not ``STATUS_CODE_ERROR``; severity is matched by
number (``SeverityNumber`` ≥ 17 is ERROR to FATAL), since ``SeverityText`` is free text; an exemplar without a
trace has an all-zero TraceId; and every query is bounded in time so ClickHouse reads only the partitions it needs.
The same names work on one server and on a cluster (they are the Distributed tables there).
"""

from __future__ import annotations

from .identifiers import ident
from .migrations import DIRECTORY

NO_TRACE = "0" * 32


def exemplar_to_trace(database: str) -> str:
    """Histogram data points of one metric in a time range, each exemplar joined to the span it points at."""
    db = ident(database, "database")
    return f"""SELECT
    m.ServiceName AS ServiceName,
    m.MetricName AS MetricName,
    m.TimeUnix AS TimeUnix,
    m.Sum / nullIf(m.Count, 0) AS MeanValue,
    e.Value AS ExemplarValue,
    e.TraceId AS TraceId,
    e.SpanId AS SpanId,
    t.SpanName AS SpanName,
    t.Duration / 1e6 AS DurationMs,
    t.StatusCode AS StatusCode
FROM {db}.otel_metrics_histogram AS m
ARRAY JOIN m.Exemplars AS e
INNER JOIN {db}.otel_traces AS t ON t.TraceId = e.TraceId AND t.SpanId = e.SpanId
WHERE m.MetricName = {{metric:String}}
  AND m.TimeUnix >= {{start:DateTime}} AND m.TimeUnix < {{end:DateTime}}
  AND e.TraceId != '{NO_TRACE}'
  AND t.Timestamp >= {{start:DateTime}} - INTERVAL 1 HOUR AND t.Timestamp < {{end:DateTime}} + INTERVAL 1 HOUR
ORDER BY m.TimeUnix DESC, e.Value DESC
LIMIT 100"""


def service_error_logs(database: str) -> str:
    """A service's error spans in a time range, and the ERROR-or-worse logs of their traces (from any service)
    within each trace's window: from its first to its last span start (the trace-id lookup table), widened by two
    minutes each side for spans that log after they start (Grafana's default trace-to-logs shift)."""
    db = ident(database, "database")
    return f"""WITH error_traces AS (
    SELECT TraceId, min(Timestamp) AS FirstError
    FROM {db}.otel_traces
    WHERE ServiceName = {{service:String}} AND StatusCode = 'Error'
      AND Timestamp >= {{start:DateTime}} AND Timestamp < {{end:DateTime}}
    GROUP BY TraceId
), windows AS (
    SELECT TraceId, min(Start) AS Start, max(End) AS End
    FROM {db}.otel_traces_trace_id_ts
    WHERE TraceId IN (SELECT TraceId FROM error_traces)
    GROUP BY TraceId
)
SELECT
    l.Timestamp AS Timestamp,
    l.TraceId AS TraceId,
    l.SpanId AS SpanId,
    l.ServiceName AS ServiceName,
    l.SeverityText AS SeverityText,
    l.SeverityNumber AS SeverityNumber,
    l.Body AS Body
FROM {db}.otel_logs AS l
INNER JOIN windows AS w ON l.TraceId = w.TraceId
WHERE l.SeverityNumber >= 17
  AND l.Timestamp >= {{start:DateTime}} - INTERVAL 1 HOUR AND l.Timestamp < {{end:DateTime}} + INTERVAL 1 HOUR
  AND l.Timestamp >= w.Start - INTERVAL 2 MINUTE AND l.Timestamp < w.End + INTERVAL 2 MINUTE
ORDER BY l.Timestamp"""


def trace_by_id(database: str) -> str:
    """Every span of one trace, reading only the time range the lookup table gives for it."""
    db = ident(database, "database")
    return f"""WITH (
    SELECT (min(Start), max(End)) FROM {db}.otel_traces_trace_id_ts WHERE TraceId = {{trace_id:String}}
) AS trace_window
SELECT
    Timestamp, TraceId, SpanId, ParentSpanId, ServiceName, SpanName, SpanKind, Duration, StatusCode, StatusMessage
FROM {db}.otel_traces
WHERE TraceId = {{trace_id:String}}
  AND Timestamp >= trace_window.1 AND Timestamp < trace_window.2 + INTERVAL 1 SECOND
ORDER BY Timestamp"""


QUERIES = {
    "exemplar-to-trace": exemplar_to_trace,
    "service-error-logs": service_error_logs,
    "trace-by-id": trace_by_id,
}


def render(database: str) -> dict[str, str]:
    """clickhouse/queries/<name>.sql for Grafana panels, runbooks and the docs."""
    out: dict[str, str] = {}
    for name, build in QUERIES.items():
        doc = " ".join((build.__doc__ or "").split())
        out[f"{DIRECTORY}/queries/{name}.sql"] = f"-- {doc}\n{build(database)};\n"
    return out
