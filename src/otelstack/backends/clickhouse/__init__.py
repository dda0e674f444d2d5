"""ClickHouse: our own schema for the exporter's tables (migrations, TTL per retention tier, cluster layout),
least-privilege users, the correlation queries, and a check on the engine in-process (chDB)."""

from .check import check_clickhouse
from .files import render_clickhouse
from .identifiers import ClickHouseSchemaError
from .runner import MigrationRefused, apply

__all__ = ["ClickHouseSchemaError", "MigrationRefused", "apply", "check_clickhouse", "render_clickhouse"]
