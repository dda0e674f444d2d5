"""The registry does not grow without limit: an agent without an instance UID is given one UID per
connection (not one per message), records that never described themselves expire, and each environment's
token may hold a bounded number of records (a clear error beyond it)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import websockets
from opentelemetry._opamp.proto import opamp_pb2 as pb

from otelstack.opamp.fleet import Fleet, FleetSettings, Session
from otelstack.opamp.protocol import uid_text
from otelstack.opamp.store import SqliteStore
from tests.opamp.conftest import (
    ADMIN_TOKEN,
    CONFIGS,
    DEV_TOKEN,
    PROD_TOKEN,
    RunningServer,
    free_port,
    settings,
    start_server,
)
from tests.opamp.fleet_sim import Clock, Sim, description

HEADERS = {"Authorization": f"Bearer {DEV_TOKEN}", "Content-Type": "application/x-protobuf"}


def agents(server: RunningServer) -> list[dict[str, Any]]:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    request = urllib.request.Request(server.http_url + "/api/agents", headers=admin)
    with urllib.request.urlopen(request, timeout=10) as response:
        return list(json.loads(response.read()))


def anonymous(seq: int, **fields: Any) -> pb.AgentToServer:
    return pb.AgentToServer(sequence_num=seq, capabilities=pb.AgentCapabilities_ReportsStatus, **fields)


def test_messages_without_an_instance_uid_on_one_websocket_make_one_record(server: RunningServer) -> None:
    async def scenario() -> list[bytes]:
        ws = await websockets.connect(server.ws_url, additional_headers={"Authorization": f"Bearer {DEV_TOKEN}"})
        assigned = []
        for seq in range(5):
            await ws.send(b"\x00" + anonymous(seq).SerializeToString())
            reply = pb.ServerToAgent.FromString((await asyncio.wait_for(ws.recv(), 10))[1:])
            assigned.append(bytes(reply.agent_identification.new_instance_uid))
        # Asking for a new UID again and again on the same connection gets the same one.
        for seq in range(5, 8):
            message = anonymous(seq, instance_uid=b"\x05" * 16, flags=pb.AgentToServerFlags_RequestInstanceUid)
            await ws.send(b"\x00" + message.SerializeToString())
            reply = pb.ServerToAgent.FromString((await asyncio.wait_for(ws.recv(), 10))[1:])
            assigned.append(bytes(reply.agent_identification.new_instance_uid))
        await ws.close()
        return assigned

    assigned = asyncio.run(scenario())
    assert len(set(assigned)) == 1 and len(assigned[0]) == 16
    assert [a["uid"] for a in agents(server)] == [uid_text(assigned[0])]


def test_messages_without_an_instance_uid_on_one_http_connection_make_one_record(server: RunningServer) -> None:
    async def scenario() -> list[bytes]:
        assigned = []
        async with aiohttp.ClientSession(headers=HEADERS) as session:  # one keep-alive connection
            for seq in range(5):
                async with session.post(server.http_url + "/v1/opamp", data=anonymous(seq).SerializeToString()) as r:
                    reply = pb.ServerToAgent.FromString(await r.read())
                    assigned.append(bytes(reply.agent_identification.new_instance_uid))
        return assigned

    assigned = asyncio.run(scenario())
    assert len(set(assigned)) == 1
    assert len(agents(server)) == 1


def test_records_that_never_describe_themselves_expire() -> None:
    clock = Clock()
    fleet = Fleet(SqliteStore(":memory:"), FleetSettings(configs_dir=CONFIGS, incomplete_agent_ttl_s=600), clock=clock)
    for seq in range(10):  # ten one-shot clients, each on its own connection
        fleet.handle(anonymous(seq), token_environment="dev", session=Session(transport="http"))
    described = Sim(fleet, 1).register()
    beating = Sim(fleet, 2)
    beating.send()  # an agent that keeps sending heartbeats but never its description
    assert len(fleet.store.list_agents()) == 12
    clock.now += 599
    beating.send()
    assert fleet.expire_incomplete() == []
    clock.now += 2
    beating.send()
    gone = fleet.expire_incomplete()
    assert len(gone) == 11 and beating.uid in {a.uid for a in gone}
    assert [a.uid for a in fleet.store.list_agents()] == [described.uid]
    # It is asked for its full state when it speaks again, and registered once it describes itself.
    reply = beating.send()
    assert reply.flags & pb.ServerToAgentFlags_ReportFullState
    beating.send(agent_description=description("dev", "lab"))
    clock.now += 10_000
    assert fleet.expire_incomplete() == []


def test_the_server_expires_incomplete_records_by_itself(tmp_path: Path) -> None:
    running = start_server(settings(tmp_path, free_port(), limits={"incomplete_agent_ttl_s": 1}))
    try:
        for seq in range(3):
            request = urllib.request.Request(
                running.http_url + "/v1/opamp", data=anonymous(seq).SerializeToString(), headers=HEADERS
            )
            urllib.request.urlopen(request, timeout=10).close()
        assert len(agents(running)) >= 1
        deadline = time.monotonic() + 15
        while agents(running) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert agents(running) == []
    finally:
        running.stop()


def test_records_per_environment_are_capped_with_a_clear_error() -> None:
    clock = Clock()
    fleet = Fleet(
        SqliteStore(":memory:"), FleetSettings(configs_dir=CONFIGS, max_agents_per_environment=3), clock=clock
    )
    dev = [Sim(fleet, n).register() for n in range(1, 4)]
    refused = Sim(fleet, 4)
    reply = refused.send(agent_description=description("dev", "lab"))
    assert reply.error_response.type == pb.ServerErrorResponseType_Unavailable
    assert reply.error_response.error_message.startswith(
        "the registry holds the maximum of 3 agents for environment 'dev' (limits.max_agents_per_environment)"
    )
    assert fleet.store.get_agent(refused.uid) is None
    assert len(fleet.store.list_agents()) == 3
    for sim in dev:  # the agents it has carry on
        assert not sim.send().HasField("error_response")
    prod = Sim(fleet, 10, "prod", "us-east-1").register()  # another environment has its own cap
    assert fleet.store.get_agent(prod.uid) is not None
    # A record that expires makes room.
    fleet.handle(anonymous(0, instance_uid=b"\x09" * 16), token_environment="prod")
    clock.now += 601
    assert [a.uid for a in fleet.expire_incomplete()] == [uid_text(b"\x09" * 16)]
    assert not Sim(fleet, 11, "prod", "us-east-1").send().HasField("error_response")


def test_the_cap_on_a_live_server(tmp_path: Path) -> None:
    running = start_server(settings(tmp_path, free_port(), limits={"max_agents_per_environment": 2}))
    try:
        replies = []
        for n, token in ((1, DEV_TOKEN), (2, DEV_TOKEN), (3, DEV_TOKEN), (4, PROD_TOKEN)):
            environment = "prod" if token == PROD_TOKEN else "dev"
            message = pb.AgentToServer(
                instance_uid=bytes([n]) * 16, capabilities=1, agent_description=description(environment, "lab")
            )
            request = urllib.request.Request(
                running.http_url + "/v1/opamp",
                data=message.SerializeToString(),
                headers={**HEADERS, "Authorization": f"Bearer {token}"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                replies.append(pb.ServerToAgent.FromString(response.read()))
        assert [r.HasField("error_response") for r in replies] == [False, False, True, False]
        assert "maximum of 2 agents for environment 'dev'" in replies[2].error_response.error_message
        assert len(agents(running)) == 3
    finally:
        running.stop()
