"""The schema as ordered migrations, rendered to files and read back from them.

Three kinds of file, applied by ``runner.py`` in this order:

- ``bootstrap.sql``: the database and the runner's own table (``otelstack_schema_migrations``), every run
  (``IF NOT EXISTS``).
- ``NNN-<name>.sql``: versioned migrations, applied once in number order and recorded with the SHA-256 of
  their statements; an applied one whose statements changed is refused (write a new migration instead).
  They hold only what is fixed at creation: names, columns, engines, sort keys, the storage policy.
- ``retention.sql``: the TTLs from ``spec.retention`` (``ALTER TABLE … MODIFY TTL``),
  re-applied whenever its checksum differs from the recorded one, so a retention change in the spec reaches
  existing tables without touching an applied migration.

``users.sql`` (``users.py``) is applied after them on every run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from otelstack.model.spec import PlatformSpec

from . import ddl, tables
from .identifiers import ClickHouseSchemaError, qualified
from .ttl import ttl_expression

MIGRATIONS_TABLE = "otelstack_schema_migrations"
DIRECTORY = "clickhouse"
BOOTSTRAP = f"{DIRECTORY}/bootstrap.sql"
RETENTION = f"{DIRECTORY}/retention.sql"
VERSIONED = re.compile(rf"^{DIRECTORY}/(\d{{3}})-([a-z0-9-]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    path: str  # relative to build/ENV/, e.g. clickhouse/002-traces.sql
    statements: tuple[str, ...]
    kind: str = "versioned"  # versioned, repeatable (retention) or bootstrap

    @property
    def name(self) -> str:
        return self.path.removeprefix(f"{DIRECTORY}/").removesuffix(".sql")

    @property
    def checksum(self) -> str:
        """SHA-256 of the statements (comments and blank lines do not count)."""
        return hashlib.sha256(";\n".join(self.statements).encode()).hexdigest()

    def text(self, header: str) -> str:
        lines = [f"-- {line}" if line else "--" for line in header.splitlines()]
        return "\n".join(lines) + "\n\n" + "".join(f"{s};\n\n" for s in self.statements).rstrip("\n") + "\n"


def statements_of(text: str) -> tuple[str, ...]:
    """The statements of a rendered file: full-line ``--`` comments dropped, split at ``;`` ending a line."""
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return tuple(s.strip() for s in re.split(r";[ \t]*(?:\n|$)", body) if s.strip())


def parse(path: str, text: str) -> Migration:
    kind = "bootstrap" if path == BOOTSTRAP else "repeatable" if path == RETENTION else "versioned"
    if kind == "versioned" and not VERSIONED.match(path):
        raise ClickHouseSchemaError(
            f"{path}: not a migration file name; allowed: {BOOTSTRAP}, {RETENTION} or {DIRECTORY}/NNN-name.sql"
        )
    return Migration(path, statements_of(text), kind)


def bootstrap(topo: ddl.Topology) -> Migration:
    table = qualified(topo.database, MIGRATIONS_TABLE)
    # One history for the whole cluster: the replica path has no {shard}, so every node holds every row.
    engine = topo.engine("/clickhouse/tables/otelstack/{database}/{table}")
    return Migration(
        BOOTSTRAP,
        (
            ddl.create_database(topo),
            f"CREATE TABLE IF NOT EXISTS {table}{topo.on}\n(\n    `name` String,\n    `kind` LowCardinality(String),\n"
            "    `checksum` String,\n    `applied_at` DateTime64(3) DEFAULT now64(3)\n)\n"
            f"ENGINE = {engine}\nORDER BY (name, applied_at)",
        ),
        "bootstrap",
    )


def versioned(topo: ddl.Topology) -> list[Migration]:
    """The numbered migrations, in order. Never renumber or edit one that was released: append."""
    steps: list[tuple[str, list[str]]] = [
        ("database", [ddl.create_database(topo)]),
        ("traces", ddl.create_table(topo, tables.TRACES)),
        ("traces-trace-id-lookup", [*ddl.create_table(topo, tables.TRACE_ID_TS), ddl.create_trace_id_view(topo)]),
        ("logs", ddl.create_table(topo, tables.LOGS)),
        *((t.name.removeprefix("otel_").replace("_", "-"), ddl.create_table(topo, t)) for t in tables.METRICS),
    ]
    return [Migration(f"{DIRECTORY}/{n:03d}-{name}.sql", tuple(sql)) for n, (name, sql) in enumerate(steps, 1)]


def retention(spec: PlatformSpec, topo: ddl.Topology) -> Migration:
    """The TTL of every data table, from spec.retention (see ttl.py)."""
    statements: list[str] = []
    for table in tables.ALL_TABLES:
        target = qualified(topo.database, topo.data_table(table.name))
        signal = getattr(spec.retention, table.signal)
        # The lookup table only answers "where is this trace": it stays on the fastest volume until deleted.
        tiered = topo.storage_policy is not None and table is not tables.TRACE_ID_TS
        statements.append(
            f"ALTER TABLE {target}{topo.on} MODIFY TTL {ttl_expression(table.ttl_time, signal, tiered=tiered)}"
        )
    return Migration(RETENTION, tuple(statements), "repeatable")


def all_migrations(spec: PlatformSpec, topo: ddl.Topology | None = None) -> list[Migration]:
    topo = topo or ddl.Topology.of(spec)
    return [bootstrap(topo), *versioned(topo), retention(spec, topo)]
