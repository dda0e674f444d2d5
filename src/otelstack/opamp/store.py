"""The fleet registry's storage: a small interface, and its SQLite implementation (the default).

Records are dataclasses stored as JSON documents keyed by id, so another implementation (PostgreSQL
with JSONB, for a highly available pair of servers) fills the same methods per record kind. Next to
its document, an agent row keeps the few fields the server queries in bulk (the environment that owns
it, whether it ever described itself, when it was first seen). SQLite runs in WAL mode with
synchronous=NORMAL: a committed write survives `kill -9` of the server; a power loss can lose the last
writes before a checkpoint, which agents restore by reporting their full state (the server asks for it
after a sequence gap or from an unknown agent).

The schema is versioned (``PRAGMA user_version``); opening a database written by an older server
migrates it in one transaction (``MIGRATIONS``).

Several servers can share one registry only in PostgreSQL (``otelstack.opamp.postgres``): a store says
so with ``shared``, and ``notify`` tells the other servers about a decision taken here (a rollout's
state, the baselines, one agent's pending command or overrides); SQLite is one server's alone.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from otelstack.errors import OtelstackError

if TYPE_CHECKING:
    from otelstack.opamp.settings import ServerSettings


@dataclass
class AgentRecord:
    uid: str
    environment: str = ""
    region: str = ""
    profile: str = ""
    namespace: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    version: str = ""
    capabilities: int = 0
    sequence_num: int = -1
    healthy: bool | None = None
    health: dict[str, Any] = field(default_factory=dict)
    effective_config_hash: str = ""
    # What the agent last said about remote config: UNSET, APPLYING, APPLIED or FAILED, for a hash.
    remote_status: str = "UNSET"
    remote_hash: str = ""
    remote_error: str = ""
    # The last config the agent applied and ran healthy with, and the last one it failed.
    last_good_hash: str = ""
    failed_hash: str = ""
    # Every config it failed (hash -> when it last failed), bounded and expiring (FleetSettings); none of
    # them is offered to it again while remembered.
    failed_hashes: dict[str, float] = field(default_factory=dict)
    offered_hash: str = ""
    offered_at: float = 0.0
    overrides: dict[str, Any] = field(default_factory=dict)
    packages: dict[str, Any] = field(default_factory=dict)
    # The components the agent's build has (kind -> type -> metadata), for the hash it last reported.
    available_components: dict[str, Any] = field(default_factory=dict)
    available_components_hash: str = ""
    pending_command: str = ""
    settings_offered: str = ""
    # The environment whose token created the record; only that environment's token may speak for it.
    # Empty in records written before it existed: their environment is their owner.
    owner: str = ""
    # How the agent last spoke: "websocket" or "http" (empty: not known).
    transport: str = ""
    # WebSocket: the agent holds a connection to this server process. HTTP: it has not said goodbye
    # (agent_disconnect); whether it still polls comes from last_seen.
    connected: bool = False
    # The server process (replica id) it last spoke to, where its WebSocket is; "" with one server.
    server: str = ""
    first_seen: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        # Records written before failed_hashes existed remember their one failed config there.
        if self.failed_hash and self.failed_hash not in self.failed_hashes:
            self.failed_hashes[self.failed_hash] = self.last_seen


@dataclass
class RolloutRecord:
    id: str
    kind: str  # "config" (a configs/ revision) or "package" (a collector release)
    selector: dict[str, str]
    target: dict[str, Any]  # config: {"configs_dir", "variant"}; package: {"name", "version", "url", "sha256"}
    waves: list[list[str]]  # agent uids per wave; wave 0 is the canary
    wave_timeout_s: float
    state: str = "running"  # running, succeeded, failed, aborted
    current_wave: int = 0
    wave_started_at: float = field(default_factory=time.time)
    reason: str = ""
    created_at: float = field(default_factory=time.time)
    finished_at: float = 0.0
    # Per agent: the hash (config) or version (package) it must run once its wave is released.
    expected: dict[str, str] = field(default_factory=dict)
    # The share of its agents that had applied it (healthy) when it finished, recorded then: afterwards
    # a failed or aborted rollout's agents go back to their baseline, which must not change its record.
    # None while running (and in rollouts finished by a server before it was recorded).
    final_progress: float | None = None


R = TypeVar("R", AgentRecord, RolloutRecord)

# The fields of an agent's record a rollout's selector and each agent's config are computed from
# (``FleetStore.list_selectable``).
SELECTION_FIELDS = ("uid", "environment", "region", "profile", "namespace", "attributes", "overrides")
# The fields of an agent's record a rollout decides on (``FleetStore.rollout_states``).
ROLLOUT_FIELDS = ("uid", "remote_hash", "remote_status", "remote_error", "healthy", "failed_hashes", "packages")


class FleetStore(Protocol):
    # Whether other server processes share this registry (their decisions arrive through notifications).
    shared: bool

    def get_agent(self, uid: str) -> AgentRecord | None: ...
    def get_agents(self, uids: list[str]) -> dict[str, AgentRecord]:
        """The records of those agents that have one (one query, for a rollout wave)."""
        ...

    def rollout_states(self, uids: list[str], packages: bool = False) -> dict[str, AgentRecord]:
        """The records of those agents that have one, of which only ``ROLLOUT_FIELDS`` are to be read (a
        store may leave the others at their defaults; ``packages``: the packages too): what a rollout's
        wave decision needs, for every agent of the wave, every evaluation."""
        ...

    def count_applied(self, expected: dict[str, str]) -> int:
        """How many of the agents (uid -> config hash) run that config healthy: reported it APPLIED, not
        unhealthy, and it is not among the configs they failed (a config rollout's progress)."""
        ...

    def put_agent(self, agent: AgentRecord) -> None: ...
    def list_selectable(self) -> list[AgentRecord]:
        """Every agent's record, by uid, of which only ``SELECTION_FIELDS`` are to be read (a store may leave
        the others at their defaults): what starting a rollout needs of the whole registry (its selector,
        and the config each selected agent will render)."""
        ...

    def list_agents(self) -> list[AgentRecord]: ...
    def delete_agent(self, uid: str) -> bool:
        """Delete one agent's record; False when there is none."""
        ...

    def count_agents_by_owner(self) -> dict[str, int]:
        """Agent records per owning environment (the token that created them)."""
        ...

    def delete_incomplete_agents(self, first_seen_before: float) -> list[AgentRecord]:
        """Delete the records first seen before that time that never described themselves (no
        attributes); return them."""
        ...

    def reset_connections(self) -> int:
        """Mark every agent not connected (at start: no agent holds a connection to a new process);
        return how many were marked connected."""
        ...

    def get_rollout(self, rollout_id: str) -> RolloutRecord | None: ...
    def put_rollout(self, rollout: RolloutRecord) -> None: ...
    def list_rollouts(self) -> list[RolloutRecord]: ...
    def put_config(self, config_hash: str, text: str) -> None: ...
    def get_config(self, config_hash: str) -> str | None: ...
    def get_meta(self, key: str) -> str | None: ...
    def put_meta(self, key: str, value: str) -> None: ...
    def notify(self, topic: str, key: str = "") -> None:
        """Tell the other servers sharing the registry that ``topic`` (rollout, baselines, agent) changed
        for ``key``; nothing when the registry is not shared."""
        ...

    def forget_cached(self, uid: str = "") -> None:
        """A store that keeps agent records in memory (PostgreSQL, batched) drops its copy of ``uid``'s
        ("": of every agent's), which another server may have changed: the next read goes to the registry."""
        ...

    def load(self, uid: str) -> None:
        """Read an agent's record from the registry afresh into memory (a store that keeps records there),
        so that the next ``get_agent`` of it waits for nothing; safe to call from a worker thread. The
        server calls it off the event loop before the first message of a connection."""
        ...

    def refresh_agent(self, uid: str, fields: tuple[str, ...]) -> None:
        """Another server changed ``fields`` of this agent's record (an operator's restart or overrides) or
        deleted it, and said so: a store that writes agent records behind takes those fields from the
        registry into the write it has pending, so that write does not undo the change (or drops it, the
        record being gone), and drops its copy."""
        ...

    def close(self) -> None: ...


_FIELDS: dict[type, frozenset[str]] = {}  # the field names of each record kind (record(), per message)


def record(kind: type[R], doc: str | dict[str, Any]) -> R:
    """A stored document as its record: fields added since it was written take their defaults, and fields
    it has that this version does not know (written by a newer server) are ignored, so the registry
    survives upgrades and a rollback of the server."""
    known = _FIELDS.get(kind)
    if known is None:
        known = _FIELDS[kind] = frozenset(f.name for f in dataclasses.fields(kind))
    data = json.loads(doc) if isinstance(doc, str) else doc
    return kind(**{k: v for k, v in data.items() if k in known})


def runs_applied(agent: AgentRecord, config_hash: str) -> bool:
    """Whether an agent runs that config healthy (``FleetStore.count_applied``; a config rollout's "ok")."""
    return (
        agent.remote_hash == config_hash
        and agent.remote_status == "APPLIED"
        and agent.healthy is not False
        and config_hash not in agent.failed_hashes
    )


# Version 0: the tables as the first server wrote them (a database of any version is brought up to
# SCHEMA_VERSION by running the MIGRATIONS after its own version in order).
SCHEMA = """
CREATE TABLE IF NOT EXISTS agents (uid TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rollouts (id TEXT PRIMARY KEY, created REAL NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS configs (hash TEXT PRIMARY KEY, text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _agent_columns(doc: dict[str, Any]) -> tuple[str, int, float]:
    """owner, described, first_seen of an agent document (the columns next to it)."""
    owner = str(doc.get("owner") or doc.get("environment") or "")
    return owner, int(bool(doc.get("attributes"))), float(doc.get("first_seen") or 0.0)


def _migrate_1(db: sqlite3.Connection) -> None:
    """Agents: the owning environment (per-token cap), whether the agent described itself and when it
    was first seen (expiry of records never completed), filled from the documents."""
    columns = {str(row[1]) for row in db.execute("PRAGMA table_info(agents)")}
    for name, declaration in (
        ("owner", "TEXT NOT NULL DEFAULT ''"),
        ("described", "INTEGER NOT NULL DEFAULT 0"),
        ("first_seen", "REAL NOT NULL DEFAULT 0"),
    ):
        if name not in columns:
            db.execute(f"ALTER TABLE agents ADD COLUMN {name} {declaration}")
    rows = db.execute("SELECT uid, doc FROM agents").fetchall()
    for uid, doc in rows:
        try:
            data = json.loads(doc)
        except ValueError:
            continue
        if isinstance(data, dict):
            db.execute(
                "UPDATE agents SET owner = ?, described = ?, first_seen = ? WHERE uid = ?",
                (*_agent_columns(data), uid),
            )
    # Only the few records never completed are indexed: a heartbeat's write maintains no index. (Counting
    # records per owner scans the table, at start only.)
    db.execute("CREATE INDEX IF NOT EXISTS agents_incomplete ON agents (first_seen) WHERE described = 0")


MIGRATIONS = (_migrate_1,)
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(OtelstackError):
    """The registry cannot be opened (written by a newer server whose schema this one does not know, or
    its database is unreachable)."""


class StoreConflict(StoreError):
    """A write another server's decision already made impossible (a second running rollout)."""


class SqliteStore:
    """FleetStore in one SQLite file (or ':memory:')."""

    shared = False

    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        try:
            self._migrate(str(path))
        except BaseException:
            self._db.close()
            raise

    def _migrate(self, where: str) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{where}: registry schema version {version} is newer than this server's ({SCHEMA_VERSION}); "
                    "run the server release that wrote it, or a newer one"
                )
            for statement in SCHEMA.strip().splitlines():
                self._db.execute(statement)
            for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                migration(self._db)
                self._db.execute(f"PRAGMA user_version = {number}")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _doc(self, table: str, key: str, value: str) -> str | None:
        row = self._db.execute(f"SELECT doc FROM {table} WHERE {key} = ?", (value,)).fetchone()
        return None if row is None else str(row[0])

    def get_agent(self, uid: str) -> AgentRecord | None:
        doc = self._doc("agents", "uid", uid)
        return None if doc is None else record(AgentRecord, doc)

    def put_agent(self, agent: AgentRecord) -> None:
        # The fields are JSON values already: no deep copy (dataclasses.asdict) on the heartbeat path.
        doc = vars(agent)
        self._db.execute(
            "INSERT INTO agents (uid, doc, owner, described, first_seen) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(uid) DO UPDATE SET doc = excluded.doc, owner = excluded.owner, "
            "described = excluded.described, first_seen = excluded.first_seen",
            (agent.uid, json.dumps(doc, sort_keys=True), *_agent_columns(doc)),
        )

    def get_agents(self, uids: list[str]) -> dict[str, AgentRecord]:
        found = (self.get_agent(uid) for uid in uids)  # a local lookup each: no round trip to save
        return {agent.uid: agent for agent in found if agent is not None}

    def rollout_states(self, uids: list[str], packages: bool = False) -> dict[str, AgentRecord]:
        return self.get_agents(uids)  # local reads: whole records cost little more

    def list_selectable(self) -> list[AgentRecord]:
        return self.list_agents()

    def count_applied(self, expected: dict[str, str]) -> int:
        found = self.get_agents(list(expected))
        return sum(1 for uid, agent in found.items() if runs_applied(agent, expected[uid]))

    def list_agents(self) -> list[AgentRecord]:
        return [record(AgentRecord, doc) for (doc,) in self._db.execute("SELECT doc FROM agents ORDER BY uid")]

    def delete_agent(self, uid: str) -> bool:
        return self._db.execute("DELETE FROM agents WHERE uid = ?", (uid,)).rowcount > 0

    def count_agents_by_owner(self) -> dict[str, int]:
        rows = self._db.execute("SELECT owner, COUNT(*) FROM agents GROUP BY owner")
        return {str(owner): int(count) for owner, count in rows}

    def delete_incomplete_agents(self, first_seen_before: float) -> list[AgentRecord]:
        rows = self._db.execute(
            "SELECT doc FROM agents WHERE described = 0 AND first_seen < ?", (first_seen_before,)
        ).fetchall()
        # The columns are only a pre-selection: a row an older server updated keeps stale ones.
        gone = [agent for (doc,) in rows if not (agent := record(AgentRecord, doc)).attributes]
        if gone:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("DELETE FROM agents WHERE uid = ?", [(agent.uid,) for agent in gone])
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return gone

    def reset_connections(self) -> int:
        try:  # pre-select in SQL: a large registry has few agents to reset
            rows = self._db.execute("SELECT doc FROM agents WHERE json_extract(doc, '$.connected') = 1").fetchall()
            connected = [record(AgentRecord, doc) for (doc,) in rows]
        except sqlite3.OperationalError:  # an SQLite without JSON functions
            connected = [agent for agent in self.list_agents() if agent.connected]
        if connected:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for agent in connected:
                    agent.connected = False
                    self.put_agent(agent)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return len(connected)

    def get_rollout(self, rollout_id: str) -> RolloutRecord | None:
        doc = self._doc("rollouts", "id", rollout_id)
        return None if doc is None else record(RolloutRecord, doc)

    def put_rollout(self, rollout: RolloutRecord) -> None:
        self._db.execute(
            "INSERT INTO rollouts (id, created, doc) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET doc = excluded.doc",
            (rollout.id, rollout.created_at, json.dumps(dataclasses.asdict(rollout), sort_keys=True)),
        )

    def list_rollouts(self) -> list[RolloutRecord]:
        rows = self._db.execute("SELECT doc FROM rollouts ORDER BY created")
        return [record(RolloutRecord, doc) for (doc,) in rows]

    def put_config(self, config_hash: str, text: str) -> None:
        self._db.execute("INSERT OR IGNORE INTO configs (hash, text) VALUES (?, ?)", (config_hash, text))

    def get_config(self, config_hash: str) -> str | None:
        row = self._db.execute("SELECT text FROM configs WHERE hash = ?", (config_hash,)).fetchone()
        return None if row is None else str(row[0])

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def put_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def notify(self, topic: str, key: str = "") -> None:
        """One server per SQLite registry: nobody else to tell."""

    def forget_cached(self, uid: str = "") -> None:
        """Every read is the file's: nothing kept apart."""

    def load(self, uid: str) -> None:
        """Every read is the file's, and local: nothing to read ahead."""

    def refresh_agent(self, uid: str, fields: tuple[str, ...]) -> None:
        """Every write is the file's at once: nothing pending."""

    def close(self) -> None:
        self._db.close()


def new_server_id() -> str:
    """A server process among replicas: host name, pid and a random suffix (fits PostgreSQL's
    application_name with its prefix)."""
    return f"{socket.gethostname()[:24]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def open_store(settings: ServerSettings, server_id: str = "") -> FleetStore:
    """The registry the settings name: the SQLite file, or PostgreSQL shared by replicas."""
    if settings.postgresql is None:
        return SqliteStore(settings.database)
    try:
        from otelstack.opamp.postgres import APPLICATION_PREFIX, PostgresStore
    except ImportError as exc:
        raise StoreError(
            f"postgresql: the PostgreSQL registry needs the psycopg package ({exc}); "
            "install otelstack with the postgresql extra: pip install 'otelstack[postgresql]'"
        ) from exc
    pg = settings.postgresql
    return PostgresStore(pg.conninfo(APPLICATION_PREFIX + server_id), pg.where, server_id, batched=True)
