"""A simulated collector speaking OpAMP over WebSocket, for the tests and bench/opamp_fleet.py.

It registers with a description, applies every config it is offered (reporting APPLIED and healthy),
and can listen for what the server pushes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import websockets
from opentelemetry._opamp.proto import opamp_pb2 as pb
from opentelemetry._opamp.proto.anyvalue_pb2 import AnyValue, KeyValue

CAPS = (
    pb.AgentCapabilities_ReportsStatus
    | pb.AgentCapabilities_AcceptsRemoteConfig
    | pb.AgentCapabilities_ReportsRemoteConfig
    | pb.AgentCapabilities_ReportsHealth
    | pb.AgentCapabilities_AcceptsRestartCommand
)


def description(environment: str = "dev", region: str = "lab", **extra: str) -> pb.AgentDescription:
    attributes = {"deployment.environment.name": environment, "cloud.region": region, **extra}
    return pb.AgentDescription(
        non_identifying_attributes=[KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attributes.items()]
    )


def decode(frame: bytes) -> pb.ServerToAgent:
    """A ServerToAgent from a WebSocket frame (after the OpAMP header byte)."""
    reply = pb.ServerToAgent()
    reply.ParseFromString(frame[1:])
    return reply


class WsAgent:
    def __init__(self, url: str, uid: bytes, token: str, capabilities: int = CAPS, **attributes: str) -> None:
        self.url, self.uid, self.token, self.seq = url, uid, token, 0
        self.capabilities = capabilities
        self.description = description(**attributes)
        self.applied = ""
        self.ws: Any = None

    async def connect(self, **options: Any) -> None:
        """Open the WebSocket; `options` go to websockets.connect (the bench turns its pings off)."""
        self.ws = await websockets.connect(
            self.url, additional_headers={"Authorization": f"Bearer {self.token}"}, **options
        )

    async def post(self, **fields: Any) -> None:
        message = pb.AgentToServer(
            instance_uid=self.uid, sequence_num=self.seq, capabilities=self.capabilities, **fields
        )
        self.seq += 1
        await self.ws.send(b"\x00" + message.SerializeToString())

    async def send(self, **fields: Any) -> pb.ServerToAgent:
        await self.post(**fields)
        return await self.receive()

    async def receive(self, timeout: float = 10) -> pb.ServerToAgent:
        return decode(await asyncio.wait_for(self.ws.recv(), timeout))

    def _applied(self, reply: pb.ServerToAgent) -> pb.RemoteConfigStatus:
        self.applied = reply.remote_config.config_hash.hex()
        return pb.RemoteConfigStatus(
            last_remote_config_hash=reply.remote_config.config_hash, status=pb.RemoteConfigStatuses_APPLIED
        )

    async def apply(self, reply: pb.ServerToAgent) -> None:
        if reply.HasField("remote_config"):
            await self.send(remote_config_status=self._applied(reply), health=pb.ComponentHealth(healthy=True))

    async def register(self) -> None:
        await self.apply(await self.send(agent_description=self.description, health=pb.ComponentHealth(healthy=True)))

    async def apply_pushed(self, reply: pb.ServerToAgent) -> bool:
        """Report APPLIED for a config the server pushed, without waiting for its reply; False: none offered."""
        if not reply.HasField("remote_config"):
            return False
        await self.post(remote_config_status=self._applied(reply), health=pb.ComponentHealth(healthy=True))
        return True

    async def listen(self) -> None:
        """Apply what the server pushes, until cancelled (the server's reply to a status has nothing new)."""
        while True:
            await self.apply_pushed(decode(await self.ws.recv()))
