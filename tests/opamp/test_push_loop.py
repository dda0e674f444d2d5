"""A failure while serving one agent stays with that agent: it is logged once, the agent still gets an
answer (no dropped WebSocket, no HTTP 500), and the push loop goes on serving every other agent, timing
rollouts out and passing restarts on, for the life of the process."""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry._opamp.proto import opamp_pb2 as pb

from otelstack.opamp import protocol
from otelstack.opamp.fleet import Fleet
from tests.opamp.conftest import DEV_TOKEN, RunningServer
from tests.opamp.wsagent import CAPS, WsAgent, description

PACKAGE_CAPS = CAPS | pb.AgentCapabilities_AcceptsPackages | pb.AgentCapabilities_ReportsPackageStatuses


def wait_for(what: str, check: Callable[[], Any], timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def post_http(server: RunningServer, uid: bytes, seq: int, **fields: Any) -> tuple[int, pb.ServerToAgent]:
    message = pb.AgentToServer(instance_uid=uid, sequence_num=seq, capabilities=PACKAGE_CAPS, **fields)
    request = urllib.request.Request(
        server.http_url + "/v1/opamp",
        data=message.SerializeToString(),
        method="POST",
        headers={"Authorization": f"Bearer {DEV_TOKEN}", "Content-Type": "application/x-protobuf"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, pb.ServerToAgent.FromString(response.read())


def errors_about(caplog: pytest.LogCaptureFixture, uid: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and uid in r.getMessage()]


def test_a_failure_injected_into_one_agents_push_leaves_the_others_served(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    fleet: Fleet = server.fleet
    broken = protocol.uid_text(b"\x0b" * 16)
    push = fleet.push

    def failing_push(uid: str) -> pb.ServerToAgent | None:
        if uid == broken:
            raise ValueError("injected: this agent's push fails")
        return push(uid)

    async def scenario() -> list[int]:
        agents = [WsAgent(server.ws_url, bytes([n]) * 16, DEV_TOKEN) for n in (0x0A, 0x0B, 0x0C)]
        for agent in agents:
            await agent.connect()
            await agent.register()
        fleet.push = failing_push  # type: ignore[method-assign]
        received = []
        for _ in range(3):  # three rounds of restarts: the loop must survive each failure
            for agent in agents:
                server.call(lambda a=agent: fleet.request_restart(protocol.uid_text(a.uid)))
            for agent in (agents[0], agents[2]):
                pushed = await agent.receive(timeout=10)
                received.append(pushed.command.type)
        # The broken agent itself is still answered when it speaks (its restart comes in the reply).
        reply = await agents[1].send()
        received.append(reply.command.type)
        for agent in agents:
            await agent.ws.close()
        return received

    with caplog.at_level(logging.ERROR, logger="otelstack.opamp"):
        received = asyncio.run(scenario())
    assert received == [pb.CommandType_Restart] * 7
    assert len(errors_about(caplog, broken)) == 1, "logged once, not once per push"
    assert "push to agent" in errors_about(caplog, broken)[0]


def test_a_package_rollout_that_cannot_be_offered_times_out_and_breaks_nobody(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The rollout of the defect: a package whose sha256 is not hex (stored by a server that accepted it),
    released to a WebSocket agent and an HTTP agent."""
    fleet: Fleet = server.fleet
    ws_uid, http_uid, other_uid = b"\x1a" * 16, b"\x1b" * 16, b"\x1c" * 16

    async def register() -> tuple[WsAgent, WsAgent]:
        targeted = WsAgent(server.ws_url, ws_uid, DEV_TOKEN, capabilities=PACKAGE_CAPS, region="lab-a")
        other = WsAgent(server.ws_url, other_uid, DEV_TOKEN, region="lab-b")
        for agent in (targeted, other):
            await agent.connect()
            await agent.register()
        return targeted, other

    loop = asyncio.new_event_loop()
    try:
        targeted, other = loop.run_until_complete(register())
        status, _ = post_http(server, http_uid, 0, agent_description=description(region="lab-a"))
        assert status == 200

        def corrupt_rollout() -> str:
            rollout = fleet.rollouts.start(
                "package",
                {"region": "lab-a"},
                {"name": "otelcol-contrib", "version": "0.160.0", "url": "https://m/x.tgz", "sha256": "ab" * 32},
                canary=2,
                waves=[100],
                wave_timeout_s=2,
            )
            rollout.target["sha256"] = "zz" * 32  # as an older server stored it
            fleet.store.put_rollout(rollout)
            return rollout.id

        with caplog.at_level(logging.ERROR, logger="otelstack.opamp"):
            rollout_id = server.call(corrupt_rollout)
            for seq in range(1, 4):  # each message is answered, without the package
                reply = loop.run_until_complete(targeted.send(health=pb.ComponentHealth(healthy=True)))
                assert not reply.HasField("error_response") and not reply.HasField("packages_available")
                status, answer = post_http(server, http_uid, seq)
                assert status == 200 and not answer.HasField("packages_available")
            state = wait_for(
                "the rollout to time out",
                lambda: (r := server.call(lambda: fleet.store.get_rollout(rollout_id))).state != "running" and r,
            )
            assert state.state == "failed" and "timeout after 2s" in state.reason
            # Pushes still reach everyone afterwards.
            for agent in (targeted, other):
                server.call(lambda a=agent: fleet.request_restart(protocol.uid_text(a.uid)))
                pushed = loop.run_until_complete(agent.receive(timeout=10))
                assert pushed.command.type == pb.CommandType_Restart
        uid = protocol.uid_text(ws_uid)
        assert len([m for m in errors_about(caplog, uid) if "package offer" in m]) == 1
        loop.run_until_complete(targeted.ws.close())
        loop.run_until_complete(other.ws.close())
    finally:
        loop.close()


def test_a_wave_released_is_pushed_to_its_agents_only_and_anything_else_to_everyone() -> None:
    from otelstack.opamp.fleet import FleetSettings
    from otelstack.opamp.server import _released_since
    from otelstack.opamp.store import SqliteStore
    from tests.opamp.conftest import CONFIGS
    from tests.opamp.fleet_sim import Clock, Sim

    fleet = Fleet(SqliteStore(":memory:"), FleetSettings(configs_dir=CONFIGS), clock=Clock())
    for n in range(10):
        Sim(fleet, n).register()
    idle = fleet.generation()
    rollout = fleet.rollouts.start("config", {}, {"variant": "emergency"}, canary=1, waves=[50, 100])
    started = fleet.generation()
    assert _released_since(fleet, idle, started) == set(rollout.waves[0])  # the canary
    rollout.current_wave = 2  # two waves released before the loop looked again
    assert _released_since(fleet, started, fleet.generation()) == set(rollout.waves[1]) | set(rollout.waves[2])
    assert _released_since(fleet, (), started) is None  # the loop's first round
    fleet.request_restart(rollout.waves[0][0])  # an operator's change: everyone is checked
    assert _released_since(fleet, started, fleet.generation()) is None
    fleet.rollouts.abort(rollout.id)  # agents go back to their baseline
    assert _released_since(fleet, started, fleet.generation()) is None
