"""The fleet registry's storage: a small interface, and its SQLite implementation (the default).

Records are dataclasses stored as JSON documents keyed by id, so another implementation (PostgreSQL
with JSONB, for a highly available pair of servers) fills the same five methods per record kind.
SQLite runs in WAL mode with synchronous=NORMAL: a committed write survives `kill -9` of the server; a
power loss can lose the last writes before a checkpoint, which agents restore by reporting their full
state (the server asks for it after a sequence gap or from an unknown agent).
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar


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
    # The last config the agent applied and ran healthy with, and one it failed (never re-offered).
    last_good_hash: str = ""
    failed_hash: str = ""
    offered_hash: str = ""
    offered_at: float = 0.0
    overrides: dict[str, Any] = field(default_factory=dict)
    packages: dict[str, Any] = field(default_factory=dict)
    # The components the agent's build has (kind -> type -> metadata), for the hash it last reported.
    available_components: dict[str, Any] = field(default_factory=dict)
    available_components_hash: str = ""
    pending_command: str = ""
    settings_offered: str = ""
    connected: bool = False
    first_seen: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.time)


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


R = TypeVar("R", AgentRecord, RolloutRecord)


class FleetStore(Protocol):
    def get_agent(self, uid: str) -> AgentRecord | None: ...
    def put_agent(self, agent: AgentRecord) -> None: ...
    def list_agents(self) -> list[AgentRecord]: ...
    def get_rollout(self, rollout_id: str) -> RolloutRecord | None: ...
    def put_rollout(self, rollout: RolloutRecord) -> None: ...
    def list_rollouts(self) -> list[RolloutRecord]: ...
    def put_config(self, config_hash: str, text: str) -> None: ...
    def get_config(self, config_hash: str) -> str | None: ...
    def get_meta(self, key: str) -> str | None: ...
    def put_meta(self, key: str, value: str) -> None: ...
    def close(self) -> None: ...


def record(kind: type[R], doc: str) -> R:
    """A stored document as its record: fields added since it was written take their defaults, and fields
    it has that this version does not know (written by a newer server) are ignored, so the registry
    survives upgrades and a rollback of the server."""
    known = {f.name for f in dataclasses.fields(kind)}
    return kind(**{k: v for k, v in json.loads(doc).items() if k in known})


SCHEMA = """
CREATE TABLE IF NOT EXISTS agents (uid TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rollouts (id TEXT PRIMARY KEY, created REAL NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS configs (hash TEXT PRIMARY KEY, text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class SqliteStore:
    """FleetStore in one SQLite file (or ':memory:')."""

    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def _doc(self, table: str, key: str, value: str) -> str | None:
        row = self._db.execute(f"SELECT doc FROM {table} WHERE {key} = ?", (value,)).fetchone()
        return None if row is None else str(row[0])

    def get_agent(self, uid: str) -> AgentRecord | None:
        doc = self._doc("agents", "uid", uid)
        return None if doc is None else record(AgentRecord, doc)

    def put_agent(self, agent: AgentRecord) -> None:
        self._db.execute(
            "INSERT INTO agents (uid, doc) VALUES (?, ?) ON CONFLICT(uid) DO UPDATE SET doc = excluded.doc",
            (agent.uid, json.dumps(dataclasses.asdict(agent), sort_keys=True)),
        )

    def list_agents(self) -> list[AgentRecord]:
        return [record(AgentRecord, doc) for (doc,) in self._db.execute("SELECT doc FROM agents ORDER BY uid")]

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

    def close(self) -> None:
        self._db.close()
