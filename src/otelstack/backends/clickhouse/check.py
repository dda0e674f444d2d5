"""``check_clickhouse``: the rendered schema proven on the ClickHouse engine in-process (chDB).

What runs: every rendered statement through ClickHouse's own parser (``formatQuery``), including the
``ON CLUSTER``/``ReplicatedMergeTree`` DDL and ``users.sql``; then the migrations, twice (the second run must
apply nothing and change no table), on an engine configured with the spec's storage policy (volumes hot, warm,
cold, archive) and cluster (one local shard); then the correlation queries. What cannot run in-process: replicated
tables and ``ON CLUSTER`` need ClickHouse Keeper, so a cluster layout runs as its local tables with MergeTree
plus the real Distributed tables; users and grants need a writable access storage, which chDB does not have.
"""

from __future__ import annotations

import importlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from otelstack.model.spec import PlatformSpec

from . import queries, runner
from .ddl import Topology
from .files import render_clickhouse
from .identifiers import ClickHouseSchemaError, literal
from .migrations import DIRECTORY, all_migrations, statements_of
from .server import SERVER_CONFIG, render_server_config
from .ttl import VOLUMES

QUERY_PARAMS = {
    "metric": "http.server.request.duration",
    "service": "checkout",
    "trace_id": "0" * 32,
    "start": "2026-01-01 00:00:00",
    "end": "2026-01-02 00:00:00",
}


def engine_config(spec: PlatformSpec, directory: Path) -> str:
    """A chDB (clickhouse-local) configuration with the spec's storage policy and cluster."""
    ch = spec.backends.clickhouse
    parts = ["<clickhouse>", "  <tcp_port>9000</tcp_port>"]  # never listened on: marks the local shard as local
    if ch.storage_policy:
        disks = "".join(f"<{v}><path>{directory / 'disks' / v}/</path></{v}>" for v in VOLUMES[1:])
        volumes = "<hot><disk>default</disk></hot>" + "".join(f"<{v}><disk>{v}</disk></{v}>" for v in VOLUMES[1:])
        parts.append(
            f"  <storage_configuration><disks>{disks}</disks><policies><{ch.storage_policy}><volumes>{volumes}"
            f"</volumes></{ch.storage_policy}></policies></storage_configuration>"
        )
    if ch.cluster:
        parts.append(
            f"  <remote_servers><{ch.cluster}><shard><replica><host>localhost</host><port>9000</port></replica>"
            f"</shard></{ch.cluster}></remote_servers>"
        )
        parts.append("  <macros><shard>01</shard><replica>check</replica></macros>")
    parts += [f"  {ET.tostring(e, encoding='unicode').strip()}" for e in server_settings()]
    parts.append("</clickhouse>")
    return "\n".join(parts) + "\n"


def server_settings() -> list[ET.Element]:
    """The server fragment's top-level settings (not its listener, which clickhouse-local does not run)."""
    root = ET.fromstring(render_server_config()[SERVER_CONFIG])
    return [e for e in root if e.tag != "prometheus"]


@contextmanager
def chdb_connection(spec: PlatformSpec, directory: Path) -> Iterator[Any]:
    """A chDB connection (DB-API-like) on a fresh data directory configured for ``spec``."""
    chdb = importlib.import_module("chdb")
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "config.xml"
    config.write_text(engine_config(spec, directory), encoding="utf-8")
    conn = chdb.connect(f"file:{directory / 'data'}?config-file={config}")
    try:
        yield conn
    finally:
        conn.close()


def local_files(spec: PlatformSpec) -> dict[str, str]:
    """The rendered files; for a cluster, the same layout without Keeper (see the module docstring)."""
    files = render_clickhouse(spec)
    if spec.backends.clickhouse.cluster:
        topo = Topology.of(spec)
        local = Topology(topo.database, topo.cluster, topo.storage_policy, replicated=False, on_cluster=False)
        files.update({m.path: m.text("") for m in all_migrations(spec, local)})
    return files


def schema(conn: Any, database: str) -> list[tuple[Any, ...]]:
    cur = conn.cursor()
    cur.execute(
        "SELECT name, engine_full, create_table_query FROM system.tables "
        f"WHERE database = {literal(database)} ORDER BY name"
    )
    return [tuple(r) for r in cur.fetchall()]


# Exporter keys an override must not set: the schema (tables, names, TTL, engine) is ours.
SCHEMA_KEYS = ("ttl", "table_engine", "cluster_name", "logs_table_name", "traces_table_name", "metrics_table_name",
               "metrics_tables", "json")  # fmt: skip


def override_problems(spec: PlatformSpec) -> list[str]:
    """``collector_overrides.gateway`` must leave the clickhouse exporter's schema settings alone."""
    problems: list[str] = []
    exporters = spec.collector_overrides.gateway.get("exporters") or {}
    for name, config in exporters.items() if isinstance(exporters, dict) else ():
        if str(name).split("/")[0] != "clickhouse" or not isinstance(config, dict):
            continue
        where = f"collector_overrides.gateway.exporters.{name}"
        if config.get("create_schema", False) is not False:
            problems.append(
                f"{where}.create_schema: the exporter must not create tables (they would lack our TTLs, cluster "
                "layout and grants); allowed: false, the schema comes from build/ENV/clickhouse/"
            )
        problems += [
            f"{where}.{key}: the table layout is otelstack's (docs/backends/clickhouse.md); remove this key"
            for key in SCHEMA_KEYS
            if key in config
        ]
    return problems


def check_clickhouse(spec: PlatformSpec) -> list[str]:
    """Problems found running the rendered ClickHouse files on chDB; empty when they all hold."""
    files = render_clickhouse(spec)
    if not files:
        return []
    problems = override_problems(spec)
    if problems:
        return problems
    try:
        importlib.import_module("chdb")
    except ImportError:
        return ["clickhouse: chDB is not installed, so the schema was not run (pip install 'otelstack[test]')"]
    database = spec.backends.clickhouse.database
    with tempfile.TemporaryDirectory(prefix="otelstack-chdb-") as tmp, chdb_connection(spec, Path(tmp)) as conn:
        cur = conn.cursor()
        for path, text in sorted(files.items()):
            if not path.endswith(".sql"):
                continue  # the server fragment (config.d/*.xml) is configuration, not SQL
            for sql in statements_of(text):
                try:
                    cur.execute(f"SELECT formatQuery({literal(sql)})")
                    cur.fetchall()
                except Exception as exc:
                    problems.append(f"{path}: ClickHouse does not parse: {sql.splitlines()[0]} …: {exc}")
        for setting in server_settings():
            cur.execute(f"SELECT value FROM system.server_settings WHERE name = {literal(setting.tag)}")
            found = [str(row[0]) for row in cur.fetchall()]
            if found != [setting.text]:
                problems.append(
                    f"{SERVER_CONFIG}: ClickHouse has {setting.tag} = {found or 'no such setting'}, "
                    f"not the fragment's {setting.text!r}"
                )
        if problems:
            return problems
        run = local_files(spec)
        try:
            runner.apply(conn, run, database, users=False)
            before = schema(conn, database)
            again = runner.apply(conn, run, database, users=False)
        except ClickHouseSchemaError as exc:
            return [f"clickhouse: {exc}"]
        if again.applied:
            problems.append(f"clickhouse: a second run applied {again.applied}; migrations must be idempotent")
        if schema(conn, database) != before:
            problems.append("clickhouse: a second run changed the tables")
        for name, build in queries.QUERIES.items():
            try:
                for key, value in QUERY_PARAMS.items():
                    cur.execute(f"SET param_{key} = {literal(value)}")
                cur.execute(build(database))
                cur.fetchall()
            except Exception as exc:
                problems.append(f"{DIRECTORY}/queries/{name}.sql: the query fails: {exc}")
    return problems
