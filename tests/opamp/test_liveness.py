"""Liveness comes from when an agent was last heard against the heartbeat interval: an HTTP agent silent
for more than 3 heartbeat intervals is `disconnected`; a WebSocket agent is connected while its socket is
open to this server process, and a restarted server (after `kill -9`) starts with nobody connected."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

from opentelemetry._opamp.proto import opamp_pb2 as pb

from otelstack.opamp.fleet import Fleet, FleetSettings, Session
from otelstack.opamp.store import SqliteStore
from tests.opamp.conftest import ADMIN_TOKEN, CONFIGS, DEV_TOKEN, free_port, server_process, settings, start_server
from tests.opamp.fleet_sim import Clock, Sim
from tests.opamp.wsagent import WsAgent

HEARTBEAT = 30


def fleet(clock: Clock) -> Fleet:
    fleet_settings = FleetSettings(configs_dir=CONFIGS, heartbeat_interval_s=HEARTBEAT)
    return Fleet(SqliteStore(":memory:"), fleet_settings, clock=clock)


def test_an_http_agent_silent_for_more_than_3_heartbeats_is_disconnected() -> None:
    clock = Clock()
    subject = fleet(clock)
    sim = Sim(subject, 1, session=Session(transport="http")).register()
    assert (sim.view()["status"], sim.view()["connected"], sim.view()["transport"]) == ("healthy", True, "http")
    clock.now += 3 * HEARTBEAT  # three heartbeats missed: not yet
    assert (sim.view()["status"], sim.view()["connected"]) == ("healthy", True)
    clock.now += 1
    assert (sim.view()["status"], sim.view()["connected"]) == ("disconnected", False)
    sim.send()  # it polls again
    assert (sim.view()["status"], sim.view()["connected"]) == ("healthy", True)


def test_an_http_agent_that_says_goodbye_is_not_connected() -> None:
    clock = Clock()
    subject = fleet(clock)
    sim = Sim(subject, 1, session=Session(transport="http")).register()
    sim.send(agent_disconnect=pb.AgentDisconnect())
    assert sim.view()["connected"] is False
    clock.now += 3 * HEARTBEAT + 1
    assert sim.view()["status"] == "disconnected"


def test_a_websocket_agent_is_connected_while_its_socket_is_open() -> None:
    clock = Clock()
    subject = fleet(clock)
    sim = Sim(subject, 1, session=Session(transport="websocket")).register()
    clock.now += 10 * HEARTBEAT  # an open socket: the server hears it whenever it speaks
    assert (sim.view()["status"], sim.view()["connected"]) == ("healthy", True)
    subject.mark_disconnected(sim.uid)
    assert (sim.view()["status"], sim.view()["connected"]) == ("disconnected", False)


def api(port: int, path: str) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_a_silent_http_agent_becomes_disconnected_on_a_live_server(tmp_path: Path) -> None:
    running = start_server(settings(tmp_path, free_port(), heartbeat_interval_s=1))
    try:
        message = pb.AgentToServer(
            instance_uid=b"\x51" * 16,
            capabilities=pb.AgentCapabilities_ReportsStatus | pb.AgentCapabilities_ReportsHealth,
            health=pb.ComponentHealth(healthy=True),
        )
        request = urllib.request.Request(
            running.http_url + "/v1/opamp",
            data=message.SerializeToString(),
            headers={"Authorization": f"Bearer {DEV_TOKEN}", "Content-Type": "application/x-protobuf"},
        )
        urllib.request.urlopen(request, timeout=10).close()
        (agent,) = api(running.port, "/api/agents")
        assert (agent["status"], agent["connected"], agent["transport"]) == ("healthy", True, "http")
        time.sleep(3.5)
        (agent,) = api(running.port, "/api/agents")
        assert (agent["status"], agent["connected"]) == ("disconnected", False)
    finally:
        running.stop()


def test_after_kill_9_websocket_agents_that_did_not_reconnect_are_not_connected(tmp_path: Path) -> None:
    port = free_port()
    url = f"ws://127.0.0.1:{port}/v1/opamp"
    proc, log = server_process(tmp_path, port)
    agents = [WsAgent(url, bytes([0xA0 + n]) * 16, DEV_TOKEN) for n in range(3)]

    async def register() -> None:
        for agent in agents:
            await agent.connect()
            await agent.register()

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(register())
        before = api(port, "/api/agents")
        assert [a["connected"] for a in before] == [True] * 3
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc, log = server_process(tmp_path, port)
        after = {a["uid"]: a for a in api(port, "/api/agents")}
        assert [a["connected"] for a in after.values()] == [False] * 3, log.read_text()[-2000:]
        assert "3 agent(s) were marked connected by the previous server process" in log.read_text()

        async def reconnect_one() -> None:
            await agents[0].connect()
            await agents[0].send()

        loop.run_until_complete(reconnect_one())
        connected = {a["uid"]: a["connected"] for a in api(port, "/api/agents")}
        assert sorted(connected.values()) == [False, False, True]
        loop.run_until_complete(agents[0].ws.close())
    finally:
        loop.close()
        proc.terminate()
        proc.wait(timeout=10)
