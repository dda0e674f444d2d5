"""The rendered ClickHouse files: names, TTL per retention tier, cluster layout, users, bad names."""

from __future__ import annotations

import hashlib
import re

import pytest
from pydantic import ValidationError

from otelstack.backends.clickhouse import ClickHouseSchemaError, render_clickhouse
from otelstack.backends.clickhouse import users as ch_users
from otelstack.backends.clickhouse.ddl import Topology
from otelstack.backends.clickhouse.migrations import statements_of
from otelstack.backends.clickhouse.ttl import tier_moves, ttl_expression
from otelstack.collector.blocks import Paths
from otelstack.collector.gateway import render_gateway
from otelstack.model.spec import PlatformSpec, SignalRetention


def spec(**clickhouse: object) -> PlatformSpec:
    return PlatformSpec(environment="dev", backends={"clickhouse": clickhouse})


def ttl_of(files: dict[str, str], table: str) -> str:
    for sql in statements_of(files["clickhouse/retention.sql"]):
        if f"`otel`.`{table}` " in sql:
            return sql.split(" MODIFY TTL ", 1)[1]
    raise AssertionError(f"no TTL for {table}")


def test_files_are_numbered_migrations_plus_bootstrap_retention_users_and_queries() -> None:
    files = render_clickhouse(spec())
    numbered = sorted(p for p in files if re.match(r"clickhouse/\d{3}-", p))
    assert numbered == [
        "clickhouse/001-database.sql",
        "clickhouse/002-traces.sql",
        "clickhouse/003-traces-trace-id-lookup.sql",
        "clickhouse/004-logs.sql",
        "clickhouse/005-metrics-gauge.sql",
        "clickhouse/006-metrics-sum.sql",
        "clickhouse/007-metrics-histogram.sql",
        "clickhouse/008-metrics-exponential-histogram.sql",
        "clickhouse/009-metrics-summary.sql",
    ]
    assert {
        "clickhouse/bootstrap.sql",
        "clickhouse/retention.sql",
        "clickhouse/users.sql",
        "clickhouse/config.d/otelstack.xml",
    } <= set(files)
    assert {p for p in files if "/queries/" in p} == {
        "clickhouse/queries/exemplar-to-trace.sql",
        "clickhouse/queries/service-error-logs.sql",
        "clickhouse/queries/trace-by-id.sql",
    }
    # Nothing spec.retention decides is in an applied-once migration (so a retention change never edits one).
    assert not any("TTL" in files[p] for p in numbered)


def test_disabled_clickhouse_renders_nothing() -> None:
    assert render_clickhouse(spec(enabled=False)) == {}


def test_ttl_without_storage_policy_is_the_total_as_delete() -> None:
    files = render_clickhouse(spec())
    # Defaults: traces 7/30/90/365, logs 7/30/0/0, metrics 15/90/395/0.
    assert ttl_of(files, "otel_traces") == "toDateTime(Timestamp) + toIntervalDay(365) DELETE"
    assert ttl_of(files, "otel_logs") == "toDateTime(Timestamp) + toIntervalDay(30) DELETE"
    assert ttl_of(files, "otel_metrics_histogram") == "toDateTime(TimeUnix) + toIntervalDay(395) DELETE"
    assert ttl_of(files, "otel_traces_trace_id_ts") == "Start + toIntervalDay(365) DELETE"
    assert not any("TO VOLUME" in s for s in statements_of(files["clickhouse/retention.sql"]))


def test_ttl_with_storage_policy_moves_per_tier_then_deletes() -> None:
    files = render_clickhouse(spec(storage_policy="tiered"))
    assert ttl_of(files, "otel_traces") == (
        "toDateTime(Timestamp) + toIntervalDay(7) TO VOLUME 'warm', "
        "toDateTime(Timestamp) + toIntervalDay(30) TO VOLUME 'cold', "
        "toDateTime(Timestamp) + toIntervalDay(90) TO VOLUME 'archive', "
        "toDateTime(Timestamp) + toIntervalDay(365) DELETE"
    )
    assert ttl_of(files, "otel_logs") == (
        "toDateTime(Timestamp) + toIntervalDay(7) TO VOLUME 'warm', toDateTime(Timestamp) + toIntervalDay(30) DELETE"
    )
    assert ttl_of(files, "otel_metrics_sum") == (
        "toDateTime(TimeUnix) + toIntervalDay(15) TO VOLUME 'warm', "
        "toDateTime(TimeUnix) + toIntervalDay(90) TO VOLUME 'cold', toDateTime(TimeUnix) + toIntervalDay(395) DELETE"
    )
    # The lookup table stays on the fast volume: it only says where a trace is.
    assert ttl_of(files, "otel_traces_trace_id_ts") == "Start + toIntervalDay(365) DELETE"
    assert "storage_policy = 'tiered'" in files["clickhouse/002-traces.sql"]


@pytest.mark.parametrize(
    ("tiers", "moves", "total"),
    [
        ((7, 30, 90, 365), [(7, "warm"), (30, "cold"), (90, "archive")], 365),
        ((7, 0, 0, 0), [], 7),
        ((7, 0, 90, 0), [(7, "cold")], 90),  # no warm tier: straight to cold
        ((7, 7, 30, 0), [(7, "cold")], 30),  # a warm tier as long as hot holds nothing
        ((1, 0, 0, 400), [(1, "archive")], 400),
    ],
)
def test_tier_moves(tiers: tuple[int, int, int, int], moves: list[tuple[int, str]], total: int) -> None:
    hot, warm, cold, archive = tiers
    retention = SignalRetention(hot_days=hot, warm_days=warm, cold_days=cold, archive_days=archive)
    assert tier_moves(retention) == moves
    assert ttl_expression("t", retention, tiered=True).endswith(f"t + toIntervalDay({total}) DELETE")


def test_cluster_layout_is_replicated_on_cluster_with_distributed_tables() -> None:
    files = render_clickhouse(spec(cluster="otel_cluster"))
    schema = [s for p, t in files.items() if p.startswith("clickhouse/0") for s in statements_of(t)]
    schema += statements_of(files["clickhouse/bootstrap.sql"]) + statements_of(files["clickhouse/retention.sql"])
    schema += statements_of(files["clickhouse/users.sql"])
    assert all("ON CLUSTER `otel_cluster`" in s for s in schema if not s.startswith(("GRANT", "REVOKE")))
    assert all(" ON CLUSTER `otel_cluster` " in s for s in schema if s.startswith(("GRANT", "REVOKE")))
    traces = statements_of(files["clickhouse/002-traces.sql"])
    assert traces[0].startswith("CREATE TABLE IF NOT EXISTS `otel`.`otel_traces_local` ON CLUSTER `otel_cluster`")
    assert "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')" in traces[0]
    assert traces[1] == (
        "CREATE TABLE IF NOT EXISTS `otel`.`otel_traces` ON CLUSTER `otel_cluster` AS `otel`.`otel_traces_local`\n"
        "ENGINE = Distributed('otel_cluster', 'otel', 'otel_traces_local', cityHash64(TraceId))"
    )
    lookup = files["clickhouse/003-traces-trace-id-lookup.sql"]
    assert "TO `otel`.`otel_traces_trace_id_ts_local`" in lookup and "FROM `otel`.`otel_traces_local`" in lookup
    # The migrations history is one for the whole cluster (no {shard} in its replica path).
    assert "'/clickhouse/tables/otelstack/{database}/{table}'" in files["clickhouse/bootstrap.sql"]
    # Retention goes to the tables holding the rows.
    assert (
        "ALTER TABLE `otel`.`otel_logs_local` ON CLUSTER `otel_cluster` MODIFY TTL" in files["clickhouse/retention.sql"]
    )


def test_single_server_has_no_cluster_constructs() -> None:
    text = "".join(render_clickhouse(spec()).values())
    assert "ON CLUSTER" not in text and "Replicated" not in text and "Distributed" not in text
    assert "_local`" not in text


def test_bad_cluster_or_policy_name_is_refused_by_the_spec() -> None:
    for key in ("cluster", "storage_policy"):
        with pytest.raises(ValidationError, match=rf"backends\.clickhouse\.{key}"):
            spec(**{key: "prod cluster; DROP DATABASE otel"})


@pytest.mark.parametrize(
    ("field", "value", "what"),
    [("database", "otel-db", "database"), ("cluster", "a`b", "cluster"), ("storage_policy", "", "storage policy")],
)
def test_bad_identifier_gives_a_clear_error(field: str, value: str, what: str) -> None:
    args = {"database": "otel", field: value}
    with pytest.raises(ClickHouseSchemaError, match=rf"{what} .* is not a valid ClickHouse name; allowed: a letter"):
        Topology(**args)  # type: ignore[arg-type]


def test_bad_username_gives_a_clear_error() -> None:
    with pytest.raises(ClickHouseSchemaError, match=r"backends\.clickhouse\.username 'otel writer' is not a valid"):
        render_clickhouse(spec(username="otel writer"))
    with pytest.raises(ClickHouseSchemaError, match="two different users"):
        render_clickhouse(spec(username="grafana_reader"))


def test_users_least_privilege_and_no_password_inline() -> None:
    files = render_clickhouse(spec())
    text = files["clickhouse/users.sql"]
    grants = [s for s in statements_of(text) if s.startswith("GRANT") and " ON " in s]
    exporter = next(g for g in grants if g.endswith("TO otelstack_exporter WITH REPLACE OPTION"))
    reader = next(g for g in grants if g.endswith("TO otelstack_reader WITH REPLACE OPTION"))
    privileges = {p.split(" ON ")[0].strip() for p in exporter.removeprefix("GRANT ").split(" TO ")[0].split(", ")}
    assert privileges == {"INSERT", "SHOW COLUMNS"}
    assert "SHOW COLUMNS ON `otel`.`otel_logs`" in exporter  # the exporter's DESC TABLE at start
    assert "otel_traces_trace_id_ts" not in exporter  # filled by the view, with its definer's rights
    assert set(re.findall(r"(\w+) ON `", reader.split(" TO ")[0])) == {"SELECT"}
    assert "readonly = 2" in text
    # Secrets are references; no password, no hash in the file.
    assert "${sha256:env:OTELSTACK_CLICKHOUSE_PASSWORD}" in text
    assert "${sha256:env:OTELSTACK_CLICKHOUSE_READER_PASSWORD}" in text
    assert not re.search(r"\b[0-9a-f]{64}\b", text)


def test_secrets_resolve_to_sha256_at_apply_time(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CH_PW", "s3cret-w")
    (tmp_path / "pw").write_text("s3cret-r\n", encoding="utf-8")
    sql = (
        "CREATE USER a IDENTIFIED WITH sha256_hash BY '${sha256:env:CH_PW}', '${sha256:file:" + f"{tmp_path}/pw" + "}'"
    )
    resolved = ch_users.resolve(sql)
    assert hashlib.sha256(b"s3cret-w").hexdigest() in resolved
    assert hashlib.sha256(b"s3cret-r").hexdigest() in resolved
    assert "s3cret" not in resolved and "${" not in resolved
    monkeypatch.delenv("CH_PW")
    with pytest.raises(ClickHouseSchemaError, match="secret env:CH_PW: the environment variable CH_PW is not set"):
        ch_users.resolve(sql)
    with pytest.raises(ClickHouseSchemaError, match=r"cannot read /nonexistent"):
        ch_users.read_secret("file:/nonexistent/pw")
    monkeypatch.setenv("CH_PW", "")
    with pytest.raises(ClickHouseSchemaError, match="is empty"):
        ch_users.read_secret("env:CH_PW")


def test_gateway_keeps_create_schema_false_and_writes_as_the_exporter_user() -> None:
    s = spec(username="otel_ingest")
    paths = Paths("/ca", "/crt", "/key", "/ccrt", "/ckey", "/queue", "/checkpoints")
    exporters = render_gateway(s, paths, opamp_extension_enabled=False)["exporters"]
    (clickhouse,) = [v for k, v in exporters.items() if k.split("/")[0] == "clickhouse"]
    assert clickhouse["create_schema"] is False
    assert clickhouse["database"] == "otel"
    assert clickhouse["username"] == "otel_ingest"
    assert "CREATE USER IF NOT EXISTS `otel_ingest`" in render_clickhouse(s)["clickhouse/users.sql"]
    # Default table names: the exporter writes the tables the migrations create.
    assert not {"traces_table_name", "logs_table_name", "metrics_tables", "metrics_table_name"} & set(clickhouse)


class RecordingConnection:
    """Records what the runner sends; fails statements containing ``fail_on`` with the statement in the error
    (as ClickHouse's syntax errors quote the query)."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.sent: list[str] = []
        self.fail_on = fail_on

    def cursor(self) -> RecordingConnection:
        return self

    def execute(self, sql: str) -> None:
        if self.fail_on and self.fail_on in sql:
            raise RuntimeError(f"Syntax error in: {sql}")
        self.sent.append(sql)

    def fetchall(self) -> list[tuple[str, str]]:
        return []


def test_runner_sends_users_with_hashes_and_never_shows_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from otelstack.backends.clickhouse import apply

    monkeypatch.setenv("OTELSTACK_CLICKHOUSE_PASSWORD", "writer-pw")
    monkeypatch.setenv("OTELSTACK_CLICKHOUSE_READER_PASSWORD", "reader-pw")
    files = render_clickhouse(spec())
    conn = RecordingConnection()
    outcome = apply(conn, files, "otel")
    assert outcome.users_applied and outcome.applied[-1] == "retention"
    writer_hash = hashlib.sha256(b"writer-pw").hexdigest()
    assert f"ALTER USER `otel_writer` IDENTIFIED WITH sha256_hash BY '{writer_hash}'" in conn.sent
    assert not any("writer-pw" in s or "reader-pw" in s or "${sha256:" in s for s in conn.sent)
    # Statements recorded in the migrations table name checksums of files, never of secrets.
    inserts = [s for s in conn.sent if s.startswith("INSERT INTO `otel`.`otelstack_schema_migrations`")]
    assert len(inserts) == 10 and not any(writer_hash in s for s in inserts)

    failing = RecordingConnection(fail_on="ALTER USER `grafana_reader`")
    with pytest.raises(ClickHouseSchemaError, match=r"clickhouse/users.sql: statement failed: ALTER USER") as err:
        apply(failing, files, "otel")
    assert hashlib.sha256(b"reader-pw").hexdigest() not in str(err.value)
    assert "${sha256:env:OTELSTACK_CLICKHOUSE_READER_PASSWORD}" in str(err.value)


def test_runner_refuses_files_with_gaps_or_strange_names() -> None:
    from otelstack.backends.clickhouse import apply

    files = render_clickhouse(spec())
    gap = {p: t for p, t in files.items() if p != "clickhouse/003-traces-trace-id-lookup.sql"}
    with pytest.raises(ClickHouseSchemaError, match="without gaps"):
        apply(RecordingConnection(), gap, "otel")
    no_bootstrap = {p: t for p, t in files.items() if p != "clickhouse/bootstrap.sql"}
    with pytest.raises(ClickHouseSchemaError, match=r"bootstrap\.sql is missing"):
        apply(RecordingConnection(), no_bootstrap, "otel")


def test_gateway_overrides_may_not_take_the_schema_back() -> None:
    from otelstack.backends.clickhouse.check import check_clickhouse

    overrides = {"exporters": {"clickhouse": {"create_schema": True, "ttl": "72h", "timeout": "5s"}}}
    s = PlatformSpec(environment="dev", collector_overrides={"gateway": overrides})
    problems = check_clickhouse(s)
    assert len(problems) == 2
    assert problems[0].startswith("collector_overrides.gateway.exporters.clickhouse.create_schema: the exporter must")
    assert problems[1].startswith("collector_overrides.gateway.exporters.clickhouse.ttl: the table layout")


def test_server_fragment_publishes_the_metric_names_the_disk_alerts_query() -> None:
    """ClickHouse 26.8+ publishes per-disk asynchronous metrics as one labelled family unless told
    ``legacy_names``; the alerts query the scalar names, on the port the clickhouse scrape job uses."""
    from xml.etree import ElementTree as ET

    from otelstack.backends.prometheus import render_prometheus
    from otelstack.backends.rules import render_rules

    root = ET.fromstring(render_clickhouse(spec())["clickhouse/config.d/otelstack.xml"])
    assert root.tag == "clickhouse"
    assert root.findtext("asynchronous_metrics_key_values_mode") == "legacy_names"
    prometheus = root.find("prometheus")
    assert prometheus is not None
    assert prometheus.findtext("asynchronous_metrics") == "true"
    port = prometheus.findtext("port")
    full = PlatformSpec(environment="dev")
    assert f":{port}" in "".join(t for t in render_prometheus(full).values() if "job_name: clickhouse" in t)
    assert "ClickHouseAsyncMetrics_DiskAvailable_default" in render_rules(full)["prometheus/rules/backends.yml"]
