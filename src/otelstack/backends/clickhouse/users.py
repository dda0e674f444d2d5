"""Users with least privilege, their passwords never written down.

Two roles, one user each:

- ``otelstack_exporter`` (the gateways' ``backends.clickhouse.username``): ``INSERT`` on the tables the exporter
  writes, and ``SHOW COLUMNS`` on ``otel_logs`` (with ``create_schema: false`` the exporter still runs
  ``DESC TABLE`` on it at start to find optional columns). Nothing else: no ``CREATE``, no ``SELECT``; the
  trace-id lookup table is filled by its materialized view with the view's definer's rights.
- ``otelstack_reader`` (Grafana's ``backends.clickhouse.reader_username``): ``SELECT`` on the data tables, and
  ``readonly = 2`` on the role (no writes even if a grant slips in; query settings still allowed, which
  Grafana's ClickHouse plugin sets).

On a cluster the grants also cover the ``*_local`` tables: with an interserver ``secret`` in
``remote_servers`` the shards run a Distributed query as the initial user.

Passwords: ``users.sql`` names each secret by its reference (``${sha256:env:NAME}`` / ``${sha256:file:/path}``)
and never holds a password or a hash. The runner reads the secret when it applies the file (the environment or a
mounted file, e.g. a Kubernetes Secret or an Ansible Vault-fed file), sends only its SHA-256
(``IDENTIFIED WITH sha256_hash``), and records nothing of it. Because the file is applied on every run
(``CREATE … IF NOT EXISTS``, ``ALTER USER … IDENTIFIED``, ``GRANT … WITH REPLACE OPTION``), a rotated secret
takes effect at the next run and grants added by hand are replaced by these.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path

from otelstack.model.spec import SECRET_REF, PlatformSpec

from .ddl import Topology
from .identifiers import ClickHouseSchemaError, checked, ident, qualified
from .migrations import DIRECTORY
from .tables import EXPORTER_TABLES, LOGS, TRACE_ID_TS

USERS = f"{DIRECTORY}/users.sql"
EXPORTER_ROLE = "otelstack_exporter"
READER_ROLE = "otelstack_reader"
PLACEHOLDER = re.compile(r"\$\{sha256:([^}]+)\}")


def _tables(topo: Topology, names: list[str]) -> list[str]:
    out = [qualified(topo.database, n) for n in names]
    if topo.cluster:
        out += [qualified(topo.database, topo.data_table(n)) for n in names]
    return out


def statements(spec: PlatformSpec, topo: Topology | None = None) -> list[str]:
    topo = topo or Topology.of(spec)
    ch = spec.backends.clickhouse
    writer = checked(ch.username, "backends.clickhouse.username")
    reader = checked(ch.reader_username, "backends.clickhouse.reader_username")
    if writer == reader:
        raise ClickHouseSchemaError(
            f"backends.clickhouse.username and reader_username are both {writer!r}; allowed: two different users "
            "(the exporter inserts, Grafana only reads)"
        )
    on = topo.on
    db = ident(topo.database, "database")
    inserts = ", ".join(f"INSERT ON {t}" for t in _tables(topo, [t.name for t in EXPORTER_TABLES]))
    describe = ", ".join(f"SHOW COLUMNS ON {t}" for t in _tables(topo, [LOGS.name]))
    selects = ", ".join(f"SELECT ON {t}" for t in _tables(topo, [t.name for t in (*EXPORTER_TABLES, TRACE_ID_TS)]))
    out = [
        f"CREATE ROLE IF NOT EXISTS {EXPORTER_ROLE}{on}",
        f"GRANT{on} {inserts}, {describe} TO {EXPORTER_ROLE} WITH REPLACE OPTION",
        f"CREATE ROLE IF NOT EXISTS {READER_ROLE}{on}",
        f"ALTER ROLE {READER_ROLE}{on} SETTINGS readonly = 2",
        f"GRANT{on} {selects} TO {READER_ROLE} WITH REPLACE OPTION",
    ]
    for user, role, ref in ((writer, EXPORTER_ROLE, ch.password), (reader, READER_ROLE, ch.reader_password)):
        hashed = f"'${{sha256:{ref}}}'"
        out += [
            f"CREATE USER IF NOT EXISTS {ident(user)}{on} IDENTIFIED WITH sha256_hash BY {hashed} "
            f"DEFAULT DATABASE {db}",
            f"ALTER USER {ident(user)}{on} IDENTIFIED WITH sha256_hash BY {hashed}",
            f"REVOKE{on} ALL ON *.* FROM {ident(user)}",
            f"GRANT{on} {role} TO {ident(user)} WITH REPLACE OPTION",
            f"ALTER USER {ident(user)}{on} DEFAULT ROLE {role}",
        ]
    return out


def read_secret(ref: str) -> str:
    """The secret a reference names: ``env:NAME`` (a variable) or ``file:/path`` (its content, one trailing
    newline removed). Errors name the reference, never a value."""
    if not SECRET_REF.match(ref):
        raise ClickHouseSchemaError(f"{ref!r} is not a secret reference; allowed: env:NAME or file:/absolute/path")
    kind, _, where = ref.partition(":")
    if kind == "env":
        value = os.environ.get(where)
        if value is None:
            raise ClickHouseSchemaError(f"secret {ref}: the environment variable {where} is not set")
    else:
        try:
            value = Path(where).read_text(encoding="utf-8").removesuffix("\n")
        except OSError as exc:
            raise ClickHouseSchemaError(f"secret {ref}: cannot read {where} ({exc.strerror})") from None
    if not value:
        raise ClickHouseSchemaError(f"secret {ref} is empty; a ClickHouse user needs a password")
    return value


def resolve(sql: str, secret: Callable[[str], str] = read_secret) -> str:
    """``sql`` with every ``${sha256:REF}`` replaced by the SHA-256 (hex) of the secret REF names."""
    return PLACEHOLDER.sub(lambda m: hashlib.sha256(secret(m.group(1)).encode()).hexdigest(), sql)
