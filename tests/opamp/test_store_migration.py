"""The store opens a registry written by the server before schema versions (version 0: the four tables
below, documents without the fields added since) and migrates it in place; the fleet then reads it as
it was: owners, failed configs, the fleet-wide baseline, connections reset."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from opentelemetry._opamp.proto import opamp_pb2 as pb

from otelstack.opamp.fleet import Fleet, FleetSettings
from otelstack.opamp.protocol import uid_text
from otelstack.opamp.store import SCHEMA_VERSION, SqliteStore, StoreError
from tests.opamp.conftest import CONFIGS
from tests.opamp.fleet_sim import Clock

# The schema and documents exactly as the server wrote them before this change.
VERSION_0 = """
CREATE TABLE IF NOT EXISTS agents (uid TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rollouts (id TEXT PRIMARY KEY, created REAL NOT NULL, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS configs (hash TEXT PRIMARY KEY, text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
PROD_UID = uid_text(b"\x01" * 16)
JUNK_UID = uid_text(b"\x02" * 16)
NOW = 1_800_000_000.0


def old_agent(uid: str, **fields: object) -> str:
    doc = {
        "uid": uid,
        "environment": "",
        "region": "",
        "profile": "",
        "namespace": "",
        "attributes": {},
        "version": "",
        "capabilities": 0,
        "sequence_num": 4,
        "healthy": None,
        "health": {},
        "effective_config_hash": "",
        "remote_status": "UNSET",
        "remote_hash": "",
        "remote_error": "",
        "last_good_hash": "",
        "failed_hash": "",
        "offered_hash": "",
        "offered_at": 0.0,
        "overrides": {},
        "packages": {},
        "available_components": {},
        "available_components_hash": "",
        "pending_command": "",
        "settings_offered": "",
        "connected": False,
        "first_seen": NOW - 3600,
        "last_seen": NOW - 60,
        **fields,
    }
    return json.dumps(doc, sort_keys=True)


def version_0_database(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.executescript(VERSION_0)
        db.execute(
            "INSERT INTO agents (uid, doc) VALUES (?, ?)",
            (
                PROD_UID,
                old_agent(
                    PROD_UID,
                    environment="prod",
                    region="us-east-1",
                    profile="agent-vm",
                    attributes={"deployment.environment.name": "prod", "cloud.region": "us-east-1"},
                    failed_hash="aa" * 32,
                    connected=True,
                    healthy=True,
                ),
            ),
        )
        db.execute("INSERT INTO agents (uid, doc) VALUES (?, ?)", (JUNK_UID, old_agent(JUNK_UID, environment="dev")))
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('baseline', ?)",
            (json.dumps({"configs_dir": str(CONFIGS), "variant": "emergency"}),),
        )
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 0


def test_a_version_0_registry_is_migrated_and_reads_as_before(tmp_path: Path) -> None:
    path = tmp_path / "fleet.db"
    version_0_database(path)
    store = SqliteStore(path)
    assert store.schema_version == SCHEMA_VERSION == 1
    columns = {row[1] for row in store._db.execute("PRAGMA table_info(agents)")}
    assert {"owner", "described", "first_seen"} <= columns
    rows = dict(store._db.execute("SELECT uid, owner || '/' || described || '/' || first_seen FROM agents"))
    assert rows == {PROD_UID: f"prod/1/{NOW - 3600}", JUNK_UID: f"dev/0/{NOW - 3600}"}
    assert store.count_agents_by_owner() == {"prod": 1, "dev": 1}

    clock = Clock()
    clock.now = NOW
    fleet = Fleet(store, FleetSettings(configs_dir=CONFIGS, incomplete_agent_ttl_s=600), clock=clock)
    assert fleet.rollouts.baseline() == {"configs_dir": str(CONFIGS), "variant": "emergency"}
    assert fleet.reset_connections() == 1
    agent = store.get_agent(PROD_UID)
    assert agent is not None and agent.connected is False
    assert fleet.failed_configs(agent) == {"aa" * 32: NOW - 60}
    # The record belongs to prod: dev's token cannot speak for it.
    reply = fleet.handle(pb.AgentToServer(instance_uid=b"\x01" * 16, sequence_num=5), token_environment="dev")
    assert "belongs to an agent of environment 'prod'" in reply.error_response.error_message
    # The record that never described itself expires.
    assert [a.uid for a in fleet.expire_incomplete()] == [JUNK_UID]
    store.close()

    again = SqliteStore(path)  # opening it again changes nothing
    assert again.schema_version == 1 and [a.uid for a in again.list_agents()] == [PROD_UID]
    again.close()


def test_rows_an_older_server_writes_after_the_migration_are_read_right(tmp_path: Path) -> None:
    """A server rolled back to the previous release writes documents only: the columns keep defaults, and
    the store does not mistake such a described agent for an incomplete one."""
    path = tmp_path / "fleet.db"
    SqliteStore(path).close()
    with sqlite3.connect(path) as db:
        described = old_agent(PROD_UID, environment="prod", attributes={"deployment.environment.name": "prod"})
        db.execute("INSERT INTO agents (uid, doc) VALUES (?, ?)", (PROD_UID, described))
    store = SqliteStore(path)
    assert store.delete_incomplete_agents(NOW + 10**6) == []
    assert [a.uid for a in store.list_agents()] == [PROD_UID]


def test_a_registry_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fleet.db"
    SqliteStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer than this server's"):
        SqliteStore(path)
