"""The PostgreSQL registry: the same behaviour as the SQLite one through the FleetStore interface, its
versioned schema (migrated once however many replicas start together, a newer one refused), what only
several writers need (one running rollout, a finished one stays finished, connections reset per replica),
and clear errors when the database cannot be reached or the settings put a password inline."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from otelstack.opamp import postgres
from otelstack.opamp.fleet import OPERATOR_FIELDS, Fleet, FleetSettings
from otelstack.opamp.postgres import APPLICATION_PREFIX, PostgresStore
from otelstack.opamp.rollout import RolloutError
from otelstack.opamp.settings import PostgresSettings
from otelstack.opamp.store import (
    ROLLOUT_FIELDS,
    SELECTION_FIELDS,
    AgentRecord,
    FleetStore,
    RolloutRecord,
    SqliteStore,
    StoreConflict,
    StoreError,
)
from tests.opamp import pgcluster
from tests.opamp.conftest import CONFIGS, free_port, settings
from tests.opamp.fleet_sim import Clock, Sim


def pg_store(url: str, server_id: str = "replica-a", *, batched: bool = False, flush_s: float = 0.1) -> PostgresStore:
    return PostgresStore(
        f"{url}?password={pgcluster.PASSWORD}&application_name={APPLICATION_PREFIX}{server_id}",
        url,
        server_id,
        batched=batched,
        flush_s=flush_s,
    )


@pytest.fixture(params=["sqlite", "postgresql", "postgresql-batched"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FleetStore]:
    opened: FleetStore
    if request.param == "sqlite":
        opened = SqliteStore(tmp_path / "fleet.db")
    else:
        opened = pg_store(request.getfixturevalue("pg_url"), batched=request.param.endswith("batched"))
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
    assert first.schema_version == postgres.SCHEMA_VERSION == 2
    first.put_agent(AgentRecord(uid="kept"))
    first.close()
    again = pg_store(pg_url)
    assert again.schema_version == 2 and [a.uid for a in again.list_agents()] == ["kept"]
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
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(postgres.SCHEMA_VERSION,)]
    for store in opened:
        store.close()


def test_a_database_of_a_newer_schema_is_refused(pg_url: str) -> None:
    pg_store(pg_url).close()
    with psycopg_connection(pg_url) as db:
        db.execute("UPDATE schema_version SET version = %s", (postgres.SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match=f"schema version {postgres.SCHEMA_VERSION + 1} is newer than this server's"):
        pg_store(pg_url)


ROLLOUT_CASES = [
    AgentRecord(uid="applied", remote_hash="h1", remote_status="APPLIED", healthy=True, attributes={"x": "1"}),
    AgentRecord(uid="unhealthy", remote_hash="h1", remote_status="APPLIED", healthy=False),
    AgentRecord(uid="failed", remote_hash="h1", remote_status="FAILED", remote_error="bad", failed_hashes={"h1": 5.0}),
    AgentRecord(uid="failed-before", remote_hash="h0", remote_status="APPLIED", failed_hashes={"h1": 5.0}),
    AgentRecord(uid="new", health={"status": "x" * 5000}),  # a large document (stored out of line)
    AgentRecord(uid="package", packages={"otelcol": {"version": "1", "status": "Installed", "error": ""}}),
]


def _decided(agent: AgentRecord | None) -> tuple[Any, ...] | None:
    return None if agent is None else tuple(getattr(agent, name) for name in ROLLOUT_FIELDS)


def test_a_rollouts_read_of_its_agents_carries_every_field_it_decides_on(store: FleetStore) -> None:
    """The narrow read the driving replica makes of a wave every evaluation gives what a whole record gives
    for every field a rollout decides on (config and package rollouts), and nothing for unknown agents."""
    for agent in ROLLOUT_CASES:
        store.put_agent(AgentRecord(uid=agent.uid, last_seen=0.0))  # written, then changed (pending if batched)
        store.put_agent(agent)
    uids = [a.uid for a in ROLLOUT_CASES] + ["unknown"]
    for _ in ("pending or cached here", "from the database"):
        states = store.rollout_states(uids, packages=True)
        assert set(states) == set(uids) - {"unknown"}
        assert {uid: _decided(states[uid]) for uid in states} == {a.uid: _decided(a) for a in ROLLOUT_CASES}
        if isinstance(store, PostgresStore):
            store.flush()  # then read from the database's columns
            store.forget_cached()
    # A config rollout's progress, counted by the store: only "applied" runs h1 healthy ("failed-before"
    # runs h0; "unhealthy" reports unhealthy; "failed" failed it), and "failed-before" is not counted for
    # h0 either once h0 is among its failures.
    assert store.count_applied({uid: "h1" for uid in uids}) == 1
    assert store.count_applied({"failed-before": "h0", "applied": "h0", "unknown": "h0"}) == 1
    changed = AgentRecord(**{**vars(ROLLOUT_CASES[3]), "failed_hashes": {"h0": 6.0}, "last_seen": 9e9})
    store.put_agent(changed)
    assert store.count_applied({"failed-before": "h0"}) == 0


def test_the_listing_a_rollout_selects_from_carries_every_field_a_selection_and_a_config_need(
    store: FleetStore,
) -> None:
    agents = [
        AgentRecord(uid="b", environment="prod", region="eu", profile="gateway", namespace="ns", overrides={"k": 1}),
        AgentRecord(uid="a", environment="dev", attributes={"bench.rollout": "yes", "host.name": "h"}, health={"x": 1}),
        AgentRecord(uid="c", last_seen=0.0),
    ]
    for agent in agents:
        store.put_agent(agent)
    agents[2].attributes = {"late": "1"}  # a change still pending in a batched store
    store.put_agent(agents[2])

    def selected(agent: AgentRecord) -> tuple[Any, ...]:
        return tuple(getattr(agent, name) for name in SELECTION_FIELDS)

    assert [selected(a) for a in store.list_selectable()] == [selected(a) for a in sorted(agents, key=lambda a: a.uid)]


def test_the_columns_a_rollout_reads_follow_every_write_of_the_document(pg_url: str) -> None:
    """The database computes them from the document: a write that names no column (a replica of schema
    version 1 during an upgrade, a bulk statement) keeps them right, and a version 1 database is migrated
    with them filled from its documents."""
    store = pg_store(pg_url, "a")
    store.put_agent(AgentRecord(uid="x", remote_hash="h1", remote_status="APPLYING"))
    with psycopg_connection(pg_url) as db:
        db.execute("""UPDATE agents SET doc = doc || '{"remote_status": "APPLIED", "healthy": false}'::jsonb""")
    assert _decided(store.rollout_states(["x"])["x"]) == _decided(
        AgentRecord(uid="x", remote_hash="h1", remote_status="APPLIED", healthy=False)
    )
    store.close()

    with psycopg_connection(pg_url) as db:  # a database as version 1 left it
        db.execute("DROP TABLE agents, rollouts, configs, meta, schema_version")
        db.execute(postgres.MIGRATIONS[0].encode())
        db.execute("CREATE TABLE schema_version (version integer NOT NULL)")
        db.execute("INSERT INTO schema_version VALUES (1)")
        db.execute(
            "INSERT INTO agents (uid, doc) VALUES ('old', %s::jsonb)",
            (
                '{"uid": "old", "remote_hash": "h2", "remote_status": "FAILED", "remote_error": "no", '
                '"failed_hashes": {"h2": 1.0}, "healthy": true}',
            ),
        )
    migrated = pg_store(pg_url, "b")
    assert migrated.schema_version == 2
    assert _decided(migrated.rollout_states(["old"])["old"]) == _decided(
        AgentRecord(
            uid="old",
            remote_hash="h2",
            remote_status="FAILED",
            remote_error="no",
            failed_hashes={"h2": 1.0},
            healthy=True,
        )
    )
    migrated.close()


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
    # PostgreSQL ends the closed session's backend asynchronously: it leaves pg_stat_activity shortly after
    deadline = time.monotonic() + 10
    while (reset := alive.reset_connections()) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert reset == 1
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


def test_a_batched_store_writes_agents_behind_in_batches_and_never_over_a_newer_record(pg_url: str) -> None:
    """A server's store: a new record is in the database at once, later writes of it by the writer thread
    (or at flush/close), read back here meanwhile; a batch does not overwrite what another replica wrote since
    (a later last_seen); a copy kept here is read until the fleet drops it."""
    a, b = pg_store(pg_url, "a", batched=True, flush_s=0), pg_store(pg_url, "b")  # a: flushed by the test
    agent = AgentRecord(uid="x", owner="dev", last_seen=100.0)
    a.put_agent(agent)
    assert b.get_agent("x") == agent  # new: written before the answer
    agent.healthy, agent.last_seen = True, 110.0
    a.put_agent(agent)
    seen = b.get_agent("x")
    assert seen is not None and seen.healthy is None  # pending
    assert a.get_agent("x") == agent and a.get_agents(["x"]) == {"x": agent}
    a.flush()
    assert b.get_agent("x") == agent

    moved = AgentRecord(**{**vars(agent), "server": "b", "last_seen": 120.0})
    b.put_agent(moved)  # the agent spoke to b since
    a.put_agent(AgentRecord(**{**vars(agent), "connected": False}))  # a's stale view, last_seen 110
    a.flush()
    assert b.get_agent("x") == moved
    assert a.get_agent("x") != moved  # a's copy, until the fleet drops it
    a.forget_cached("x")
    assert a.get_agent("x") == moved

    later = AgentRecord(**{**vars(moved), "server": "a", "last_seen": 130.0})
    a.put_agent(later)
    assert a.count_agents_by_owner() == {"dev": 1} and b.get_agent("x") == later  # bulk reads write first
    a.put_agent(AgentRecord(**{**vars(later), "last_seen": 140.0}))
    a.close()  # a stopping server writes what is pending
    stored = b.get_agent("x")
    assert stored is not None and stored.last_seen == 140.0
    b.close()


def test_a_record_kept_in_memory_is_handed_out_as_a_copy(pg_url: str) -> None:
    """A batched store keeps the records of its agents as objects: what a caller changes in a record it read
    (a failed config remembered in place, say) is the store's only once it puts the record back."""
    store = pg_store(pg_url, "a", batched=True, flush_s=0)
    store.put_agent(AgentRecord(uid="x", failed_hashes={"h1": 1.0}, attributes={"k": "v"}))
    for _ in ("new", "pending"):
        read = store.get_agent("x")
        assert read is not None
        read.failed_hashes["h2"] = 2.0
        read.attributes["k"] = "changed"
        read.healthy = False
        again = store.get_agent("x")
        assert again is not None and (again.failed_hashes, again.attributes, again.healthy) == (
            {"h1": 1.0},
            {"k": "v"},
            None,
        )
        store.put_agent(again)  # now pending
    put = store.get_agent("x")
    assert put is not None
    put.failed_hashes["h3"] = 3.0
    store.put_agent(put)
    put.failed_hashes["h4"] = 4.0  # after the put: not the store's
    kept = store.get_agent("x")
    assert kept is not None and kept.failed_hashes == {"h1": 1.0, "h3": 3.0}
    store.close()


def test_a_record_read_ahead_is_answered_from_memory_record_or_none(pg_url: str) -> None:
    """``load`` (the server calls it off the event loop before a connection's first message) reads a record
    afresh, dropping an older copy, and remembers an agent without one; the read that follows asks nothing
    of the database, until the copy is forgotten or the agent's record is written here."""
    a, b = pg_store(pg_url, "a", batched=True, flush_s=0), pg_store(pg_url, "b")
    a.load("new")
    b.put_agent(AgentRecord(uid="new", last_seen=1.0))  # by another replica, after the read
    assert a.get_agent("new") is None  # from memory: no second read for a new agent's first message
    a.forget_cached("new")
    assert a.get_agent("new") is not None

    a.load("new2")
    a.put_agent(AgentRecord(uid="new2", owner="dev"))  # its first message: written at once
    assert b.get_agent("new2") is not None and a.get_agent("new2") is not None

    a.put_agent(AgentRecord(uid="moved", server="a", last_seen=1.0))
    b.put_agent(AgentRecord(uid="moved", server="b", last_seen=2.0))  # it spoke to b since
    a.load("moved")
    moved = a.get_agent("moved")
    assert moved is not None and moved.server == "b"

    a.put_agent(AgentRecord(uid="moved", server="a", last_seen=3.0))  # pending here: newer than the database
    a.load("moved")
    pending = a.get_agent("moved")
    assert pending is not None and pending.last_seen == 3.0
    a.close()
    b.close()


def test_a_batched_store_writes_again_on_a_new_connection(pg_url: str, pg: pgcluster.PgCluster) -> None:
    store = pg_store(pg_url, "writer", batched=True, flush_s=0)
    store.put_agent(AgentRecord(uid="y", last_seen=1.0))
    store.put_agent(AgentRecord(uid="y", last_seen=2.0))
    store.flush()
    with pg.connect() as admin:  # the writer's connection dies: the batch is written on a new one
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (APPLICATION_PREFIX + "writer",),
        )
    store.put_agent(AgentRecord(uid="y", last_seen=3.0))
    store.flush()
    check = pg_store(pg_url, "check")
    found = check.get_agent("y")
    assert found is not None and found.last_seen == 3.0
    store.close()
    check.close()


def test_an_operators_change_announced_by_another_replica_survives_the_pending_write(pg_url: str) -> None:
    a, b = pg_store(pg_url, "a", batched=True, flush_s=0), pg_store(pg_url, "b")
    for uid in ("x", "gone"):
        a.put_agent(AgentRecord(uid=uid, server="a", last_seen=1.0))
        a.put_agent(AgentRecord(uid=uid, server="a", last_seen=2.0))  # a heartbeat, pending on a
    b.put_agent(AgentRecord(uid="x", server="a", last_seen=1.0, pending_command="restart", overrides={"k": 1}))
    b.delete_agent("gone")
    for uid in ("x", "gone"):
        a.refresh_agent(uid, OPERATOR_FIELDS)  # as the fleet does when b's notification arrives
    assert a.get_agent("gone") is None
    a.flush()
    stored = b.get_agent("x")
    assert stored is not None and (stored.last_seen, stored.pending_command, stored.overrides) == (
        2.0,
        "restart",
        {"k": 1},
    )
    assert b.get_agent("gone") is None
    a.close()
    b.close()


def test_a_record_the_database_refuses_does_not_hold_back_the_others(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = pg_store(pg_url, "writer", batched=True, flush_s=0)
    for uid in ("bad", "good"):
        store.put_agent(AgentRecord(uid=uid, last_seen=1.0))
    store.put_agent(AgentRecord(uid="bad", last_seen=2.0, health={"uptime": float("nan")}))  # not JSON
    store.put_agent(AgentRecord(uid="good", last_seen=2.0))
    store.flush()
    check = pg_store(pg_url, "check")
    assert {a.uid: a.last_seen for a in check.list_agents()} == {"bad": 1.0, "good": 2.0}
    assert "agent bad: its record was not written" in caplog.text
    store.close()
    check.close()


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


def test_a_change_announced_by_another_replica_wakes_the_push_loop(tmp_path: Path) -> None:
    """What another replica announces (a wave released, new baselines, an operator's change to one agent) is
    pushed at once: the fleet wakes the push loop instead of leaving it to its next tick."""
    fleet = Fleet(SqliteStore(tmp_path / "fleet.db"), FleetSettings(configs_dir=CONFIGS))
    woken: list[str] = []
    fleet.wake = lambda: woken.append("woken")
    for topic, key in (("rollout", "r1"), ("baselines", ""), ("agent", "a1"), ("", "")):
        fleet.changed_elsewhere(topic, key)
    assert woken == ["woken"] * 4
    fleet.store.close()


def test_the_replica_driving_a_rollout_on_a_shared_registry_evaluates_it_more_often(pg_url: str) -> None:
    from otelstack.opamp.server import SHARED_EVALUATION_S, _tick

    fleet = Fleet(pg_store(pg_url, "a"), FleetSettings(configs_dir=CONFIGS, server_id="a"), clock=Clock())
    Sim(fleet, 1).register()
    assert _tick(fleet, 0.5) == 0.5  # no rollout
    fleet.rollouts.start("config", {}, {"variant": "emergency"})
    assert _tick(fleet, 0.5) == SHARED_EVALUATION_S < 0.5
    fleet.rollouts.driving = False  # another replica drives it
    assert _tick(fleet, 0.5) == 0.5
    fleet.store.close()
