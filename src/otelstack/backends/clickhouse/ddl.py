"""CREATE statements for the otel_* tables on one server or on a cluster.

One server: ``MergeTree`` tables under the names the exporter writes to. A cluster
(``backends.clickhouse.cluster``): every statement ``ON CLUSTER``; the data lives in ``<name>_local``
``ReplicatedMergeTree`` tables on each node (replica path by the server's ``{shard}``/``{replica}`` macros), and
``<name>`` is a ``Distributed`` table over them, so the exporter and Grafana use the same names either way
(the exporter creates neither Distributed tables nor replicated ones itself, which is why the schema is ours
and it runs with ``create_schema: false``). Every statement is ``IF NOT EXISTS``: running it again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from otelstack.model.spec import PlatformSpec

from .identifiers import checked, ident, literal, qualified
from .tables import TRACE_ID_TS, TRACE_ID_TS_VIEW, TRACES, Column, Table

REPLICA_PATH = "/clickhouse/tables/{shard}/{database}/{table}"


@dataclass(frozen=True)
class Topology:
    """Where the tables live. ``replicated``/``on_cluster`` are False only for the in-process check, which has
    no Keeper: it runs the cluster layout (local tables + Distributed) with plain MergeTree."""

    database: str
    cluster: str | None = None
    storage_policy: str | None = None
    replicated: bool = True
    on_cluster: bool = True

    def __post_init__(self) -> None:
        checked(self.database, "database")
        if self.cluster is not None:
            checked(self.cluster, "cluster")
        if self.storage_policy is not None:
            checked(self.storage_policy, "storage policy")

    @classmethod
    def of(cls, spec: PlatformSpec) -> Topology:
        ch = spec.backends.clickhouse
        return cls(database=ch.database, cluster=ch.cluster, storage_policy=ch.storage_policy)

    @property
    def on(self) -> str:
        """`` ON CLUSTER `name``` when statements go to the whole cluster."""
        return f" ON CLUSTER {ident(self.cluster, 'cluster')}" if self.cluster and self.on_cluster else ""

    def data_table(self, name: str) -> str:
        """The table that holds the rows: ``<name>_local`` on a cluster, ``<name>`` on one server."""
        return f"{name}_local" if self.cluster else name

    def engine(self, replica_path: str = REPLICA_PATH) -> str:
        if self.cluster and self.replicated:
            return f"ReplicatedMergeTree({literal(replica_path)}, '{{replica}}')"
        return "MergeTree"


def _column(c: Column) -> str:
    text = f"`{c.name}` {c.type}"
    if c.materialized:
        text += f" MATERIALIZED {c.materialized}"
    if c.codec:
        text += f" CODEC({c.codec})"
    return text


def create_database(topo: Topology) -> str:
    return f"CREATE DATABASE IF NOT EXISTS {ident(topo.database, 'database')}{topo.on}"


def create_table(topo: Topology, table: Table) -> list[str]:
    """The data table, and on a cluster the Distributed table over it."""
    local = qualified(topo.database, topo.data_table(table.name))
    body = [_column(c) for c in table.columns]
    body += [f"INDEX {i.name} {i.expression} TYPE {i.type} GRANULARITY {i.granularity}" for i in table.indexes]
    pairs = list(table.settings)
    if topo.storage_policy:  # a creation-time choice: ClickHouse moves a table to another policy only in ways
        pairs.append(("storage_policy", literal(topo.storage_policy)))  # that keep its volumes (docs)
    settings = ", ".join(f"{k} = {v}" for k, v in pairs)
    statements = [
        f"CREATE TABLE IF NOT EXISTS {local}{topo.on}\n(\n    "
        + ",\n    ".join(body)
        + f"\n)\nENGINE = {topo.engine()}\nPARTITION BY {table.partition_by}\nORDER BY {table.order_by}\n"
        f"SETTINGS {settings}"
    ]
    if topo.cluster:
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {qualified(topo.database, table.name)}{topo.on} AS {local}\n"
            f"ENGINE = Distributed({literal(topo.cluster)}, {literal(topo.database)}, "
            f"{literal(topo.data_table(table.name))}, {table.sharding_key})"
        )
    return statements


def create_trace_id_view(topo: Topology) -> str:
    """The materialized view filling the trace-id lookup table from every insert into the spans table (on a
    cluster: node-local, from the local spans to the local lookup table). It runs with its definer's rights
    (SQL SECURITY DEFINER), so the exporter needs INSERT on otel_traces only."""
    view = qualified(topo.database, TRACE_ID_TS_VIEW)
    target = qualified(topo.database, topo.data_table(TRACE_ID_TS.name))
    source = qualified(topo.database, topo.data_table(TRACES.name))
    return (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {view}{topo.on} TO {target}\n"
        "DEFINER = CURRENT_USER SQL SECURITY DEFINER\n"
        "AS SELECT TraceId, min(Timestamp) AS Start, max(Timestamp) AS End\n"
        f"FROM {source}\nWHERE TraceId != ''\nGROUP BY TraceId"
    )
