"""The fleet registry in PostgreSQL, shared by several server replicas (psycopg 3, the `postgresql` extra).

The same records as the SQLite store (``otelstack.opamp.store``), as JSONB documents keyed by id, with
the same columns next to an agent's document. Each call is one statement on one connection in
autocommit mode: a committed write is visible to every replica at once. A dropped connection (a
database restart or fail-over) is opened again on the next call.

What differs from SQLite, because several processes write:

- at most one rollout is running: a unique index on the running flag refuses a second one
  (``StoreConflict``), and a finished rollout is never written back to running by a replica that had
  not yet heard it finished;
- ``reset_connections`` marks disconnected only the agents whose server process is gone: every replica
  connects with ``application_name`` = ``otelstack-opamp/<its id>``, so the live ones are those in
  ``pg_stat_activity``;
- ``notify`` is ``pg_notify`` on CHANNEL, heard by the other replicas (``otelstack.opamp.replicas``).

The schema is versioned in the table ``schema_version`` (one row); a server migrates an older database
in one transaction under an advisory lock, so replicas started together migrate it once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pgerrors

from otelstack.opamp.store import AgentRecord, RolloutRecord, StoreConflict, StoreError, _agent_columns, record

log = logging.getLogger("otelstack.opamp")

CHANNEL = "otelstack_opamp"
APPLICATION_PREFIX = "otelstack-opamp/"
# pg_advisory_xact_lock key held while the schema is migrated ("otelmigr").
MIGRATION_LOCK = 0x6F74656C6D696772

# Version 1: the registry as the SQLite store has it at its schema version 1, plus the running flag of a
# rollout (at most one). MIGRATIONS[n] brings a database of version n to n + 1.
_V1 = """
CREATE TABLE agents (
    uid text PRIMARY KEY,
    doc jsonb NOT NULL,
    owner text NOT NULL DEFAULT '',
    described boolean NOT NULL DEFAULT false,
    first_seen double precision NOT NULL DEFAULT 0
);
CREATE INDEX agents_incomplete ON agents (first_seen) WHERE NOT described;
CREATE TABLE rollouts (
    id text PRIMARY KEY,
    created double precision NOT NULL,
    running boolean NOT NULL DEFAULT false,
    doc jsonb NOT NULL
);
CREATE UNIQUE INDEX rollouts_one_running ON rollouts ((true)) WHERE running;
CREATE TABLE configs (hash text PRIMARY KEY, text text NOT NULL);
CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);
"""
MIGRATIONS: tuple[str, ...] = (_V1,)
SCHEMA_VERSION = len(MIGRATIONS)

T = TypeVar("T")


def connect(conninfo: str, where: str) -> psycopg.Connection[Any]:
    """An autocommit connection, or StoreError naming the server (no traceback, no password)."""
    try:
        return psycopg.connect(conninfo, autocommit=True)
    except psycopg.Error as exc:
        raise StoreError(f"PostgreSQL registry at {where} is unreachable: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class PostgresStore:
    """FleetStore in PostgreSQL. ``conninfo``: the libpq connection string (with this replica's
    application_name); ``where``: host:port/dbname for messages; ``server_id``: this replica."""

    shared = True

    def __init__(self, conninfo: str, where: str, server_id: str) -> None:
        self._conninfo, self.where, self.server_id = conninfo, where, server_id
        self._db = connect(conninfo, where)
        try:
            self.migrate(self._db, where)
        except BaseException:
            self._db.close()
            raise

    @staticmethod
    def migrate(db: psycopg.Connection[Any], where: str) -> None:
        """Bring the database to SCHEMA_VERSION, in one transaction, once however many replicas start."""
        try:
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                db.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
                row = db.execute("SELECT version FROM schema_version").fetchone()
                version = 0 if row is None else int(row[0])
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"PostgreSQL registry at {where}: schema version {version} is newer than this server's "
                        f"({SCHEMA_VERSION}); run the server release that wrote it, or a newer one"
                    )
                for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                    db.execute(migration.encode())
                    log.info("PostgreSQL registry at %s: schema migrated to version %d", where, number)
                if row is None:
                    db.execute("INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION,))
                elif version < SCHEMA_VERSION:
                    db.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION,))
        except psycopg.Error as exc:
            why = _first_line(exc)
            raise StoreError(f"PostgreSQL registry at {where}: the schema cannot be migrated: {why}") from exc

    @property
    def schema_version(self) -> int:
        row = self._run(lambda db: db.execute("SELECT version FROM schema_version").fetchone())
        return 0 if row is None else int(row[0])

    def _run(self, call: Callable[[psycopg.Connection[Any]], T]) -> T:
        """``call`` on the connection; once more on a new connection when the old one was lost."""
        if self._db.closed or self._db.broken:
            self._db = connect(self._conninfo, self.where)
        try:
            return call(self._db)
        except psycopg.OperationalError as exc:
            if not (self._db.closed or self._db.broken):
                raise StoreError(f"PostgreSQL registry at {self.where}: {_first_line(exc)}") from exc
            log.warning("PostgreSQL registry at %s: connection lost (%s); connecting again", self.where, exc)
            self._db = connect(self._conninfo, self.where)
            return call(self._db)

    def _one(self, query: str, params: tuple[Any, ...]) -> Any:
        row = self._run(lambda db: db.execute(query.encode(), params).fetchone())
        return None if row is None else row[0]

    def _all(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._run(lambda db: db.execute(query.encode(), params).fetchall())

    def _exec(self, query: str, params: tuple[Any, ...] = ()) -> int:
        return self._run(lambda db: db.execute(query.encode(), params).rowcount)

    # --- agents ------------------------------------------------------------------------------------

    def get_agent(self, uid: str) -> AgentRecord | None:
        doc = self._one("SELECT doc FROM agents WHERE uid = %s", (uid,))
        return None if doc is None else record(AgentRecord, doc)

    def get_agents(self, uids: list[str]) -> dict[str, AgentRecord]:
        rows = self._all("SELECT doc FROM agents WHERE uid = ANY(%s)", (list(uids),))
        return {agent.uid: agent for agent in (record(AgentRecord, doc) for (doc,) in rows)}

    def put_agent(self, agent: AgentRecord) -> None:
        doc = vars(agent)
        self._exec(
            "INSERT INTO agents (uid, doc, owner, described, first_seen) VALUES (%s, %s::jsonb, %s, %s, %s) "
            "ON CONFLICT (uid) DO UPDATE SET doc = excluded.doc, owner = excluded.owner, "
            "described = excluded.described, first_seen = excluded.first_seen",
            (agent.uid, json.dumps(doc), *self._columns(doc)),
        )

    @staticmethod
    def _columns(doc: dict[str, Any]) -> tuple[str, bool, float]:
        owner, described, first_seen = _agent_columns(doc)
        return owner, bool(described), first_seen

    def list_agents(self) -> list[AgentRecord]:
        return [record(AgentRecord, doc) for (doc,) in self._all("SELECT doc FROM agents ORDER BY uid")]

    def delete_agent(self, uid: str) -> bool:
        return self._exec("DELETE FROM agents WHERE uid = %s", (uid,)) > 0

    def count_agents_by_owner(self) -> dict[str, int]:
        return {str(owner): int(n) for owner, n in self._all("SELECT owner, COUNT(*) FROM agents GROUP BY owner")}

    def delete_incomplete_agents(self, first_seen_before: float) -> list[AgentRecord]:
        rows = self._all(
            "DELETE FROM agents WHERE NOT described AND first_seen < %s "
            "AND COALESCE(doc->'attributes', '{}'::jsonb) = '{}'::jsonb RETURNING doc",
            (first_seen_before,),
        )
        return [record(AgentRecord, doc) for (doc,) in rows]

    def reset_connections(self) -> int:
        """Agents marked connected to a server process that is gone (not connected to the database)."""
        return self._exec(
            "UPDATE agents SET doc = jsonb_set(doc, '{connected}', 'false') "
            "WHERE doc->'connected' = 'true'::jsonb AND COALESCE(doc->>'server', '') NOT IN ("
            "  SELECT substr(application_name, %s) FROM pg_stat_activity WHERE application_name LIKE %s)",
            (len(APPLICATION_PREFIX) + 1, APPLICATION_PREFIX + "%"),
        )

    # --- rollouts, configs, meta ---------------------------------------------------------------

    def get_rollout(self, rollout_id: str) -> RolloutRecord | None:
        doc = self._one("SELECT doc FROM rollouts WHERE id = %s", (rollout_id,))
        return None if doc is None else record(RolloutRecord, doc)

    def put_rollout(self, rollout: RolloutRecord) -> None:
        """Insert or update; a rollout stored as finished stays as it is; a second running one is a
        StoreConflict."""
        try:
            self._exec(
                "INSERT INTO rollouts (id, created, running, doc) VALUES (%s, %s, %s, %s::jsonb) "
                "ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, running = excluded.running WHERE rollouts.running",
                (rollout.id, rollout.created_at, rollout.state == "running", json.dumps(asdict(rollout))),
            )
        except pgerrors.UniqueViolation as exc:
            running = self._one("SELECT id FROM rollouts WHERE running", ())
            raise StoreConflict(f"rollout {running} is still running; abort it or wait for it to finish") from exc

    def list_rollouts(self) -> list[RolloutRecord]:
        return [record(RolloutRecord, doc) for (doc,) in self._all("SELECT doc FROM rollouts ORDER BY created")]

    def put_config(self, config_hash: str, text: str) -> None:
        self._exec("INSERT INTO configs (hash, text) VALUES (%s, %s) ON CONFLICT DO NOTHING", (config_hash, text))

    def get_config(self, config_hash: str) -> str | None:
        text = self._one("SELECT text FROM configs WHERE hash = %s", (config_hash,))
        return None if text is None else str(text)

    def get_meta(self, key: str) -> str | None:
        value = self._one("SELECT value FROM meta WHERE key = %s", (key,))
        return None if value is None else str(value)

    def put_meta(self, key: str, value: str) -> None:
        self._exec(
            "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def notify(self, topic: str, key: str = "") -> None:
        self._exec("SELECT pg_notify(%s, %s)", (CHANNEL, f"{self.server_id} {topic} {key}"))

    def close(self) -> None:
        self._db.close()
