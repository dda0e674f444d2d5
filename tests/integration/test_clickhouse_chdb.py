"""The ClickHouse schema on the real engine in-process (chDB): migrations twice, TTL tiers, rows in the exporter's
insert format, the correlation queries, and what is refused.

The exporter's INSERTs below mirror exporter/clickhouseexporter v0.159.0 (the collector release pinned in
catalog/components.yaml): the column lists of internal/sqltemplates/*_insert.sql, in the order the Go code
appends its values (exporter_traces.go, exporter_logs.go, internal/metrics/*_metrics.go), each with the
ClickHouse type of the column in the exporter's own table template (Nested columns flattened, as an INSERT
names them). They are written out here, not taken from the schema under test.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otelstack.backends.clickhouse import ClickHouseSchemaError, MigrationRefused, apply, check_clickhouse, tables
from otelstack.backends.clickhouse.check import chdb_connection, local_files
from otelstack.backends.clickhouse.migrations import statements_of
from otelstack.model.spec import PlatformSpec

pytest.importorskip("chdb")

LC = "LowCardinality(String)"
ATTRS = "Map(LowCardinality(String), String)"
METRIC_HEAD = [
    ("ResourceAttributes", ATTRS),
    ("ResourceSchemaUrl", "String"),
    ("ScopeName", "String"),
    ("ScopeVersion", "String"),
    ("ScopeAttributes", ATTRS),
    ("ScopeDroppedAttrCount", "UInt32"),
    ("ScopeSchemaUrl", "String"),
    ("ServiceName", LC),
    ("MetricName", LC),
    ("MetricDescription", "String"),
    ("MetricUnit", "String"),
    ("Attributes", ATTRS),
    ("StartTimeUnix", "DateTime"),
    ("TimeUnix", "DateTime"),
]
EXEMPLARS = [
    ("Exemplars.FilteredAttributes", f"Array({ATTRS})"),
    ("Exemplars.TimeUnix", "Array(DateTime)"),
    ("Exemplars.Value", "Array(Float64)"),
    ("Exemplars.SpanId", "Array(String)"),
    ("Exemplars.TraceId", "Array(String)"),
]
EXPORTER_INSERTS: dict[str, list[tuple[str, str]]] = {
    "otel_traces": [
        ("Timestamp", "DateTime64(9)"),
        ("TraceId", "String"),
        ("SpanId", "String"),
        ("ParentSpanId", "String"),
        ("TraceState", "String"),
        ("SpanName", LC),
        ("SpanKind", LC),
        ("ServiceName", LC),
        ("ResourceAttributes", ATTRS),
        ("ScopeName", "String"),
        ("ScopeVersion", "String"),
        ("SpanAttributes", ATTRS),
        ("Duration", "UInt64"),
        ("StatusCode", LC),
        ("StatusMessage", "String"),
        ("Events.Timestamp", "Array(DateTime64(9))"),
        ("Events.Name", f"Array({LC})"),
        ("Events.Attributes", f"Array({ATTRS})"),
        ("Links.TraceId", "Array(String)"),
        ("Links.SpanId", "Array(String)"),
        ("Links.TraceState", "Array(String)"),
        ("Links.Attributes", f"Array({ATTRS})"),
    ],
    # 15 columns, then EventName, which the exporter appends when DESC TABLE shows it (schema detection).
    "otel_logs": [
        ("Timestamp", "DateTime64(9)"),
        ("TraceId", "String"),
        ("SpanId", "String"),
        ("TraceFlags", "UInt8"),
        ("SeverityText", LC),
        ("SeverityNumber", "UInt8"),
        ("ServiceName", LC),
        ("Body", "String"),
        ("ResourceSchemaUrl", LC),
        ("ResourceAttributes", ATTRS),
        ("ScopeSchemaUrl", LC),
        ("ScopeName", "String"),
        ("ScopeVersion", LC),
        ("ScopeAttributes", ATTRS),
        ("LogAttributes", ATTRS),
        ("EventName", "String"),
    ],
    "otel_metrics_gauge": [*METRIC_HEAD, ("Value", "Float64"), ("Flags", "UInt32"), *EXEMPLARS],
    "otel_metrics_sum": [
        *METRIC_HEAD,
        ("Value", "Float64"),
        ("Flags", "UInt32"),
        *EXEMPLARS,
        ("AggregationTemporality", "Int32"),
        ("IsMonotonic", "Bool"),
    ],
    "otel_metrics_histogram": [
        *METRIC_HEAD,
        ("Count", "UInt64"),
        ("Sum", "Float64"),
        ("BucketCounts", "Array(UInt64)"),
        ("ExplicitBounds", "Array(Float64)"),
        *EXEMPLARS,
        ("Flags", "UInt32"),
        ("Min", "Float64"),
        ("Max", "Float64"),
        ("AggregationTemporality", "Int32"),
    ],
    "otel_metrics_exponential_histogram": [
        *METRIC_HEAD,
        ("Count", "UInt64"),
        ("Sum", "Float64"),
        ("Scale", "Int32"),
        ("ZeroCount", "UInt64"),
        ("PositiveOffset", "Int32"),
        ("PositiveBucketCounts", "Array(UInt64)"),
        ("NegativeOffset", "Int32"),
        ("NegativeBucketCounts", "Array(UInt64)"),
        *EXEMPLARS,
        ("Flags", "UInt32"),
        ("Min", "Float64"),
        ("Max", "Float64"),
        ("AggregationTemporality", "Int32"),
    ],
    "otel_metrics_summary": [
        *METRIC_HEAD,
        ("Count", "UInt64"),
        ("Sum", "Float64"),
        ("ValueAtQuantiles.Quantile", "Array(Float64)"),
        ("ValueAtQuantiles.Value", "Array(Float64)"),
        ("Flags", "UInt32"),
    ],
}
LOGS_MATERIALIZED = [
    f"__otel_materialized_{k}"
    for k in (
        "k8s.cluster.name",
        "k8s.container.name",
        "k8s.deployment.name",
        "k8s.namespace.name",
        "k8s.node.name",
        "k8s.pod.name",
        "k8s.pod.uid",
        "deployment.environment.name",
    )
]


def spec(**clickhouse: object) -> PlatformSpec:
    return PlatformSpec(environment="dev", backends={"clickhouse": clickhouse})


SINGLE = spec()
CLUSTER = spec(cluster="otel_cluster")
TIERED = spec(storage_policy="tiered")


@pytest.fixture
def engine() -> Iterator[Any]:
    """Yields a function opening a chDB connection configured for a spec (one at a time, closed after)."""
    with tempfile.TemporaryDirectory(prefix="otelstack-chdb-test-") as tmp:
        opened: list[Any] = []

        def open_for(s: PlatformSpec) -> Any:
            cm = chdb_connection(s, Path(tmp))
            conn = cm.__enter__()
            opened.append(cm)
            return conn

        yield open_for
        for cm in opened:
            cm.__exit__(None, None, None)


def rows(conn: Any, sql: str) -> list[tuple[Any, ...]]:
    cur = conn.cursor()
    cur.execute(sql)
    return [tuple(r) for r in cur.fetchall()]


# --- values as the exporter's Go code produces them --------------------------------------------------------


class Ns(int):
    """time.Time into DateTime64(9)."""


class Sec(int):
    """time.Time into DateTime (the metrics tables)."""


def lit(v: Any) -> str:
    if isinstance(v, Ns):
        return f"fromUnixTimestamp64Nano(toInt64({int(v)}), 'UTC')"
    if isinstance(v, Sec):
        return f"toDateTime({int(v)}, 'UTC')"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(v, dict):
        return "map(" + ", ".join(f"{lit(k)}, {lit(x)}" for k, x in v.items()) + ")" if v else "map()"
    if isinstance(v, list):
        return "[" + ", ".join(lit(x) for x in v) + "]"
    raise TypeError(v)


def insert(conn: Any, table: str, *values: list[Any]) -> None:
    """An INSERT with exactly the exporter's column list for ``table``."""
    columns = [c for c, _ in EXPORTER_INSERTS[table]]
    for row in values:
        assert len(row) == len(columns), f"{table}: {len(row)} values for {len(columns)} columns"
    body = ", ".join("(" + ", ".join(lit(v) for v in row) + ")" for row in values)
    rows(conn, f"INSERT INTO otel.{table} ({', '.join(columns)}) VALUES {body}")


NOW = int(time.time()) // 60 * 60 - 1800  # half an hour ago, whole minute (UTC seconds)
T0 = NOW * 10**9
TRACE_A, TRACE_B, TRACE_C, TRACE_GONE = ("a" * 31 + "1", "b" * 31 + "2", "c" * 31 + "3", "d" * 31 + "4")
ROOT_A, CHILD_A, ROOT_B, ROOT_C = "a" * 15 + "1", "a" * 15 + "2", "b" * 15 + "1", "c" * 15 + "1"
RES = {"service.name": "checkout", "k8s.namespace.name": "shop"}


def span(
    start_ns: int, trace: str, span_id: str, parent: str, name: str, kind: str, service: str, status: str, dur: int
) -> list[Any]:
    res = {**RES, "service.name": service}
    events: list[list[Any]] = [[Ns(start_ns + 1000)], ["exception"], [{"exception.type": "CardDeclined"}]]
    if status != "Error":
        events = [[], [], []]
    return [
        Ns(start_ns), trace, span_id, parent, "", name, kind, service, res, "io.opentelemetry.http", "1.0.0",
        {"http.route": "/checkout"}, dur, status, "" if status != "Error" else "payment failed",
        *events, [], [], [], [],
    ]  # fmt: skip


def log(ts_ns: int, trace: str, span_id: str, severity: tuple[str, int], service: str, body: str) -> list[Any]:
    return [
        Ns(ts_ns), trace, span_id, 1, severity[0], severity[1], service, body, "", {**RES, "service.name": service},
        "", "app.logger", "", {}, {"code.function": "pay"}, "",
    ]  # fmt: skip


def metric_head(name: str, unit: str) -> list[Any]:
    return [
        RES, "", "io.opentelemetry.http", "1.0.0", {}, 0, "", "checkout", name, "request duration", unit,
        {"http.route": "/checkout"}, Sec(NOW - 60), Sec(NOW),
    ]  # fmt: skip


def exemplars(*items: tuple[float, str, str]) -> list[Any]:
    return [[{} for _ in items], [Sec(NOW) for _ in items], [v for v, _, _ in items], [s for _, _, s in items],
            [t for _, t, _ in items]]  # fmt: skip


def load_telemetry(conn: Any) -> None:
    """Trace A: checkout → payment, both Error. Trace B: checkout, Ok. Trace C: search, Error."""
    insert(
        conn,
        "otel_traces",
        span(T0, TRACE_A, ROOT_A, "", "POST /checkout", "Server", "checkout", "Error", 250_000_000),
        span(T0 + 10_000_000, TRACE_A, CHILD_A, ROOT_A, "charge", "Client", "payment", "Error", 200_000_000),
        span(T0 + 5 * 10**9, TRACE_B, ROOT_B, "", "GET /cart", "Server", "checkout", "Ok", 20_000_000),
        span(T0 + 7 * 10**9, TRACE_C, ROOT_C, "", "GET /search", "Server", "search", "Error", 90_000_000),
    )
    error, info = ("ERROR", 17), ("INFO", 9)
    insert(
        conn,
        "otel_logs",
        log(T0 + 20_000_000, TRACE_A, CHILD_A, error, "payment", "card declined"),
        log(T0 + 240_000_000, TRACE_A, ROOT_A, error, "checkout", "checkout failed"),
        log(T0 + 30_000_000, TRACE_A, ROOT_A, info, "checkout", "cart loaded"),  # not an error
        log(T0 + 90 * 10**9, TRACE_A, ROOT_A, error, "checkout", "retries exhausted"),  # late in a long span
        log(T0 + 1800 * 10**9, TRACE_A, ROOT_A, error, "checkout", "outside the trace's window"),
        log(T0 + 5 * 10**9, TRACE_B, ROOT_B, error, "checkout", "trace B is not an error trace"),
        log(T0 + 7 * 10**9, TRACE_C, ROOT_C, error, "search", "another service"),
    )
    no_trace = "0" * 32  # an exemplar recorded outside a span: hex of the zero TraceID
    insert(
        conn,
        "otel_metrics_histogram",
        [
            *metric_head("http.server.request.duration", "s"), 3, 0.29, [0, 2, 1], [0.1, 0.25],
            *exemplars((0.25, TRACE_A, ROOT_A), (0.02, no_trace, "0" * 16), (0.3, TRACE_GONE, "e" * 16)),
            0, 0.02, 0.25, 2,
        ],
        [
            *metric_head("rpc.client.duration", "s"), 1, 0.2, [0, 1], [0.1],
            *exemplars((0.2, TRACE_A, CHILD_A)), 0, 0.2, 0.2, 2,
        ],
    )  # fmt: skip
    insert(conn, "otel_metrics_gauge", [*metric_head("process.cpu.utilization", "1"), 0.5, 0, *exemplars()])
    insert(
        conn,
        "otel_metrics_sum",
        [*metric_head("http.server.requests", "1"), 3.0, 0, *exemplars((1.0, TRACE_A, ROOT_A)), 2, True],
    )
    insert(
        conn,
        "otel_metrics_exponential_histogram",
        [*metric_head("http.server.body.size", "By"), 2, 300.0, 3, 0, 10, [1, 1], 0, [], *exemplars(), 0, 100.0,
         200.0, 1],
    )  # fmt: skip
    insert(conn, "otel_metrics_summary", [*metric_head("gc.pause", "s"), 4, 0.08, [0.5, 0.99], [0.01, 0.05], 0])


def run_query(conn: Any, files: dict[str, str], name: str, **params: str) -> list[tuple[Any, ...]]:
    (sql,) = statements_of(files[f"clickhouse/queries/{name}.sql"])
    for key, value in params.items():
        rows(conn, f"SET param_{key} = {lit(value)}")
    return rows(conn, sql)


def utc(seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


# --- tests ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("s", [SINGLE, CLUSTER, TIERED], ids=["single", "cluster", "tiered"])
def test_migrations_twice_second_run_changes_nothing(engine: Any, s: PlatformSpec) -> None:
    conn = engine(s)
    files = local_files(s)
    first = apply(conn, files, "otel", users=False)
    assert first.applied == [f"{n:03d}-{x}" for n, x in enumerate(
        ["database", "traces", "traces-trace-id-lookup", "logs", "metrics-gauge", "metrics-sum", "metrics-histogram",
         "metrics-exponential-histogram", "metrics-summary"], 1)] + ["retention"]  # fmt: skip
    snapshot = rows(conn, "SELECT name, create_table_query FROM system.tables WHERE database = 'otel' ORDER BY name")
    history = rows(conn, "SELECT name, checksum, applied_at FROM otel.otelstack_schema_migrations ORDER BY name")
    second = apply(conn, files, "otel", users=False)
    assert second.applied == []
    assert rows(conn, "SELECT name, create_table_query FROM system.tables WHERE database = 'otel' ORDER BY name") == (
        snapshot
    )
    assert rows(conn, "SELECT name, checksum, applied_at FROM otel.otelstack_schema_migrations ORDER BY name") == (
        history
    )
    names = {r[0] for r in snapshot}
    expected = {t.name for t in tables.ALL_TABLES} | {"otel_traces_trace_id_ts_mv", "otelstack_schema_migrations"}
    if s.backends.clickhouse.cluster:
        expected |= {f"{t.name}_local" for t in tables.ALL_TABLES}
    assert names == expected


@pytest.mark.parametrize("s", [SINGLE, CLUSTER], ids=["single", "cluster"])
def test_tables_take_exactly_the_exporter_insert_columns(engine: Any, s: PlatformSpec) -> None:
    conn = engine(s)
    apply(conn, local_files(s), "otel", users=False)
    for table, expected in EXPORTER_INSERTS.items():
        got = rows(
            conn,
            f"SELECT name, type FROM system.columns WHERE database = 'otel' AND table = '{table}' "
            "AND default_kind != 'MATERIALIZED' ORDER BY position",
        )
        assert got == expected, table
    materialized = rows(
        conn,
        "SELECT name FROM system.columns WHERE database = 'otel' AND table = 'otel_logs' "
        "AND default_kind = 'MATERIALIZED' ORDER BY position",
    )
    assert [r[0] for r in materialized] == LOGS_MATERIALIZED


@pytest.mark.parametrize("s", [SINGLE, CLUSTER], ids=["single", "cluster"])
def test_correlation_queries_on_rows_in_the_exporter_format(engine: Any, s: PlatformSpec) -> None:
    conn = engine(s)
    files = local_files(s)
    apply(conn, files, "otel", users=False)
    rows(conn, "SET session_timezone = 'UTC'")
    load_telemetry(conn)

    counts = {t: rows(conn, f"SELECT count() FROM otel.{t}")[0][0] for t in EXPORTER_INSERTS}
    assert counts == {
        "otel_traces": 4,
        "otel_logs": 7,
        "otel_metrics_gauge": 1,
        "otel_metrics_sum": 1,
        "otel_metrics_histogram": 2,
        "otel_metrics_exponential_histogram": 1,
        "otel_metrics_summary": 1,
    }
    assert rows(conn, "SELECT __otel_materialized_k8s.namespace.name FROM otel.otel_logs LIMIT 1") == [("shop",)]
    lookup = rows(conn, "SELECT TraceId, Start <= End FROM otel.otel_traces_trace_id_ts ORDER BY TraceId")
    assert lookup == [(TRACE_A, True), (TRACE_B, True), (TRACE_C, True)]

    window = {"start": utc(NOW - 600), "end": utc(NOW + 600)}
    exemplar = run_query(conn, files, "exemplar-to-trace", metric="http.server.request.duration", **window)
    assert [(r[4], r[5], r[6], r[7], r[9]) for r in exemplar] == [(0.25, TRACE_A, ROOT_A, "POST /checkout", "Error")]
    assert exemplar[0][8] == 250.0  # DurationMs

    logs = run_query(conn, files, "service-error-logs", service="checkout", **window)
    assert [(r[1], r[3], r[6]) for r in logs] == [
        (TRACE_A, "payment", "card declined"),
        (TRACE_A, "checkout", "checkout failed"),
        (TRACE_A, "checkout", "retries exhausted"),
    ]
    assert run_query(conn, files, "service-error-logs", service="search", **window)[0][6] == "another service"
    assert run_query(conn, files, "service-error-logs", service="cart", **window) == []

    trace = run_query(conn, files, "trace-by-id", trace_id=TRACE_A)
    assert [(r[2], r[3], r[4], r[5]) for r in trace] == [
        (ROOT_A, "", "checkout", "POST /checkout"),
        (CHILD_A, ROOT_A, "payment", "charge"),
    ]
    assert run_query(conn, files, "trace-by-id", trace_id=TRACE_GONE) == []


def test_ttl_tiers_place_rows_on_their_volume(engine: Any) -> None:
    conn = engine(TIERED)
    apply(conn, local_files(TIERED), "otel", users=False)
    ttl = rows(conn, "SELECT create_table_query FROM system.tables WHERE database = 'otel' AND name = 'otel_traces'")
    assert "TTL toDateTime(Timestamp) + toIntervalDay(7) TO VOLUME 'warm'" in ttl[0][0]
    assert "toDateTime(Timestamp) + toIntervalDay(365)" in ttl[0][0]
    for age in (1, 10, 40, 100):  # traces: hot 7, warm 30, cold 90, archive 365 days
        start = (int(time.time()) - age * 86400) * 10**9
        insert(conn, "otel_traces", span(start, f"{age:032x}", "1" * 16, "", "x", "Server", "svc", "Ok", 1))
    placed = rows(
        conn,
        "SELECT min(Timestamp) AS t, any(disk_name) FROM system.parts AS p "
        "INNER JOIN (SELECT _part, Timestamp FROM otel.otel_traces) AS r ON r._part = p.name "
        "WHERE p.database = 'otel' AND p.table = 'otel_traces' AND p.active GROUP BY p.name ORDER BY t",
    )
    assert [d for _, d in placed] == ["archive", "cold", "warm", "default"]  # "default" is the hot volume's disk


def test_retention_change_reapplies_only_retention(engine: Any) -> None:
    conn = engine(SINGLE)
    apply(conn, local_files(SINGLE), "otel", users=False)
    longer = PlatformSpec(
        environment="dev", retention={"logs": {"hot_days": 7, "warm_days": 60, "cold_days": 0, "archive_days": 0}}
    )
    outcome = apply(conn, local_files(longer), "otel", users=False)
    assert outcome.applied == ["retention"]
    query = rows(conn, "SELECT create_table_query FROM system.tables WHERE database = 'otel' AND name = 'otel_logs'")
    assert "TTL toDateTime(Timestamp) + toIntervalDay(60)" in query[0][0]


def test_a_changed_applied_migration_is_refused(engine: Any) -> None:
    conn = engine(SINGLE)
    files = local_files(SINGLE)
    apply(conn, files, "otel", users=False)
    tampered = dict(files)
    tampered["clickhouse/002-traces.sql"] = files["clickhouse/002-traces.sql"].replace(
        "`StatusMessage` String", "`StatusMessage` LowCardinality(String)"
    )
    assert tampered != files
    history = rows(conn, "SELECT count() FROM otel.otelstack_schema_migrations")
    with pytest.raises(MigrationRefused, match=r"clickhouse/002-traces.sql was applied with checksum [0-9a-f]{64}, "
                       r"but the file now has [0-9a-f]{64}: an applied migration never changes"):  # fmt: skip
        apply(conn, tampered, "otel", users=False)
    assert rows(conn, "SELECT count() FROM otel.otelstack_schema_migrations") == history
    # A comment is not a change.
    commented = dict(files)
    commented["clickhouse/002-traces.sql"] = "-- reviewed\n" + files["clickhouse/002-traces.sql"]
    assert apply(conn, commented, "otel", users=False).applied == []


def test_a_migration_the_files_do_not_know_is_refused(engine: Any) -> None:
    conn = engine(SINGLE)
    files = local_files(SINGLE)
    apply(conn, files, "otel", users=False)
    rows(
        conn,
        "INSERT INTO otel.otelstack_schema_migrations (name, kind, checksum) VALUES ('010-spans-v2', 'versioned', 'x')",
    )
    with pytest.raises(MigrationRefused, match="has migrations these files do not know: 010-spans-v2"):
        apply(conn, files, "otel", users=False)


def test_a_failing_statement_names_its_file(engine: Any) -> None:
    conn = engine(SINGLE)
    files = local_files(SINGLE)
    files["clickhouse/004-logs.sql"] = files["clickhouse/004-logs.sql"].replace(
        "ORDER BY (", "ORDER BY (NoSuchColumn, "
    )
    with pytest.raises(ClickHouseSchemaError, match=r"clickhouse/004-logs.sql: statement failed: CREATE TABLE"):
        apply(conn, files, "otel", users=False)
    applied = rows(conn, "SELECT name FROM otel.otelstack_schema_migrations ORDER BY name")
    assert applied == [("001-database",), ("002-traces",), ("003-traces-trace-id-lookup",)]


@pytest.mark.parametrize("s", [SINGLE, CLUSTER, TIERED, spec(cluster="c1", storage_policy="tiered")])
def test_check_passes_for_every_layout(s: PlatformSpec) -> None:
    assert check_clickhouse(s) == []


def test_check_reports_a_broken_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = dataclasses.replace(tables.TRACES, order_by="(ServiceName, NoSuchColumn)")
    monkeypatch.setattr(tables, "TRACES", broken)
    problems = check_clickhouse(SINGLE)
    assert len(problems) == 1 and "clickhouse/002-traces.sql: statement failed" in problems[0]
    assert "NoSuchColumn" in problems[0]


def test_check_reports_sql_the_parser_refuses(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = dataclasses.replace(tables.LOGS, partition_by="toDate(Timestamp) PARTITION")
    monkeypatch.setattr(tables, "LOGS", broken)
    problems = check_clickhouse(CLUSTER)
    assert problems and all("ClickHouse does not parse" in p for p in problems)
    assert any(p.startswith("clickhouse/004-logs.sql") for p in problems)


def test_the_server_fragment_s_setting_is_one_clickhouse_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fragment's asynchronous_metrics_key_values_mode is loaded into the engine and read back from
    system.server_settings: a misspelt name (which a real server silently ignores) is reported."""
    from otelstack.backends.clickhouse import check, server

    real = server.render_server_config
    monkeypatch.setattr(
        check,
        "render_server_config",
        lambda: {p: t.replace("key_values_mode", "key_value_mode") for p, t in real().items()},
    )
    problems = check_clickhouse(SINGLE)
    assert problems == [
        "clickhouse/config.d/otelstack.xml: ClickHouse has asynchronous_metrics_key_value_mode = no such setting, "
        "not the fragment's 'legacy_names'"
    ]
