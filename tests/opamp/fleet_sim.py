"""Simulated agents speaking to the fleet logic directly (no transport), with a controlled clock: any
environment and region, a token of their own, and configs they fail to apply (by a marker in the text)."""

from __future__ import annotations

from typing import Any

from opentelemetry._opamp.proto import opamp_pb2 as pb
from opentelemetry._opamp.proto.anyvalue_pb2 import AnyValue, KeyValue

from otelstack.opamp.fleet import Fleet
from otelstack.opamp.protocol import uid_text
from tests.opamp.wsagent import CAPS


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def description(environment: str, region: str, **extra: str) -> pb.AgentDescription:
    attributes = {
        "deployment.environment.name": environment,
        "cloud.region": region,
        "otelstack.profile": "agent-vm",
        **extra,
    }
    return pb.AgentDescription(
        non_identifying_attributes=[KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attributes.items()]
    )


class Sim:
    """A collector that applies what it is offered — or fails to, when the config contains one of its
    ``breaks_on`` markers (it then keeps running what it ran) — and reports back. ``health``: whether it
    reports health at all (agents such as the official Python client do not); ``applies``: False for an
    agent still busy applying what it was offered (it reports nothing about it); ``attributes``: more of
    its description (``host.name``, …)."""

    def __init__(
        self,
        fleet: Fleet,
        n: int,
        environment: str = "dev",
        region: str = "lab",
        *,
        token: str | None = None,
        breaks_on: tuple[str, ...] = (),
        health: bool = True,
        session: Any = None,
        applies: bool = True,
        attributes: dict[str, str] | None = None,
    ) -> None:
        self.fleet, self.uid_bytes, self.seq = fleet, n.to_bytes(16, "big"), 0
        self.environment, self.region = environment, region
        self.token = environment if token is None else token
        self.breaks_on = breaks_on
        self.health = health
        self.session = session
        self.applies = applies
        self.attributes = attributes or {}
        self.running = ""  # hash of the config it runs
        self.offered: list[str] = []  # every config hash it was offered

    @property
    def uid(self) -> str:
        return uid_text(self.uid_bytes)

    def send(self, **fields: Any) -> pb.ServerToAgent:
        message = pb.AgentToServer(instance_uid=self.uid_bytes, sequence_num=self.seq, capabilities=CAPS, **fields)
        self.seq += 1
        kwargs: dict[str, Any] = {"token_environment": self.token}
        if self.session is not None:
            kwargs["session"] = self.session
        reply = self.fleet.handle(message, **kwargs)
        if reply.HasField("remote_config"):
            config_hash = reply.remote_config.config_hash.hex()
            self.offered.append(config_hash)
            if not self.applies:
                return reply
            body = reply.remote_config.config.config_map["otelstack.yaml"].body.decode()
            failed = any(marker in body for marker in self.breaks_on)
            status = pb.RemoteConfigStatus(
                last_remote_config_hash=reply.remote_config.config_hash,
                status=pb.RemoteConfigStatuses_FAILED if failed else pb.RemoteConfigStatuses_APPLIED,
                error_message="collector refused it" if failed else "",
            )
            if not failed:
                self.running = config_hash
            extra: dict[str, Any] = {"health": pb.ComponentHealth(healthy=True)} if self.health else {}
            return self.send(remote_config_status=status, **extra)
        return reply

    def register(self) -> Sim:
        extra: dict[str, Any] = {"health": pb.ComponentHealth(healthy=True)} if self.health else {}
        self.send(agent_description=description(self.environment, self.region, **self.attributes), **extra)
        return self

    def view(self) -> dict[str, Any]:
        agent = self.fleet.store.get_agent(self.uid)
        assert agent is not None
        return self.fleet.view(agent)


def beat(sims: list[Sim], times: int = 1) -> None:
    for _ in range(times):
        for sim in sims:
            sim.send()
