"""A record belongs to the environment whose token created it: a message with another environment's token
that carries its instance UID gets an error and changes nothing — the stored row stays byte-for-byte the
same — and the real agent goes on as before."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import websockets
from opentelemetry._opamp.proto import opamp_pb2 as pb

from otelstack.opamp import protocol
from otelstack.opamp.store import AgentRecord
from tests.opamp.conftest import ADMIN_TOKEN, DEV_TOKEN, PROD_TOKEN, RunningServer
from tests.opamp.wsagent import CAPS, WsAgent, description

PROD_UID = b"\x70" * 16


def row(database: Path, uid: bytes) -> tuple[Any, ...]:
    """The agent's stored row as it is on disk (document and columns), read by another connection."""
    with sqlite3.connect(database) as db:
        found = db.execute("SELECT * FROM agents WHERE uid = ?", (protocol.uid_text(uid),)).fetchone()
    assert found is not None
    return tuple(found)


def post(server: RunningServer, token: str, message: pb.AgentToServer) -> pb.ServerToAgent:
    request = urllib.request.Request(
        server.http_url + "/v1/opamp",
        data=message.SerializeToString(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-protobuf"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        return pb.ServerToAgent.FromString(response.read())


def dev_impostors() -> list[pb.AgentToServer]:
    """What a dev-token client could send with the prod agent's UID."""
    return [
        pb.AgentToServer(instance_uid=PROD_UID, sequence_num=1, capabilities=CAPS, agent_description=description()),
        pb.AgentToServer(
            instance_uid=PROD_UID, sequence_num=1, capabilities=CAPS, agent_description=description("prod")
        ),
        pb.AgentToServer(instance_uid=PROD_UID, sequence_num=1, capabilities=CAPS),
        pb.AgentToServer(
            instance_uid=PROD_UID,
            sequence_num=1,
            remote_config_status=pb.RemoteConfigStatus(
                last_remote_config_hash=b"\x01" * 32, status=pb.RemoteConfigStatuses_FAILED
            ),
            health=pb.ComponentHealth(healthy=False),
        ),
        pb.AgentToServer(instance_uid=PROD_UID, sequence_num=1, agent_disconnect=pb.AgentDisconnect()),
    ]


@pytest.mark.parametrize("transport", ["http", "websocket"])
def test_another_environments_token_cannot_take_over_a_record(
    server: RunningServer, tmp_path: Path, transport: str
) -> None:
    database = tmp_path / "fleet.db"
    prod = WsAgent(server.ws_url, PROD_UID, PROD_TOKEN, environment="prod", region="us-east-1")

    async def scenario() -> None:
        await prod.connect()
        await prod.register()
        registered = row(database, PROD_UID)
        assert '"environment": "prod"' in registered[1]
        for impostor in dev_impostors():
            if transport == "http":
                reply = await asyncio.to_thread(post, server, DEV_TOKEN, impostor)
            else:
                dev = {"Authorization": f"Bearer {DEV_TOKEN}"}
                ws = await websockets.connect(server.ws_url, additional_headers=dev)
                await ws.send(b"\x00" + impostor.SerializeToString())
                reply = pb.ServerToAgent.FromString((await asyncio.wait_for(ws.recv(), 10))[1:])
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 10)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
            assert reply.error_response.type == pb.ServerErrorResponseType_BadRequest
            assert "belongs to an agent of environment 'prod'" in reply.error_response.error_message
            assert "this token is for 'dev'" in reply.error_response.error_message
            assert row(database, PROD_UID) == registered, "the record is byte-for-byte unchanged"
        # The real agent is not refused and carries on where it was.
        reply = await prod.send(health=pb.ComponentHealth(healthy=True))
        assert not reply.HasField("error_response")
        assert not reply.flags & pb.ServerToAgentFlags_ReportFullState, "its sequence was not disturbed"
        await prod.ws.close()

    asyncio.run(scenario())
    view = server.call(lambda: server.fleet.view(server.fleet.store.get_agent(protocol.uid_text(PROD_UID))))
    assert (view["environment"], view["region"], view["status"]) == ("prod", "us-east-1", "healthy")


def test_a_record_of_an_older_server_belongs_to_the_environment_it_reports(server: RunningServer) -> None:
    """Records written before owners were stored have no owner: their environment is it."""
    uid = protocol.uid_text(PROD_UID)
    server.call(lambda: server.fleet.store.put_agent(AgentRecord(uid=uid, environment="prod", sequence_num=3)))
    reply = post(server, DEV_TOKEN, pb.AgentToServer(instance_uid=PROD_UID, sequence_num=4, capabilities=CAPS))
    assert "belongs to an agent of environment 'prod'" in reply.error_response.error_message
    reply = post(server, PROD_TOKEN, pb.AgentToServer(instance_uid=PROD_UID, sequence_num=4, capabilities=CAPS))
    assert not reply.HasField("error_response")
    assert server.call(lambda: server.fleet.store.get_agent(uid)).owner == "prod"


def test_an_agent_moves_environment_once_an_operator_deletes_its_record(server: RunningServer) -> None:
    uid = protocol.uid_text(PROD_UID)
    described = pb.AgentToServer(
        instance_uid=PROD_UID, sequence_num=0, capabilities=CAPS, agent_description=description("prod")
    )
    assert not post(server, PROD_TOKEN, described).HasField("error_response")
    moved = pb.AgentToServer(instance_uid=PROD_UID, sequence_num=1, capabilities=CAPS, agent_description=description())
    assert post(server, DEV_TOKEN, moved).HasField("error_response")

    def delete(path: str) -> tuple[int, Any]:
        request = urllib.request.Request(
            server.http_url + path, method="DELETE", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    assert delete(f"/api/agents/{uid[:8]}")[0] == 404, "deleting takes the full UID, never a prefix"
    assert delete(f"/api/agents/{uid}") == (200, {"deleted": uid})
    assert delete(f"/api/agents/{uid}")[0] == 404
    assert not post(server, DEV_TOKEN, moved).HasField("error_response")
    agent = server.call(lambda: server.fleet.store.get_agent(uid))
    assert (agent.environment, agent.owner) == ("dev", "dev")
