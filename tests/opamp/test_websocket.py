"""OpAMP over WebSocket with a real client (the websockets package): the same flows as over HTTP, pushes,
reconnects, and a server restart in the middle of a rollout."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest
import websockets
from opentelemetry._opamp.proto import opamp_pb2 as pb

from otelstack.opamp import protocol
from tests.opamp.conftest import CONFIGS, DEV_TOKEN, RunningServer, settings, start_server
from tests.opamp.revisions import add_log_include
from tests.opamp.wsagent import WsAgent as Agent
from tests.opamp.wsagent import description

DESCRIPTION = description()


def WsAgent(url: str, uid: bytes) -> Agent:
    return Agent(url, uid, DEV_TOKEN)


def test_register_apply_and_restart_command_pushed(server: RunningServer) -> None:
    async def scenario() -> None:
        agent = WsAgent(server.ws_url, b"\x11" * 16)
        await agent.connect()
        await agent.register()
        assert agent.applied
        server.call(lambda: server.fleet.request_restart(protocol.uid_text(agent.uid)))
        pushed = await agent.receive()  # pushed without a message from the agent
        assert pushed.command.type == pb.CommandType_Restart
        await agent.ws.close()

    asyncio.run(scenario())
    view = server.call(lambda: server.fleet.view(server.fleet.store.get_agent(protocol.uid_text(b"\x11" * 16))))
    assert view["config"]["compliant"] and view["connected"] is False


def test_server_assigns_an_instance_uid_when_asked(server: RunningServer) -> None:
    async def scenario() -> bytes:
        agent = WsAgent(server.ws_url, b"\x22" * 16)
        await agent.connect()
        reply = await agent.send(agent_description=DESCRIPTION, flags=pb.AgentToServerFlags_RequestInstanceUid)
        await agent.ws.close()
        return bytes(reply.agent_identification.new_instance_uid)

    new_uid = asyncio.run(scenario())
    assert len(new_uid) == 16 and new_uid != b"\x22" * 16
    assert server.call(lambda: server.fleet.store.get_agent(protocol.uid_text(new_uid))) is not None


def test_reconnect_resumes_without_resending_the_applied_config(server: RunningServer) -> None:
    async def scenario() -> pb.ServerToAgent:
        agent = WsAgent(server.ws_url, b"\x33" * 16)
        await agent.connect()
        await agent.register()
        await agent.ws.close()
        await agent.connect()
        reply = await agent.send()
        await agent.ws.close()
        return reply

    reply = asyncio.run(scenario())
    assert not reply.HasField("remote_config")
    assert not reply.flags & pb.ServerToAgentFlags_ReportFullState


def test_server_restart_in_the_middle_of_a_rollout(tmp_path: Path) -> None:
    revision = tmp_path / "configs-r2"
    shutil.copytree(CONFIGS, revision)
    add_log_include(revision / "dev" / "platform.yaml", "/srv/restart-test/*.log")
    server_settings = settings(tmp_path, _port())
    first = start_server(server_settings)
    uids = [bytes([0x40 + i]) * 16 for i in range(3)]

    async def register_all(url: str) -> list[str]:
        agents = [WsAgent(url, uid) for uid in uids]
        for agent in agents:
            await agent.connect()
            await agent.register()
        return [await _close(a) for a in agents]

    asyncio.run(register_all(first.ws_url))
    rollout = first.call(
        lambda: first.fleet.rollouts.start(
            "config", {"environment": "dev"}, {"configs_dir": str(revision)}, canary=1, waves=[100], wave_timeout_s=600
        )
    )
    first.stop()  # the server goes away before any wave ran

    second = start_server(server_settings)
    try:
        deadline = time.monotonic() + 30
        applied: list[str] = []
        while time.monotonic() < deadline:
            applied = asyncio.run(_converge(second.ws_url, uids))
            state = second.call(lambda: second.fleet.store.get_rollout(rollout.id))
            if state.state == "succeeded":
                break
        assert state.state == "succeeded", state
        assert set(applied) == {rollout.expected[protocol.uid_text(uids[0])]}
    finally:
        second.stop()


async def _close(agent: Agent) -> str:
    await agent.ws.close()
    return agent.applied


async def _converge(url: str, uids: list[bytes]) -> list[str]:
    """Each agent reconnects, heartbeats and applies whatever it is offered, twice."""
    agents = [WsAgent(url, uid) for uid in uids]
    for agent in agents:
        agent.seq = 10_000  # a gap: the server asks for the full state
        await agent.connect()
        reply = await agent.send(agent_description=DESCRIPTION, health=pb.ComponentHealth(healthy=True))
        await agent.apply(reply)
        await agent.apply(await agent.send())
    return [await _close(a) for a in agents]


def _port() -> int:
    from tests.opamp.conftest import free_port

    return free_port()


@pytest.mark.parametrize(
    "frame", [b"", b"\x05abc", b"\x00\xff\xff\xff", b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80"]
)
def test_malformed_frames_close_the_connection_with_a_log_line(
    server: RunningServer, frame: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> int:
        ws = await websockets.connect(server.ws_url, additional_headers={"Authorization": f"Bearer {DEV_TOKEN}"})
        await ws.send(frame)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        return int(closed.value.rcvd.code) if closed.value.rcvd else -1

    with caplog.at_level("WARNING", logger="otelstack.opamp"):
        code = asyncio.run(scenario())
    assert code == 1002
    assert any("closing OpAMP connection" in r.getMessage() for r in caplog.records)
    # The server is still serving.
    assert asyncio.run(_healthz(server)) == 200


async def _healthz(server: RunningServer) -> int:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(server.http_url + "/healthz") as response:
        return response.status


@pytest.mark.parametrize("enabled", [False, True])
def test_permessage_deflate_only_when_the_settings_ask_for_it(tmp_path: Path, enabled: bool) -> None:
    # Off by default: zlib state costs about 115 KiB per connected agent (bench/opamp_fleet.py).
    from tests.opamp.conftest import free_port

    running = start_server(settings(tmp_path, free_port(), limits={"websocket_compression": enabled}))
    try:

        async def scenario() -> str:
            agent = WsAgent(running.ws_url, b"\x77" * 16)
            await agent.connect()  # the websockets client offers permessage-deflate
            await agent.register()
            negotiated = agent.ws.response.headers.get("Sec-WebSocket-Extensions", "")
            await agent.ws.close()
            return str(negotiated)

        negotiated = asyncio.run(scenario())
    finally:
        running.stop()
    assert ("permessage-deflate" in negotiated) is enabled
