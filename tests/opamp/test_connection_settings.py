"""OpAMP connection-settings offers are complete: the agent applies one as its whole server config.

Each offer carries the server's URL for the agent's transport (never empty), the Authorization header
with the token of the agent's own environment, the CA it verifies the server with (TLS), and the
heartbeat interval; an unchanged offer is not sent again, a changed CA file is."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from opentelemetry._opamp.proto import opamp_pb2 as pb

from otelstack.errors import OtelstackError
from otelstack.opamp.fleet import Session
from otelstack.opamp.server import FLEET, build_app
from otelstack.opamp.settings import ServerSettings
from tests.integration.pki_helpers import make_pki
from tests.opamp.conftest import DEV_TOKEN, PROD_TOKEN, free_port, settings, start_server
from tests.opamp.wsagent import CAPS, WsAgent

ACCEPTS = CAPS | pb.AgentCapabilities_AcceptsOpAMPConnectionSettings


async def talk(
    url: str, uid: bytes, token: str = DEV_TOKEN, environment: str = "dev", rounds: int = 1
) -> list[pb.ServerToAgent]:
    agent = WsAgent(url, uid, token, capabilities=ACCEPTS, environment=environment)
    await agent.connect()
    try:
        replies = [await agent.send(agent_description=agent.description)]
        for _ in range(rounds - 1):
            replies.append(await agent.send())
        return replies
    finally:
        await agent.ws.close()


def headers(reply: pb.ServerToAgent) -> list[tuple[str, str]]:
    return [(h.key, h.value) for h in reply.connection_settings.opamp.headers.headers]


def test_the_offer_names_this_server_and_the_agents_own_token(tmp_path: Path) -> None:
    port = free_port()
    running = start_server(settings(tmp_path, port))  # plaintext lab server on 127.0.0.1
    try:
        dev = asyncio.run(talk(running.ws_url, b"\x61" * 16, rounds=2))
        prod = asyncio.run(talk(running.ws_url, b"\x62" * 16, PROD_TOKEN, "prod"))
    finally:
        running.stop()
    offer = dev[0].connection_settings.opamp
    assert offer.destination_endpoint == f"ws://127.0.0.1:{port}/v1/opamp"
    assert headers(dev[0]) == [("Authorization", f"Bearer {DEV_TOKEN}")]
    assert offer.heartbeat_interval_seconds == 30
    assert not offer.HasField("certificate")  # plaintext: no CA to offer
    assert dev[0].connection_settings.hash
    assert not dev[1].HasField("connection_settings"), "an unchanged offer is not sent again"
    assert headers(prod[0]) == [("Authorization", f"Bearer {PROD_TOKEN}")], "each agent gets its own token only"


def test_a_tls_offer_carries_the_ca_and_a_new_ca_is_offered_again(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    ca_file = tmp_path / "offered-ca.crt"
    ca_file.write_bytes(pki.ca.read_bytes())
    url = "wss://opamp.example.com:4320/v1/opamp"  # behind a TLS proxy: the URL agents use
    running = start_server(settings(tmp_path, free_port(), opamp_url=url, opamp_ca_file=str(ca_file)))
    try:
        first = asyncio.run(talk(running.ws_url, b"\x63" * 16, rounds=2))
        new_ca = make_pki(tmp_path / "new").ca.read_bytes()
        ca_file.write_bytes(pki.ca.read_bytes() + new_ca)
        again = asyncio.run(talk(running.ws_url, b"\x63" * 16))
    finally:
        running.stop()
    offer = first[0].connection_settings.opamp
    assert offer.destination_endpoint == url
    assert offer.certificate.ca_cert == pki.ca.read_bytes()
    assert headers(first[0]) == [("Authorization", f"Bearer {DEV_TOKEN}")]
    assert not first[1].HasField("connection_settings")
    rotated = again[0].connection_settings
    assert rotated.opamp.certificate.ca_cert == pki.ca.read_bytes() + new_ca
    assert rotated.hash != first[0].connection_settings.hash


def test_an_http_agent_is_offered_the_http_url(tmp_path: Path) -> None:
    running = start_server(settings(tmp_path, free_port(), opamp_url="ws://opamp.example.com:4320/v1/opamp"))
    try:
        fleet = running.app[FLEET]

        message = pb.AgentToServer(
            instance_uid=b"\x64" * 16, capabilities=ACCEPTS, agent_description=WsAgent("", b"", "").description
        )

        async def handle() -> pb.ServerToAgent:
            return fleet.handle(message, token_environment="dev", session=Session(transport="http"))

        reply = asyncio.run_coroutine_threadsafe(handle(), running.loop).result(timeout=30)
    finally:
        running.stop()
    assert reply.connection_settings.opamp.destination_endpoint == "http://opamp.example.com:4320/v1/opamp"


def test_no_offer_without_a_url(tmp_path: Path) -> None:
    running = start_server(settings(tmp_path, free_port(), listen=f"0.0.0.0:{free_port()}"))
    try:
        replies = asyncio.run(talk(running.ws_url, b"\x65" * 16))
    finally:
        running.stop()
    assert not replies[0].HasField("connection_settings"), "an offer without destination_endpoint breaks the spec"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"opamp_url": "wss://opamp.example.com/v1/opamp"}, "opamp_ca_file: required"),
        ({"opamp_url": "opamp.example.com:4320"}, "is not a ws://"),
        ({"opamp_url": "ftp://opamp.example.com/v1/opamp"}, "is not a ws://"),
        ({"opamp_url": "ws://u:p@opamp.example.com/v1/opamp"}, "no user"),
        ({"opamp_ca_file": "/etc/ca.crt"}, "set opamp_url too"),
    ],
)
def test_incomplete_offer_settings_are_refused(tmp_path: Path, extra: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings(tmp_path, free_port(), **extra)


def test_a_tls_server_is_not_offered_as_plaintext(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    with pytest.raises(ValueError, match="serves TLS"):
        settings(
            tmp_path,
            free_port(),
            allow_insecure=False,
            tls={"cert_file": str(pki.server_cert), "key_file": str(pki.server_key)},
            opamp_url="ws://opamp.example.com/v1/opamp",
        )


def test_an_unreadable_ca_file_stops_the_server(tmp_path: Path) -> None:
    bad = tmp_path / "ca.crt"
    bad.write_text("not a certificate\n")
    chosen: ServerSettings = settings(
        tmp_path, free_port(), opamp_url="wss://opamp.example.com/v1/opamp", opamp_ca_file=str(bad)
    )
    with pytest.raises(OtelstackError, match="not PEM certificates"):
        build_app(chosen)
