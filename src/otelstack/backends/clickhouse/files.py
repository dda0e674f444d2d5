"""``render_clickhouse``: every ClickHouse file of an environment, as paths relative to build/ENV/."""

from __future__ import annotations

from otelstack.model.spec import PlatformSpec

from . import queries, users
from .ddl import Topology
from .migrations import BOOTSTRAP, RETENTION, Migration, all_migrations
from .server import render_server_config
from .tables import EXPORTER_MODULE, EXPORTER_VERSION

_HEADERS = {
    "bootstrap": "applied on every run (IF NOT EXISTS): the database and the runner's migrations table.",
    "versioned": "applied once, recorded with the SHA-256 of its statements; an applied migration never changes.",
    "repeatable": "re-applied whenever its statements change (spec.retention); recorded likewise.",
}


def _header(m: Migration, spec: PlatformSpec) -> str:
    layout = f"Layout: {EXPORTER_MODULE}@{EXPORTER_VERSION} (the exporter runs with create_schema: false)."
    lines = [f"otelstack ClickHouse {m.name} ({spec.environment}): {_HEADERS[m.kind]}", layout]
    if m.path == RETENTION:
        lines.append("TTL per retention tier: moves TO VOLUME with a storage policy, DELETE at the total.")
    if m.path == BOOTSTRAP:
        lines.append("Apply with: python -m otelstack.backends.clickhouse apply (docs/backends/clickhouse.md).")
    return "\n".join(lines)


def render_clickhouse(spec: PlatformSpec) -> dict[str, str]:
    """Migrations, users, correlation queries and the server fragment (empty when ClickHouse is not enabled)."""
    if not spec.backends.clickhouse.enabled:
        return {}
    topo = Topology.of(spec)
    out = {m.path: m.text(_header(m, spec)) for m in all_migrations(spec, topo)}
    header = (
        f"otelstack ClickHouse users ({spec.environment}): applied on every run. Passwords are secret references, "
        "resolved to SHA-256 by the runner at apply time; this file never holds a password or a hash."
    )
    out[users.USERS] = Migration(users.USERS, tuple(users.statements(spec, topo))).text(header)
    out.update(queries.render(topo.database))
    out.update(render_server_config())
    return out
