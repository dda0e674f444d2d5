"""Two server replicas on one PostgreSQL registry, behind one address (a round-robin TCP proxy, as a load
balancer would be): agents spread over both, a rollout started on one reaches the agents of the other,
an operator's restart reaches an agent connected to the other replica, and when the replica driving a
rollout is killed with `kill -9` mid-rollout the other takes the rollout lock and finishes it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import websockets
from opentelemetry._opamp.proto import opamp_pb2 as pb

from otelstack.opamp.replicas import ROLLOUT_LOCK
from otelstack.opamp.server import STATE
from tests.opamp import pgcluster
from tests.opamp.conftest import ADMIN_TOKEN, DEV_TOKEN, free_port, server_process, settings, start_server
from tests.opamp.wsagent import WsAgent, decode

AGENTS = 6


class RoundRobin:
    """One address in front of the replicas: each new TCP connection goes to the next one that accepts it."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.turn = itertools.cycle(range(len(ports)))
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> RoundRobin:
        self.server = await asyncio.start_server(self.accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/opamp"

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in self.ports:
            port = self.ports[next(self.turn)]
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                continue  # that replica is down: the next one
        else:
            writer.close()
            return
        await asyncio.gather(self.pipe(reader, upstream_writer), self.pipe(upstream_reader, writer))

    @staticmethod
    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(ConnectionError, OSError):
                writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


class Follower:
    """A WebSocket agent through the proxy that records what it is sent, applies pushed configs once
    ``gate`` is open, and reconnects (through the proxy) when its connection drops."""

    def __init__(self, n: int, url: str) -> None:
        self.agent = WsAgent(url, (0xA000 + n).to_bytes(16, "big"), DEV_TOKEN, **{"service.instance.id": f"vm-{n}"})
        self.offers: list[str] = []
        self.commands: list[int] = []
        self.connections = 0
        self.registered = asyncio.Event()
        self.applying: asyncio.Task[None] | None = None
        self.errors: list[str] = []

    @property
    def uid(self) -> str:
        import uuid

        return str(uuid.UUID(bytes=self.agent.uid))

    async def run(self, gate: asyncio.Event) -> None:
        while True:
            try:
                await self.agent.connect()
                self.connections += 1
                await self.agent.register()
                self.registered.set()
                while True:
                    reply = decode(await self.agent.ws.recv())
                    if reply.HasField("command"):
                        self.commands.append(reply.command.type)
                    if reply.HasField("remote_config"):
                        self.offers.append(reply.remote_config.config_hash.hex())
                        self.applying = asyncio.create_task(self.apply_when_open(reply, gate))
            except Exception as exc:  # closed, refused, timed out: connect again
                self.errors.append(repr(exc))
                await asyncio.sleep(0.2)

    async def apply_when_open(self, reply: pb.ServerToAgent, gate: asyncio.Event) -> None:
        """Apply a pushed config once the gate opens, if this connection is still there (else the server
        offers it again when the agent reconnects)."""
        ws = self.agent.ws
        await gate.wait()
        with contextlib.suppress(websockets.ConnectionClosed):
            if ws is self.agent.ws:
                await self.agent.apply_pushed(reply)


def api(port: int, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


async def until(what: str, check: Callable[[], Awaitable[bool] | bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if await result if isinstance(result, Awaitable) else result:
            return
        await asyncio.sleep(0.1)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


async def rollout_is(port: int, rollout_id: str, state: str) -> bool:
    return bool((await asyncio.to_thread(api, port, "GET", f"/api/rollouts/{rollout_id}"))["state"] == state)


@contextlib.asynccontextmanager
async def spread(ports: list[int], gate: asyncio.Event) -> AsyncIterator[list[Follower]]:
    """AGENTS followers through a round-robin proxy in front of the replicas on ``ports``, registered one
    at a time (so the proxy alternates replicas); stopped, with the proxy, at the end."""
    proxy = await RoundRobin(ports).start()
    followers = [Follower(n, proxy.ws_url) for n in range(AGENTS)]
    tasks = []
    try:
        for follower in followers:
            tasks.append(asyncio.create_task(follower.run(gate)))
            await asyncio.wait_for(follower.registered.wait(), 10)
        yield followers
    finally:
        for task in tasks:
            task.cancel()
        proxy.close()


EMERGENCY = {
    "kind": "config",
    "selector": {"environment": "dev"},
    "target": {"variant": "emergency"},
    "waves": [50, 100],
}


def test_agents_spread_over_two_replicas_get_a_rollout_and_a_restart_decided_on_either(
    tmp_path: Path, pg_url: str
) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    a, b = (start_server(settings(tmp_path / name, free_port(), postgresql=pg_url)) for name in ("a", "b"))

    async def scenario() -> None:
        gate = asyncio.Event()
        gate.set()
        async with spread([a.port, b.port], gate) as followers:
            on_a = set(a.call(lambda: list(a.app[STATE].sockets)))
            on_b = set(b.call(lambda: list(b.app[STATE].sockets)))
            assert len(on_a) == len(on_b) == AGENTS // 2 and not on_a & on_b
            before = {f.uid: f.agent.applied for f in followers}

            # Started on a; the replica holding the rollout lock drives it; b's agents get their waves.
            started = await asyncio.to_thread(api, a.port, "POST", "/api/rollouts", EMERGENCY)
            await until("the rollout to succeed", lambda: rollout_is(b.port, started["id"], "succeeded"))
            after = {f.uid: f.agent.applied for f in followers}
            assert all(after[uid] != before[uid] for uid in after), "every agent, on a and on b, got the new config"
            assert len(set(after.values())) == 1

            # A restart asked of b for an agent connected to a, and the other way round.
            for port, uid in ((b.port, sorted(on_a)[0]), (a.port, sorted(on_b)[0])):
                follower = next(f for f in followers if f.uid == uid)
                await asyncio.to_thread(api, port, "POST", f"/api/agents/{uid}/restart")
                await until(f"agent {uid} to be sent the restart", lambda f=follower: bool(f.commands))  # type: ignore[misc]
                assert follower.commands == [pb.CommandType_Restart]

    try:
        asyncio.run(scenario())
    finally:
        a.stop()
        b.stop()


def lock_holder_pid(pg: pgcluster.PgCluster, dbname: str) -> int | None:
    """The pid of the server process holding the rollout lock (its id, in application_name, has the pid)."""
    with pg.connect(dbname) as db:
        row = db.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s",
            (ROLLOUT_LOCK >> 32, ROLLOUT_LOCK & 0xFFFFFFFF),
        ).fetchone()
    return None if row is None else int(str(row[0]).rsplit("-", 2)[-2])


def test_the_rollout_driver_killed_mid_rollout_is_replaced_and_the_rollout_finishes(
    tmp_path: Path, pg: pgcluster.PgCluster
) -> None:
    dbname = pg.create_database()
    processes: dict[int, tuple[subprocess.Popen[bytes], Path, int]] = {}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        port = free_port()
        proc, log = server_process(tmp_path / name, port, postgresql=pg.url(dbname))
        processes[proc.pid] = (proc, log, port)

    async def scenario() -> None:
        await until("a replica to hold the rollout lock", lambda: lock_holder_pid(pg, dbname) is not None, 10)
        leader_pid = lock_holder_pid(pg, dbname)
        assert leader_pid in processes
        leader = processes[leader_pid][0]
        survivor, survivor_log, survivor_port = next(v for pid, v in processes.items() if pid != leader_pid)
        gate = asyncio.Event()  # closed: agents record what is pushed but do not apply it yet
        async with spread([port for _, _, port in processes.values()], gate) as followers:
            before = {f.uid: f.agent.applied for f in followers}
            # Started on the survivor, driven by the leader: the canary is offered the new config.
            started = await asyncio.to_thread(api, survivor_port, "POST", "/api/rollouts", EMERGENCY)
            await until("the canary to be offered the new config", lambda: any(f.offers for f in followers))
            assert await rollout_is(survivor_port, started["id"], "running")

            os.kill(leader_pid, signal.SIGKILL)
            leader.wait(timeout=10)
            gate.set()  # the agents apply; those of the dead replica reconnect to the survivor
            await until("the survivor to hold the rollout lock", lambda: lock_holder_pid(pg, dbname) == survivor.pid)
            await until("the rollout to succeed", lambda: rollout_is(survivor_port, started["id"], "succeeded"))
            after = {f.uid: f.agent.applied for f in followers}
            assert all(after[uid] != before[uid] for uid in after) and len(set(after.values())) == 1
            assert sum(f.connections for f in followers) > AGENTS, "the dead replica's agents reconnected"
            views = await asyncio.to_thread(api, survivor_port, "GET", "/api/agents")
            assert {v["uid"]: v["connected"] for v in views} == dict.fromkeys(after, True)
            assert f"continues rollout {started['id']}" in survivor_log.read_text()

    try:
        asyncio.run(scenario())
    finally:
        for proc, _, _ in processes.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
