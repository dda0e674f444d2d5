"""The fleet registry in PostgreSQL, shared by several server replicas (psycopg 3, the `postgresql` extra).

The same records as the SQLite store (``otelstack.opamp.store``), as JSONB documents keyed by id, with
the same columns next to an agent's document. Each call is one statement on one connection in
autocommit mode: a committed write is visible to every replica at once (agent records of a batched
store: within FLUSH_S, below). A dropped connection (a database restart or fail-over) is opened again on
the next call.

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

A server opens the store ``batched`` (``open_store``), so that an agent's message costs no round trip on
the event loop:

- a new agent record is written at once (its owner, from the first message, is known to every replica
  before the agent is answered, and a rollout started anywhere selects it);
- the other agent writes are behind: ``put_agent`` keeps the record in memory and a writer thread, on a
  connection of its own, writes everything pending every FLUSH_S in one multi-row statement (sooner
  when BATCH_MAX records wait; past PENDING_MAX the caller writes them itself, so memory stays bounded
  while the database is slow or gone; a record the database refuses is logged and left out, not the
  batch). A batch row never overwrites a newer record another replica wrote (its ``last_seen`` is
  later): an agent that moved replica keeps what the new one wrote;
- an agent's record, once read or written here, is read from memory (as an object, handed out as a copy:
  no JSON parsed per message) while it speaks to this replica;
  the fleet drops that copy when the agent opens a new connection, when another replica announces a
  change to it (``forget_cached``) and when its WebSocket here closes; reads of several records overlay
  the writes still pending; bulk statements (counts, expiry, connection resets) write them first;
- what is decided for many agents or must be durable before the answer goes out stays synchronous:
  rollouts, baselines, meta, configs (each hash once per process), deletions; pending writes are
  written before a notification, so the replicas told find the change in the database;
- an operator's change to an agent (restart, overrides, deletion) announced by another replica is
  taken into the write pending here for that agent (``refresh_agent``), which would otherwise undo it.

``kill -9`` of a replica loses at most its last FLUSH_S of agent writes, which agents restore by
reporting again (the next replica asks for their full state after a sequence gap).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, fields
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
# Version 2: what a rollout decides on, as columns the database computes from each document whoever
# writes it (a replica of version 1 during an upgrade too): the driving replica reads a wave's agents
# from them every evaluation instead of whole documents (``rollout_states``). ``failing``: the agent
# has configs it failed on record (only then is ``failed_hashes`` read from the document).
_V2 = """
ALTER TABLE agents
    ADD COLUMN remote_hash text GENERATED ALWAYS AS (COALESCE(doc->>'remote_hash', '')) STORED,
    ADD COLUMN remote_status text GENERATED ALWAYS AS (COALESCE(doc->>'remote_status', 'UNSET')) STORED,
    ADD COLUMN healthy boolean GENERATED ALWAYS AS ((doc->>'healthy')::boolean) STORED,
    ADD COLUMN failing boolean GENERATED ALWAYS AS (
        COALESCE(doc->'failed_hashes', '{}'::jsonb) <> '{}'::jsonb) STORED;
"""
MIGRATIONS: tuple[str, ...] = (_V1, _V2)
SCHEMA_VERSION = len(MIGRATIONS)

# Write-behind of agent records (a batched store): how often the writer thread writes what is pending,
# how many pending records make it write at once, and past how many the caller writes them itself.
FLUSH_S = 0.1
BATCH_MAX = 2_000
PENDING_MAX = 20_000
# Agent records kept in memory at most (those that spoke to this replica); past it, forgotten at once.
CACHE_MAX = 200_000
# After a failed batch, the writer waits this long before it tries again.
RETRY_S = 1.0

# One statement for a whole batch, its rows given as one JSON array of [uid, owner, described, first_seen,
# document] (one text parameter: no per-row parameter to quote); a row never overwrites a record whose
# last_seen is later (another replica heard from the agent since).
_UPSERT_MANY = (
    "INSERT INTO agents (uid, doc, owner, described, first_seen) "
    "SELECT r->>0, r->4, r->>1, (r->>2)::boolean, (r->>3)::double precision "
    "FROM jsonb_array_elements(%s::jsonb) AS r "
    "ON CONFLICT (uid) DO UPDATE SET doc = excluded.doc, owner = excluded.owner, "
    "described = excluded.described, first_seen = excluded.first_seen "
    "WHERE COALESCE((agents.doc->>'last_seen')::double precision, 0) "
    "<= COALESCE((excluded.doc->>'last_seen')::double precision, 0)"
)


T = TypeVar("T")

# The fields of an agent's record that hold dictionaries: a record kept in memory is handed out as a copy
# with its own dictionaries (callers change records, failed_hashes in place), not parsed again from JSON.
_DICT_FIELDS = tuple(f.name for f in fields(AgentRecord) if str(f.type).startswith("dict"))


def _copy(agent: AgentRecord) -> AgentRecord:
    copied: AgentRecord = object.__new__(AgentRecord)
    values = copied.__dict__
    values.update(agent.__dict__)
    for name in _DICT_FIELDS:
        values[name] = dict(values[name])
    return copied


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

    def __init__(
        self, conninfo: str, where: str, server_id: str, *, batched: bool = False, flush_s: float = FLUSH_S
    ) -> None:
        """``batched``: agent records written behind and kept in memory (a server's store), by a writer
        thread every ``flush_s`` (0: only at ``flush``, before bulk statements and at ``close``)."""
        self._conninfo, self.where, self.server_id = conninfo, where, server_id
        self.batched, self.flush_s = batched, flush_s
        self._db = connect(conninfo, where)
        try:
            self.migrate(self._db, where)
        except BaseException:
            self._db.close()
            raise
        # Batched: the writer's connection, the records not yet written (uid -> document, columns), the
        # batch being written, and the records read or written here (uid -> document).
        self._writer_db: psycopg.Connection[Any] | None = None
        self._loader_db: psycopg.Connection[Any] | None = None
        self._loading = threading.Lock()  # the loader connection: one load at a time
        # Agents read from the database as having no record, since (a new agent: its first message needs no
        # second read); dropped when the agent's record is written or its copy forgotten.
        self._absent: set[str] = set()
        self._lock = threading.Lock()  # the three dicts
        self._flushing = threading.Lock()  # held while a batch is written: one at a time, in order
        self._pending: dict[str, tuple[str, tuple[str, bool, float]]] = {}
        self._writing: dict[str, tuple[str, tuple[str, bool, float]]] = {}
        self._cache: dict[str, AgentRecord] = {}
        self._configs: set[str] = set()  # config hashes stored (a hash names one text: written once)
        self._wake, self._stop = threading.Event(), threading.Event()
        self._writer: threading.Thread | None = None
        if batched and flush_s > 0:
            self._writer = threading.Thread(target=self._write_behind, name="opamp-registry-writer", daemon=True)
            self._writer.start()

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

    def _run(self, call: Callable[[psycopg.Connection[Any]], T], writer: bool = False, loader: bool = False) -> T:
        """``call`` on the connection (the writer thread's: ``writer``; the one ``load`` reads on, off the
        event loop: ``loader``); once more on a new connection when the old one was lost."""
        db = self._writer_db if writer else self._loader_db if loader else self._db
        if db is None or db.closed or db.broken:
            db = self._reconnect(writer, loader)
        try:
            return call(db)
        except psycopg.OperationalError as exc:
            if not (db.closed or db.broken):
                raise StoreError(f"PostgreSQL registry at {self.where}: {_first_line(exc)}") from exc
            log.warning("PostgreSQL registry at %s: connection lost (%s); connecting again", self.where, exc)
            return call(self._reconnect(writer, loader))

    def _reconnect(self, writer: bool, loader: bool = False) -> psycopg.Connection[Any]:
        db = connect(self._conninfo, self.where)
        if writer:
            self._writer_db = db
        elif loader:
            self._loader_db = db
        else:
            self._db = db
        return db

    def _one(self, query: str, params: tuple[Any, ...]) -> Any:
        row = self._run(lambda db: db.execute(query.encode(), params).fetchone())
        return None if row is None else row[0]

    def _all(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._run(lambda db: db.execute(query.encode(), params).fetchall())

    def _exec(self, query: str, params: tuple[Any, ...] = ()) -> int:
        return self._run(lambda db: db.execute(query.encode(), params).rowcount)

    # --- agents ------------------------------------------------------------------------------------

    def get_agent(self, uid: str) -> AgentRecord | None:
        if not self.batched:
            doc = self._one("SELECT doc FROM agents WHERE uid = %s", (uid,))
            return None if doc is None else record(AgentRecord, doc)
        with self._lock:
            kept = self._cache.get(uid)
            text = self._unwritten(uid) if kept is None else None
            absent = uid in self._absent
        if kept is not None:
            return _copy(kept)
        if text is None and absent:
            return None
        if text is None:
            text = self._one("SELECT doc::text FROM agents WHERE uid = %s", (uid,))
            if text is None:
                return None
        agent = record(AgentRecord, str(text))
        self._keep(agent)
        return _copy(agent)

    def _unwritten(self, uid: str) -> str | None:
        """The document of a record written here and not yet in the database (hold ``_lock``)."""
        row = self._pending.get(uid) or self._writing.get(uid)
        return None if row is None else row[0]

    def load(self, uid: str) -> None:
        """Read an agent's record from the database afresh, on a connection of its own (callable from a
        worker thread, while the event loop serves other agents): the next ``get_agent`` of it is answered
        from memory, a record or none."""
        if not self.batched:
            return
        with self._lock:
            self._cache.pop(uid, None)
            self._absent.discard(uid)
        with self._loading:
            row = self._run(
                lambda db: db.execute(b"SELECT doc::text FROM agents WHERE uid = %s", (uid,)).fetchone(), loader=True
            )
        agent = None if row is None else record(AgentRecord, str(row[0]))
        with self._lock:
            if uid in self._cache or self._unwritten(uid) is not None:  # written or read here since: newer
                return
            if agent is not None:
                if len(self._cache) >= CACHE_MAX:
                    self._cache.clear()
                self._cache[uid] = agent
                return
            if len(self._absent) >= CACHE_MAX:
                self._absent.clear()
            self._absent.add(uid)

    def _keep(self, agent: AgentRecord) -> None:
        with self._lock:
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            self._cache[agent.uid] = agent

    def _newer(self, uids: list[str]) -> dict[str, AgentRecord]:
        """The records among ``uids`` written here and not yet in the database (they are newer)."""
        with self._lock:
            found = {uid: (self._cache.get(uid), text) for uid in uids if (text := self._unwritten(uid)) is not None}
        return {
            uid: _copy(kept) if kept is not None else record(AgentRecord, text) for uid, (kept, text) in found.items()
        }

    def get_agents(self, uids: list[str]) -> dict[str, AgentRecord]:
        rows = self._all("SELECT doc FROM agents WHERE uid = ANY(%s)", (list(uids),))
        found = {agent.uid: agent for agent in (record(AgentRecord, doc) for (doc,) in rows)}
        if self.batched:  # what this replica wrote and has not yet written to the database is newer
            found.update(self._newer(uids))
        return found

    def rollout_states(self, uids: list[str], packages: bool = False) -> dict[str, AgentRecord]:
        """Those agents' records with only what a rollout decides on (``ROLLOUT_FIELDS``), from the columns
        the database keeps next to each document: the document itself is read only for an agent that
        failed (its error, the configs it failed) and, for a package rollout (``packages``), its packages.
        Records this replica has not yet written are read whole from memory (they are newer)."""
        rows = self._all(
            "SELECT uid, remote_hash, remote_status, healthy, "
            "CASE WHEN remote_status = 'FAILED' THEN doc->>'remote_error' END, "
            "CASE WHEN failing THEN doc->'failed_hashes' END, "
            "CASE WHEN %s THEN doc->'packages' END "
            "FROM agents WHERE uid = ANY(%s)",
            (packages, list(uids)),
        )
        found = {
            uid: AgentRecord(
                uid=uid,
                remote_hash=remote_hash,
                remote_status=remote_status,
                healthy=healthy,
                remote_error=remote_error or "",
                failed_hashes=failed or {},
                packages=installed or {},
            )
            for uid, remote_hash, remote_status, healthy, remote_error, failed, installed in rows
        }
        if self.batched:
            found.update(self._newer(uids))
        return found

    def put_agent(self, agent: AgentRecord) -> None:
        doc = vars(agent)
        if self.batched:
            text = json.dumps(doc)
            with self._lock:
                known = agent.uid in self._cache or self._unwritten(agent.uid) is not None
                self._absent.discard(agent.uid)
            if not known:  # a new record (or one not read here): in the database before the answer
                self._upsert(agent.uid, text, doc)
                self._keep(_copy(agent))
                return
            kept = _copy(agent)
            with self._lock:
                self._pending[agent.uid] = (text, self._columns(doc))
                if len(self._cache) >= CACHE_MAX:
                    self._cache.clear()
                self._cache[agent.uid] = kept
                waiting = len(self._pending)
            if waiting >= PENDING_MAX:  # the writer does not keep up (or the database is gone): wait for it
                self.flush()
            elif waiting >= BATCH_MAX:
                self._wake.set()
            return
        self._upsert(agent.uid, json.dumps(doc), doc)

    def _upsert(self, uid: str, text: str, doc: dict[str, Any]) -> None:
        self._exec(
            "INSERT INTO agents (uid, doc, owner, described, first_seen) VALUES (%s, %s::jsonb, %s, %s, %s) "
            "ON CONFLICT (uid) DO UPDATE SET doc = excluded.doc, owner = excluded.owner, "
            "described = excluded.described, first_seen = excluded.first_seen",
            (uid, text, *self._columns(doc)),
        )

    def forget_cached(self, uid: str = "") -> None:
        """Drop the copy of an agent's record kept here ("": of every agent); what is pending is still
        written, and read until it is."""
        with self._lock:
            if uid:
                self._cache.pop(uid, None)
                self._absent.discard(uid)
            else:
                self._cache.clear()
                self._absent.clear()

    def refresh_agent(self, uid: str, fields: tuple[str, ...]) -> None:
        if not self.batched:
            return
        with self._flushing:  # no batch of this replica lands meanwhile
            text = self._one("SELECT doc::text FROM agents WHERE uid = %s", (uid,))
            with self._lock:
                self._cache.pop(uid, None)
                self._absent.discard(uid)
                row = self._pending.get(uid)
                if text is None:  # deleted there: not written again from here
                    self._pending.pop(uid, None)
                elif row is not None:
                    theirs, mine = json.loads(str(text)), json.loads(row[0])
                    mine.update({name: theirs[name] for name in fields if name in theirs})
                    self._pending[uid] = (json.dumps(mine), row[1])

    def flush(self) -> None:
        """Write the pending agent records now, in one statement (after a batch being written)."""
        with self._flushing:
            with self._lock:
                batch, self._pending = self._pending, {}
                self._writing = batch
            if not batch:
                return
            try:
                try:
                    self._write(batch)
                except psycopg.Error as exc:
                    if isinstance(exc, psycopg.OperationalError):
                        raise
                    # A record the database refuses (not the connection): the others are written.
                    for uid, row in batch.items():
                        self._write_one(uid, row)
            except BaseException:
                with self._lock:  # written again with the next batch, unless written anew meanwhile
                    for uid, row in batch.items():
                        self._pending.setdefault(uid, row)
                raise
            finally:
                with self._lock:
                    self._writing = {}

    def _write(self, batch: dict[str, tuple[str, tuple[str, bool, float]]]) -> None:
        rows = ",".join(
            f"[{json.dumps(uid)},{json.dumps(owner)},{json.dumps(described)},{json.dumps(first_seen)},{text}]"
            for uid, (text, (owner, described, first_seen)) in batch.items()
        )
        self._run(lambda db: db.execute(_UPSERT_MANY.encode(), (f"[{rows}]",)), writer=True)

    def _write_one(self, uid: str, row: tuple[str, tuple[str, bool, float]]) -> None:
        try:
            self._write({uid: row})
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.OperationalError):
                raise
            log.error("PostgreSQL registry at %s: agent %s: its record was not written: %s", self.where, uid, exc)
            with self._lock:
                self._cache.pop(uid, None)  # read from the database again

    def _write_behind(self) -> None:
        """The writer thread: what is pending, every flush_s (or as soon as BATCH_MAX records wait)."""
        failing = False
        while not self._stop.is_set():
            self._wake.wait(self.flush_s)
            self._wake.clear()
            try:
                self.flush()
            except Exception as exc:
                if not failing:
                    log.error(
                        "PostgreSQL registry at %s: agent records not written (%s); retrying every %.0f s",
                        self.where,
                        _first_line(exc),
                        RETRY_S,
                    )
                failing = True
                self._stop.wait(RETRY_S)
                continue
            if failing:
                log.warning("PostgreSQL registry at %s: agent records written again", self.where)
                failing = False

    def _settle(self) -> None:
        """Before a statement over many records: what is pending is in the database."""
        if self.batched:
            self.flush()

    @staticmethod
    def _columns(doc: dict[str, Any]) -> tuple[str, bool, float]:
        owner, described, first_seen = _agent_columns(doc)
        return owner, bool(described), first_seen

    def count_applied(self, expected: dict[str, str]) -> int:
        """Counted by the database from the columns (what is pending here is written first): a progress
        poll over a large rollout transfers one number, not a row per agent."""
        self._settle()
        return int(
            self._one(
                "SELECT count(*) FROM unnest(%s::text[], %s::text[]) AS w(uid, want) JOIN agents a USING (uid) "
                "WHERE a.remote_hash = w.want AND a.remote_status = 'APPLIED' AND a.healthy IS NOT FALSE "
                "AND NOT (a.failing AND a.doc->'failed_hashes' ? w.want)",
                (list(expected), list(expected.values())),
            )
        )

    def list_selectable(self) -> list[AgentRecord]:
        """Every agent with only ``SELECTION_FIELDS`` (what is pending is written first): starting a rollout
        over a large registry reads a few fields per agent, not whole documents."""
        self._settle()
        rows = self._all(
            "SELECT uid, doc->>'environment', doc->>'region', doc->>'profile', doc->>'namespace', "
            "doc->'attributes', doc->'overrides' FROM agents ORDER BY uid"
        )
        return [
            AgentRecord(
                uid=uid,
                environment=environment or "",
                region=region or "",
                profile=profile or "",
                namespace=namespace or "",
                attributes=attributes or {},
                overrides=overrides or {},
            )
            for uid, environment, region, profile, namespace, attributes, overrides in rows
        ]

    def list_agents(self) -> list[AgentRecord]:
        self._settle()
        return [record(AgentRecord, doc) for (doc,) in self._all("SELECT doc FROM agents ORDER BY uid")]

    def delete_agent(self, uid: str) -> bool:
        with self._flushing:  # a batch being written lands before the deletion
            with self._lock:
                unwritten = self._pending.pop(uid, None) is not None
                self._cache.pop(uid, None)
            return self._exec("DELETE FROM agents WHERE uid = %s", (uid,)) > 0 or unwritten

    def count_agents_by_owner(self) -> dict[str, int]:
        self._settle()
        return {str(owner): int(n) for owner, n in self._all("SELECT owner, COUNT(*) FROM agents GROUP BY owner")}

    def delete_incomplete_agents(self, first_seen_before: float) -> list[AgentRecord]:
        self._settle()
        rows = self._all(
            "DELETE FROM agents WHERE NOT described AND first_seen < %s "
            "AND COALESCE(doc->'attributes', '{}'::jsonb) = '{}'::jsonb RETURNING doc",
            (first_seen_before,),
        )
        gone = [record(AgentRecord, doc) for (doc,) in rows]
        for agent in gone:
            self.forget_cached(agent.uid)
        return gone

    def reset_connections(self) -> int:
        """Agents marked connected to a server process that is gone (not connected to the database)."""
        self._settle()
        self.forget_cached()  # the statement changes records kept here
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
        if config_hash in self._configs:  # offered before: stored before
            return
        self._exec("INSERT INTO configs (hash, text) VALUES (%s, %s) ON CONFLICT DO NOTHING", (config_hash, text))
        self._configs.add(config_hash)

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
        self._settle()  # what the others are told about is in the database when they look
        self._exec("SELECT pg_notify(%s, %s)", (CHANNEL, f"{self.server_id} {topic} {key}"))

    def close(self) -> None:
        """Stop the writer and write what is pending (a stopping server loses no agent write)."""
        self._stop.set()
        self._wake.set()
        if self._writer is not None:
            self._writer.join(timeout=10)
        try:
            self.flush()
        except Exception as exc:
            log.error("PostgreSQL registry at %s: agent records not written at stop: %s", self.where, exc)
        for db in (self._writer_db, self._loader_db):
            if db is not None:
                db.close()
        self._db.close()
