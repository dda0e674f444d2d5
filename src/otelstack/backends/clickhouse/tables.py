"""The otel_* tables: the column layout the pinned clickhouse exporter writes, as data.

Matched to ``exporter/clickhouseexporter`` at contrib v0.159.0 (the collector release pinned in
``catalog/components.yaml``): column names, order, types and codecs from its table templates
(``internal/sqltemplates/*_table.sql``), checked against the column lists of its INSERT statements
(``*_insert.sql``) and the Go values it appends (``exporter_*.go``, ``internal/metrics/*.go``). Partitioning,
sort keys and skip indexes follow the same templates; the logs table uses the bloom-filter indexes the exporter
creates on servers older than 26.2 (they work on every server), not its version-dependent text indexes.
The DDL itself is built in ``ddl.py``; TTLs come from the spec (``ttl.py``), never from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

EXPORTER_MODULE = "github.com/open-telemetry/opentelemetry-collector-contrib/exporter/clickhouseexporter"
EXPORTER_VERSION = "v0.159.0"

ATTRS = "Map(LowCardinality(String), String)"
LC = "LowCardinality(String)"
Z = "ZSTD(1)"
DZ = "Delta, ZSTD(1)"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    codec: str | None = Z
    materialized: str | None = None  # expression: computed by the server, never written by the exporter


@dataclass(frozen=True)
class Index:
    name: str
    expression: str
    type: str
    granularity: int = 1


@dataclass(frozen=True)
class Table:
    name: str
    signal: str  # traces, logs or metrics: which retention applies
    columns: tuple[Column, ...]
    indexes: tuple[Index, ...]
    partition_by: str
    order_by: str
    ttl_time: str  # DateTime expression the TTL counts from
    sharding_key: str  # Distributed tables (cluster): where a row goes
    settings: tuple[tuple[str, str], ...] = field(default=(("index_granularity", "8192"), ("ttl_only_drop_parts", "1")))

    @property
    def written_columns(self) -> tuple[str, ...]:
        """Columns a client inserts (MATERIALIZED ones are computed by the server)."""
        return tuple(c.name for c in self.columns if c.materialized is None)


def _nested(*fields: tuple[str, str]) -> str:
    return "Nested(" + ", ".join(f"`{n}` {t}" for n, t in fields) + ")"


def _attr_indexes(*columns: tuple[str, str]) -> tuple[Index, ...]:
    out: list[Index] = []
    for prefix, column in columns:
        out.append(Index(f"idx_{prefix}_key", f"mapKeys({column})", "bloom_filter(0.01)"))
        out.append(Index(f"idx_{prefix}_value", f"mapValues({column})", "bloom_filter(0.01)"))
    return tuple(out)


TRACES = Table(
    name="otel_traces",
    signal="traces",
    columns=(
        Column("Timestamp", "DateTime64(9)", DZ),
        Column("TraceId", "String"),
        Column("SpanId", "String"),
        Column("ParentSpanId", "String"),
        Column("TraceState", "String"),
        Column("SpanName", LC),
        Column("SpanKind", LC),
        Column("ServiceName", LC),
        Column("ResourceAttributes", ATTRS),
        Column("ScopeName", "String"),
        Column("ScopeVersion", "String"),
        Column("SpanAttributes", ATTRS),
        Column("Duration", "UInt64"),
        Column("StatusCode", LC),
        Column("StatusMessage", "String"),
        Column("Events", _nested(("Timestamp", "DateTime64(9)"), ("Name", LC), ("Attributes", ATTRS))),
        Column(
            "Links",
            _nested(("TraceId", "String"), ("SpanId", "String"), ("TraceState", "String"), ("Attributes", ATTRS)),
        ),
    ),
    indexes=(
        Index("idx_trace_id", "TraceId", "bloom_filter(0.001)"),
        *_attr_indexes(("res_attr", "ResourceAttributes"), ("span_attr", "SpanAttributes")),
        Index("idx_duration", "Duration", "minmax"),
    ),
    partition_by="toDate(Timestamp)",
    order_by="(ServiceName, SpanName, toDateTime(Timestamp))",
    ttl_time="toDateTime(Timestamp)",
    sharding_key="cityHash64(TraceId)",  # a trace's spans on one shard
)

# Filled by a materialized view on otel_traces: where a trace starts and ends, for lookups by trace id.
TRACE_ID_TS = Table(
    name="otel_traces_trace_id_ts",
    signal="traces",
    columns=(
        Column("TraceId", "String"),
        Column("Start", "DateTime", DZ),
        Column("End", "DateTime", DZ),
    ),
    indexes=(Index("idx_trace_id", "TraceId", "bloom_filter(0.01)"),),
    partition_by="toDate(Start)",
    order_by="(TraceId, Start)",
    ttl_time="Start",
    sharding_key="cityHash64(TraceId)",
)
TRACE_ID_TS_VIEW = "otel_traces_trace_id_ts_mv"

_K8S_MATERIALIZED = (
    "k8s.cluster.name",
    "k8s.container.name",
    "k8s.deployment.name",
    "k8s.namespace.name",
    "k8s.node.name",
    "k8s.pod.name",
    "k8s.pod.uid",
    "deployment.environment.name",
)

LOGS = Table(
    name="otel_logs",
    signal="logs",
    columns=(
        Column("Timestamp", "DateTime64(9)", "Delta(8), ZSTD(1)"),
        Column("TraceId", "String"),
        Column("SpanId", "String"),
        Column("TraceFlags", "UInt8", None),
        Column("SeverityText", LC),
        Column("SeverityNumber", "UInt8", None),
        Column("ServiceName", LC),
        Column("Body", "String"),
        Column("ResourceSchemaUrl", LC),
        Column("ResourceAttributes", ATTRS),
        Column("ScopeSchemaUrl", LC),
        Column("ScopeName", "String"),
        Column("ScopeVersion", LC),
        Column("ScopeAttributes", ATTRS),
        Column("LogAttributes", ATTRS),
        # The exporter finds this column with DESC TABLE at start and then writes it (schema feature detection).
        Column("EventName", "String"),
        *(
            Column(f"__otel_materialized_{key}", LC, Z, materialized=f"ResourceAttributes['{key}']")
            for key in _K8S_MATERIALIZED
        ),
    ),
    indexes=(
        Index("idx_trace_id", "TraceId", "bloom_filter(0.001)"),
        *_attr_indexes(
            ("res_attr", "ResourceAttributes"), ("scope_attr", "ScopeAttributes"), ("log_attr", "LogAttributes")
        ),
        Index("idx_lower_body", "lower(Body)", "tokenbf_v1(32768, 3, 0)", 8),
    ),
    partition_by="toDate(Timestamp)",
    order_by="(toStartOfFiveMinutes(Timestamp), ServiceName, Timestamp)",
    ttl_time="toDateTime(Timestamp)",
    sharding_key="rand()",
)

_METRIC_HEAD = (
    Column("ResourceAttributes", ATTRS),
    Column("ResourceSchemaUrl", "String"),
    Column("ScopeName", "String"),
    Column("ScopeVersion", "String"),
    Column("ScopeAttributes", ATTRS),
    Column("ScopeDroppedAttrCount", "UInt32"),
    Column("ScopeSchemaUrl", "String"),
    Column("ServiceName", LC),
    Column("MetricName", LC),
    Column("MetricDescription", "String"),
    Column("MetricUnit", "String"),
    Column("Attributes", ATTRS),
    Column("StartTimeUnix", "DateTime", DZ),
    Column("TimeUnix", "DateTime", DZ),
)
_EXEMPLARS = Column(
    "Exemplars",
    _nested(
        ("FilteredAttributes", ATTRS),
        ("TimeUnix", "DateTime"),
        ("Value", "Float64"),
        ("SpanId", "String"),
        ("TraceId", "String"),
    ),
)
_METRIC_INDEXES = (
    *_attr_indexes(("res_attr", "ResourceAttributes"), ("scope_attr", "ScopeAttributes"), ("attr", "Attributes")),
    Index("idx_time_minmax", "TimeUnix", "minmax"),
)


def _metric_table(suffix: str, *columns: Column) -> Table:
    return Table(
        name=f"otel_metrics_{suffix}",
        signal="metrics",
        columns=(*_METRIC_HEAD, *columns),
        indexes=_METRIC_INDEXES,
        partition_by="toDate(TimeUnix)",
        order_by="(ServiceName, MetricName, toStartOfHour(TimeUnix), cityHash64(Attributes), TimeUnix)",
        ttl_time="toDateTime(TimeUnix)",
        sharding_key="rand()",
    )


METRICS_GAUGE = _metric_table("gauge", Column("Value", "Float64"), Column("Flags", "UInt32"), _EXEMPLARS)
METRICS_SUM = _metric_table(
    "sum",
    Column("Value", "Float64"),
    Column("Flags", "UInt32"),
    _EXEMPLARS,
    Column("AggregationTemporality", "Int32"),
    Column("IsMonotonic", "Bool", DZ),
)
# Both histogram tables end alike.
_HISTOGRAM_TAIL = (
    _EXEMPLARS,
    Column("Flags", "UInt32"),
    Column("Min", "Float64"),
    Column("Max", "Float64"),
    Column("AggregationTemporality", "Int32"),
)
METRICS_HISTOGRAM = _metric_table(
    "histogram",
    Column("Count", "UInt64", DZ),
    Column("Sum", "Float64"),
    Column("BucketCounts", "Array(UInt64)"),
    Column("ExplicitBounds", "Array(Float64)"),
    *_HISTOGRAM_TAIL,
)
METRICS_EXPONENTIAL_HISTOGRAM = _metric_table(
    "exponential_histogram",
    Column("Count", "UInt64", DZ),
    Column("Sum", "Float64"),
    Column("Scale", "Int32"),
    Column("ZeroCount", "UInt64"),
    Column("PositiveOffset", "Int32"),
    Column("PositiveBucketCounts", "Array(UInt64)"),
    Column("NegativeOffset", "Int32"),
    Column("NegativeBucketCounts", "Array(UInt64)"),
    *_HISTOGRAM_TAIL,
)
METRICS_SUMMARY = _metric_table(
    "summary",
    Column("Count", "UInt64", DZ),
    Column("Sum", "Float64"),
    Column("ValueAtQuantiles", _nested(("Quantile", "Float64"), ("Value", "Float64"))),
    Column("Flags", "UInt32"),
)

METRICS = (METRICS_GAUGE, METRICS_SUM, METRICS_HISTOGRAM, METRICS_EXPONENTIAL_HISTOGRAM, METRICS_SUMMARY)
# Every table with data (the migrations table is the runner's own, see migrations.py).
ALL_TABLES = (TRACES, TRACE_ID_TS, LOGS, *METRICS)
# The tables the exporter inserts into (the lookup table is filled by its materialized view).
EXPORTER_TABLES = (TRACES, LOGS, *METRICS)
