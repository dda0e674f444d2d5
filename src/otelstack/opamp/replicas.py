"""Several server replicas on one PostgreSQL registry: any replica serves any agent.

Each replica (one `otelstack opamp serve` process, with an id of its own) keeps two connections of its
own next to the store's:

- a listener (``LISTEN`` on the store's CHANNEL): a decision another replica takes — a rollout started,
  advanced, finished or aborted, new baselines, a restart or overrides for one agent — arrives as a
  notification, and this replica refreshes what it keeps in memory and pushes to the agents connected
  to it (``Fleet.changed_elsewhere``). After the listener reconnects, it refreshes everything, since
  notifications sent meanwhile are lost;
- the rollout lock: a session-level advisory lock (ROLLOUT_LOCK). The replica holding it drives rollouts
  (``Rollouts.driving``). When its process dies, PostgreSQL ends its session and releases the lock; the
  next replica to try (every LOCK_RETRY_S) takes it, reads the running rollout from the registry and
  continues it where it stood; it also marks disconnected the agents the dead replica held.

No broker other than the database. With SQLite (one server) none of this runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import psycopg

from otelstack.opamp.fleet import Fleet
from otelstack.opamp.postgres import APPLICATION_PREFIX, CHANNEL
from otelstack.opamp.settings import PostgresSettings

log = logging.getLogger("otelstack.opamp")

# pg_try_advisory_lock key of the replica that drives rollouts ("otelroll").
ROLLOUT_LOCK = 0x6F74656C726F6C6C
LOCK_RETRY_S = 1.0
RECONNECT_S = 2.0
# The lock connection notices a lost database within seconds (TCP keepalives), and steps down.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}


class Replicas:
    """This replica's listener and its part in the rollout lock (``run`` until cancelled)."""

    def __init__(self, fleet: Fleet, settings: PostgresSettings, server_id: str) -> None:
        self.fleet, self.settings, self.server_id = fleet, settings, server_id
        self.leader = False
        fleet.rollouts.driving = False

    async def _connect(self, **extra: Any) -> psycopg.AsyncConnection[Any]:
        conninfo = self.settings.conninfo(APPLICATION_PREFIX + self.server_id)
        return await psycopg.AsyncConnection.connect(conninfo, autocommit=True, **extra)

    async def run(self) -> None:
        await asyncio.gather(self.listen(), self.lead())

    async def listen(self) -> None:
        while True:
            try:
                async with await self._connect() as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.fleet.changed_elsewhere("")  # anything announced while nobody listened
                    async for note in conn.notifies():
                        self.heard(note.payload)
            except psycopg.Error as exc:
                self.fleet.errors.failure(
                    "replicas:listen",
                    exc,
                    "PostgreSQL registry at %s: not listening to the other replicas; retrying",
                    self.settings.where,
                )
                await asyncio.sleep(RECONNECT_S)

    def heard(self, payload: str) -> None:
        sender, _, rest = payload.partition(" ")
        topic, _, key = rest.partition(" ")
        if sender == self.server_id:
            return
        try:
            self.fleet.changed_elsewhere(topic, key)
        except Exception as exc:  # the next notification, or a reconnect, refreshes again
            self.fleet.errors.failure(f"replicas:{topic}", exc, "a change announced by %s was not applied", sender)

    async def lead(self) -> None:
        while True:
            try:
                async with await self._connect(**KEEPALIVES) as conn:
                    while True:
                        if self.leader:
                            await conn.execute("SELECT 1")  # the session, and so the lock, is still there
                        else:
                            cursor = await conn.execute("SELECT pg_try_advisory_lock(%s)", (ROLLOUT_LOCK,))
                            row = await cursor.fetchone()
                            if row is not None and row[0]:
                                self.take_over()
                        await asyncio.sleep(LOCK_RETRY_S)
            except psycopg.Error as exc:
                if self.leader:
                    log.warning("lost the rollout lock (PostgreSQL registry at %s: %s)", self.settings.where, exc)
                self.step_down()
                await asyncio.sleep(RECONNECT_S)
            finally:
                self.step_down()

    def take_over(self) -> None:
        """This replica drives rollouts from now on, from the state stored in the registry."""
        self.leader = True
        self.fleet.rollouts.refresh()
        self.fleet.rollouts.driving = True
        running = self.fleet.rollouts.running()
        log.info(
            "replica %s drives rollouts%s",
            self.server_id,
            f" (continues rollout {running.id} at wave {running.current_wave})" if running else "",
        )
        with contextlib.suppress(Exception):
            gone = self.fleet.reset_connections()
            if gone:
                log.info("%d agent(s) of replicas that are gone marked disconnected", gone)

    def step_down(self) -> None:
        if self.leader:
            log.info("replica %s no longer drives rollouts", self.server_id)
        self.leader = False
        self.fleet.rollouts.driving = False
