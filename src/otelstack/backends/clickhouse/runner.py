"""Apply the rendered ClickHouse files over any DB-API connection (chDB, clickhouse-connect's dbapi, …).

The runner only needs ``connection.cursor()`` with ``execute(sql)`` and ``fetchall()``; it never builds SQL
from user input beyond the names the renderer checked. Order: ``bootstrap.sql``; each ``NNN-*.sql`` not yet
recorded, in number order; ``retention.sql`` when its checksum changed; ``users.sql`` (secrets resolved now).
A recorded migration whose checksum differs from its file, or one the database has but the files do not, stops
the run before anything is applied. Run it from one place at a time (a Job, a play with ``run_once``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .identifiers import ClickHouseSchemaError, literal, qualified
from .migrations import BOOTSTRAP, MIGRATIONS_TABLE, RETENTION, VERSIONED, Migration, parse, statements_of
from .users import USERS, read_secret, resolve

PLACEHOLDER_DIGEST = re.compile(r"\b[0-9a-f]{64}\b")


class Cursor(Protocol):
    def execute(self, operation: str, /) -> object: ...

    def fetchall(self) -> Sequence[Sequence[Any]]: ...


class Connection(Protocol):
    def cursor(self) -> Any: ...


class MigrationRefused(ClickHouseSchemaError):
    """The database's recorded migrations do not match the files: nothing was applied."""


@dataclass
class Outcome:
    applied: list[str] = field(default_factory=list)  # migration names applied by this run
    users_applied: bool = False


def _run(cursor: Cursor, sql: str, origin: str, *, shown: str | None = None) -> None:
    """Execute one statement; an error names the file and the statement as written in it (``shown``: the
    text before secrets were resolved, which is also removed from the driver's message)."""
    try:
        cursor.execute(sql)
    except Exception as exc:  # the driver's own error type
        message = str(exc)
        if shown is not None:
            message = message.replace(sql, shown)
            for digest in PLACEHOLDER_DIGEST.findall(sql):
                message = message.replace(digest, "***")
        first = (shown or sql).strip().splitlines()[0]
        raise ClickHouseSchemaError(f"{origin}: statement failed: {first} …: {message}") from None


def recorded(connection: Connection, database: str) -> dict[str, str]:
    """name → checksum of the last application, from the migrations table."""
    cursor = connection.cursor()
    cursor.execute(
        f"SELECT name, argMax(checksum, applied_at) FROM {qualified(database, MIGRATIONS_TABLE)} GROUP BY name"
    )
    return {str(row[0]): str(row[1]) for row in cursor.fetchall()}


def plan(files: Mapping[str, str]) -> tuple[Migration, list[Migration], Migration | None]:
    """bootstrap, the versioned migrations in order, and retention, from rendered files."""
    if BOOTSTRAP not in files:
        raise ClickHouseSchemaError(f"{BOOTSTRAP} is missing from the files: render the ClickHouse schema again")
    versioned = sorted((parse(p, t) for p, t in files.items() if VERSIONED.match(p)), key=lambda m: m.path)
    numbers = [int(m.name[:3]) for m in versioned]
    if numbers != list(range(1, len(numbers) + 1)):
        raise ClickHouseSchemaError(f"migration numbers must run 001, 002, … without gaps; found {numbers}")
    retention = parse(RETENTION, files[RETENTION]) if RETENTION in files else None
    return parse(BOOTSTRAP, files[BOOTSTRAP]), versioned, retention


def apply(
    connection: Connection,
    files: Mapping[str, str],
    database: str,
    *,
    secret: Callable[[str], str] = read_secret,
    users: bool = True,
) -> Outcome:
    """Bring the database to the files' schema. ``users=False`` skips ``users.sql`` (an engine without access
    control, such as chDB)."""
    bootstrap, versioned, retention = plan(files)
    cursor = connection.cursor()
    for sql in bootstrap.statements:
        _run(cursor, sql, bootstrap.path)
    done = recorded(connection, database)

    known = {m.name for m in versioned} | ({retention.name} if retention else set())
    unknown = sorted(set(done) - known)
    if unknown:
        raise MigrationRefused(
            f"the database {database!r} has migrations these files do not know: {', '.join(unknown)} (applied by a "
            "newer otelstack?); refusing to run older files against it"
        )
    for m in versioned:
        if m.name in done and done[m.name] != m.checksum:
            raise MigrationRefused(
                f"{m.path} was applied with checksum {done[m.name]}, but the file now has {m.checksum}: an applied "
                "migration never changes (its tables already exist as it was); put the change in a new migration"
            )

    outcome = Outcome()
    todo = [m for m in versioned if m.name not in done]
    if retention and done.get(retention.name) != retention.checksum:
        todo.append(retention)
    table = qualified(database, MIGRATIONS_TABLE)
    for m in todo:
        for sql in m.statements:
            _run(cursor, sql, m.path)
        _run(
            cursor,
            f"INSERT INTO {table} (name, kind, checksum) VALUES ({literal(m.name)}, {literal(m.kind)}, "
            f"{literal(m.checksum)})",
            m.path,
        )
        outcome.applied.append(m.name)

    if users and USERS in files:
        for sql in statements_of(files[USERS]):
            _run(cursor, resolve(sql, secret), USERS, shown=sql)
        outcome.users_applied = True
    return outcome
