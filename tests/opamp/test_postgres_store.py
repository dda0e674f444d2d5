"""The PostgreSQL registry: the same behaviour as the SQLite one through the FleetStore interface, its
versioned schema (migrated once however many replicas start together, a newer one refused), what only
several writers need (one running rollout, a finished one stays finished, connections reset per replica),
and clear errors when the database cannot be reached or the settings put a password inline."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from otelstack.opamp import postgres
from otelstack.opamp.fleet import Fleet, FleetSettings
from otelstack.opamp.postgres import APPLICATION_PREFIX, PostgresStore
from otelstack.opamp.rollout import RolloutError
from otelstack.opamp.settings import PostgresSettings
from otelstack.opamp.store import AgentRecord, FleetStore, RolloutRecord, SqliteStore, StoreConflict, StoreError
from tests.opamp import pgcluster
from tests.opamp.conftest import CONFIGS, free_port, settings
from tests.opamp.fleet_sim import Clock, Sim


def pg_store(url: str, server_id: str = "replica-a") -> PostgresStore:
    return PostgresStore(
        f"{url}?password={pgcluster.PASSWORD}&application_name={APPLICATION_PREFIX}{server_id}", url, server_id
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FleetStore]:
    opened: FleetStore
    if request.param == "sqlite":
        opened = SqliteStore(tmp_path / "fleet.db")
    else:
        opened = pg_store(request.getfixturevalue("pg_url"))
    try:
        yield opened
    finally:
        opened.close()


def test_both_stores_keep_agents_rollouts_configs_and_meta_alike(store: FleetStore) -> None:
    described = AgentRecord(uid="a1", environment="prod", owner="prod", attributes={"x": "1"}, first_seen=100.0)
    bare = AgentRecord(uid="a2", owner="dev", first_seen=100.0)
    late = AgentRecord(uid="a3", owner="dev", first_seen=900.0)
    for agent in (described, bare, late):
        store.put_agent(agent)
    described.healthy = True
    store.put_agent(described)
    assert store.get_agent("a1") == described and store.get_agent("zz") is None
    assert set(store.get_agents(["a1", "a3", "zz"])) == {"a1", "a3"}
    assert [a.uid for a in store.list_agents()] == ["a1", "a2", "a3"]
    assert store.count_agents_by_owner() == {"prod": 1, "dev": 2}
    assert [a.uid for a in store.delete_incomplete_agents(500.0)] == ["a2"]
    assert store.delete_agent("a3") and not store.delete_agent("a3")

    rollout = RolloutRecord(
        id="r1", kind="config", selector={}, target={"variant": "normal"}, waves=[["a1"]], wave_timeout_s=9
    )
    store.put_rollout(rollout)
    assert store.get_rollout("r1") == rollout and store.list_rollouts() == [rollout]
    store.put_config("h", "text")
    store.put_config("h", "other")  # a hash names one text
    assert store.get_config("h") == "text" and store.get_config("nope") is None
    store.put_meta("k", "1")
    store.put_meta("k", "2")
    assert store.get_meta("k") == "2" and store.get_meta("nope") is None
    store.notify("agent", "a1")  # heard by nobody here; must not fail


def test_a_fresh_database_gets_the_current_schema_and_reopening_changes_nothing(pg_url: str) -> None:
    first = pg_store(pg_url)
    assert first.schema_version == postgres.SCHEMA_VERSION == 1
    first.put_agent(AgentRecord(uid="kept"))
    first.close()
    again = pg_store(pg_url)
    assert again.schema_version == 1 and [a.uid for a in again.list_agents()] == ["kept"]
    again.close()


def test_replicas_started_together_migrate_the_schema_once(pg_url: str) -> None:
    opened: list[PostgresStore] = []
    failures: list[BaseException] = []

    def start(n: int) -> None:
        try:
            opened.append(pg_store(pg_url, f"replica-{n}"))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=start, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and len(opened) == 4
    with psycopg_connection(pg_url) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
    for store in opened:
        store.close()


def test_a_database_of_a_newer_schema_is_refused(pg_url: str) -> None:
    pg_store(pg_url).close()
    with psycopg_connection(pg_url) as db:
        db.execute("UPDATE schema_version SET version = %s", (postgres.SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match="schema version 2 is newer than this server's"):
        pg_store(pg_url)


def test_one_rollout_runs_at_a_time_and_a_finished_one_stays_finished(pg_url: str) -> None:
    """Two replicas writing: a second running rollout is refused by the database, and a replica that had not
    yet heard a rollout was aborted cannot write it back to running."""
    a, b = pg_store(pg_url, "a"), pg_store(pg_url, "b")
    running = RolloutRecord(id="r1", kind="config", selector={}, target={}, waves=[["x"]], wave_timeout_s=9)
    a.put_rollout(running)
    with pytest.raises(StoreConflict, match="rollout r1 is still running"):
        b.put_rollout(RolloutRecord(id="r2", kind="config", selector={}, target={}, waves=[["x"]], wave_timeout_s=9))
    aborted = RolloutRecord(**{**vars(running), "state": "aborted"})
    b.put_rollout(aborted)
    a.put_rollout(RolloutRecord(**{**vars(running), "current_wave": 1}))  # a's stale view
    stored = a.get_rollout("r1")
    assert stored is not None and stored.state == "aborted" and stored.current_wave == 0


def test_starting_a_rollout_while_another_replica_runs_one_says_which(pg_url: str) -> None:
    a, b = pg_store(pg_url, "a"), pg_store(pg_url, "b")
    clock = Clock()
    fleet_a = Fleet(a, FleetSettings(configs_dir=CONFIGS, server_id="a"), clock=clock)
    fleet_b = Fleet(b, FleetSettings(configs_dir=CONFIGS, server_id="b"), clock=clock)
    Sim(fleet_a, 1).register()
    assert fleet_b.rollouts.running() is None
    first = fleet_a.rollouts.start("config", {}, {"variant": "emergency"})
    # b has not heard of it (no listener here): the database refuses the second one all the same.
    with pytest.raises(RolloutError, match=f"rollout {first.id} is still running"):
        fleet_b.rollouts.start("config", {}, {"variant": "normal"})


def test_connections_are_reset_only_for_replicas_that_are_gone(pg_url: str) -> None:
    alive, gone = pg_store(pg_url, "alive"), pg_store(pg_url, "gone")
    alive.put_agent(AgentRecord(uid="on-alive", connected=True, server="alive"))
    alive.put_agent(AgentRecord(uid="on-gone", connected=True, server="gone"))
    assert alive.reset_connections() == 0  # both replicas hold their connections
    gone.close()
    assert alive.reset_connections() == 1
    assert {a.uid: a.connected for a in alive.list_agents()} == {"on-alive": True, "on-gone": False}


def test_a_lost_connection_is_opened_again(pg_url: str, pg: pgcluster.PgCluster) -> None:
    store = pg_store(pg_url, "reconnecting")
    with pg.connect() as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (APPLICATION_PREFIX + "reconnecting",),
        )
    store.put_agent(AgentRecord(uid="after"))
    assert store.get_agent("after") is not None


def test_an_unreachable_database_is_named_without_a_traceback_or_the_password(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://opamp@127.0.0.1:{port}/fleet"
    checked = settings(tmp_path, free_port(), postgresql=url).model_dump(mode="json", exclude_unset=True)
    checked["postgresql"]["connect_timeout_s"] = 2
    settings_file = tmp_path / "server.yaml"
    settings_file.write_text(yaml.safe_dump(checked))
    done = subprocess.run(
        [sys.executable, "-m", "otelstack.cli", "opamp", "serve", "--settings", str(settings_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert f"PostgreSQL registry at 127.0.0.1:{port}/fleet is unreachable" in done.stderr
    assert "Traceback" not in done.stderr and pgcluster.PASSWORD not in done.stderr


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://opamp:secret@db/fleet", "give no password in the URL"),
        ("postgresql://opamp@db/fleet?sslmode=require&password=secret", "give no password in the URL"),
        ("mysql://opamp@db/fleet", "is not a postgresql:// URL"),
        ("postgresql://opamp@db", "names no database"),
    ],
)
def test_settings_refuse_an_inline_password_and_urls_that_are_not_postgresql(url: str, expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        PostgresSettings.model_validate({"url": url})


def test_settings_name_one_registry(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="give one registry, not both"):
        settings(tmp_path, 1, postgresql="postgresql://opamp@db/fleet", database=str(tmp_path / "fleet.db"))


def psycopg_connection(url: str):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(url, password=pgcluster.PASSWORD, autocommit=True)
