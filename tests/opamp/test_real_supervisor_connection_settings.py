"""Connection settings through OpAMP with the REAL opampsupervisor (0.158.0) over wss://.

The staging agent-vm host (its rendered supervisor config connects over wss:// with a CA file), against
the server serving TLS with the lab's test CA and offering complete connection settings (`opamp_url`,
`opamp_ca_file`). Measured here, and written up in docs/opamp.md ("The real opampsupervisor"):

* the supervisor accepts the offer (no "invalid configuration" line), reconnects with it — the offered
  endpoint, the Authorization header with its environment's token, the offered CA, verification on —
  and goes on reporting to the server;
* a CA rotation: the server's CA file becomes old + new CA; the changed offer reaches the agent on its
  next message, it reconnects and stays connected;
* an offered CA that does not verify the server: opampsupervisor 0.158.0 does not roll back (its
  rollback covers only errors while starting the client, and a WebSocket connection fails later, in the
  background): it retries with the bad settings and the server no longer hears from it, until the
  supervisor restarts on its file (the offered settings are kept in memory only).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry._opamp.proto import opamp_pb2 as pb

from tests.integration.pki_helpers import make_pki
from tests.opamp.conftest import free_port
from tests.opamp.supervisor_lab import TOKENS, Lab, LabServer, Supervisor, server_settings, start_lab_server, wait_for

APPLY_TIMEOUT = "5s"
HEARTBEAT_S = 1
CONNECTED = '"msg":"Connected to the OpAMP server."'
INVALID = "New OpAMP settings resulted in invalid configuration"


@dataclass
class TlsHost:
    lab: Lab
    server: LabServer
    ca_file: Path  # the server's opamp_ca_file, changed by the tests
    url: str


@pytest.fixture
def tls_host(tmp_path: Path) -> Iterator[TlsHost]:
    lab = Lab(tmp_path, "staging", None, "agent-vm")
    port = free_port()
    ca_file = tmp_path / "offered-ca.crt"
    ca_file.write_bytes(lab.pki.ca.read_bytes())
    url = f"wss://127.0.0.1:{port}/v1/opamp"
    settings = server_settings(
        tmp_path,
        port,
        lab.configs,
        lab.pki,
        heartbeat_interval_s=HEARTBEAT_S,
        opamp_url=url,
        opamp_ca_file=str(ca_file),
    )
    server = start_lab_server(settings, ca_file=lab.pki.ca)
    config = lab.supervisor_config(server, config_apply_timeout=APPLY_TIMEOUT)
    assert config["server"]["endpoint"] == url and "ca_file" in config["server"]["tls"]
    try:
        yield TlsHost(lab, server, ca_file, url)
    finally:
        server.stop()


def offers(server: LabServer, uid: str) -> list[tuple[float, pb.ServerToAgent]]:
    with server.lock:
        return [(e.at, e.reply) for e in server.exchanges if e.uid == uid and e.reply.HasField("connection_settings")]


def messages_after(server: LabServer, uid: str, at: float) -> int:
    with server.lock:
        return sum(1 for e in server.exchanges if e.uid == uid and e.message is not None and e.at > at)


def connects(supervisor: Supervisor) -> int:
    return supervisor.log().count(CONNECTED)


def the_uid(server: LabServer) -> str:
    agent = wait_for("the agent to register", server.the_agent, timeout=90)
    return str(agent["uid"])


def test_the_supervisor_reconnects_with_the_offer_and_follows_a_ca_rotation(tls_host: TlsHost) -> None:
    server, lab = tls_host.server, tls_host.lab
    supervisor = Supervisor(lab)
    try:
        uid = the_uid(server)
        # The first contact gets a complete offer; the supervisor applies it as its new server config.
        first = wait_for("a connection settings offer", lambda: offers(server, uid), timeout=30)
        at, reply = first[0]
        offer = reply.connection_settings.opamp
        assert offer.destination_endpoint == tls_host.url
        assert [(h.key, h.value) for h in offer.headers.headers] == [("Authorization", f"Bearer {TOKENS['staging']}")]
        assert offer.certificate.ca_cert == lab.pki.ca.read_bytes()
        assert offer.heartbeat_interval_seconds == HEARTBEAT_S
        wait_for("the supervisor to reconnect with the offer", lambda: connects(supervisor) >= 2, timeout=30)
        wait_for("the agent to report again after the reconnect", lambda: messages_after(server, uid, at + 1) >= 3)
        wait_for(
            "the agent to run its config, healthy",
            lambda: (a := server.the_agent()) and a["config"]["compliant"] and a["status"] == "healthy",
            timeout=90,
        )
        assert len(offers(server, uid)) == 1, "an unchanged offer is not sent again"

        # CA rotation: the server's CA file becomes the old and the new CA (the server's certificate is
        # still the old CA's); the changed offer carries both, and the agent reconnects and stays.
        new_ca = make_pki(lab.tmp / "new-ca").ca.read_bytes()
        before = connects(supervisor)
        tls_host.ca_file.write_bytes(lab.pki.ca.read_bytes() + new_ca)
        rotated = wait_for("the rotated offer", lambda: len(offers(server, uid)) >= 2 and offers(server, uid)[1])
        at, reply = rotated
        assert reply.connection_settings.opamp.certificate.ca_cert == lab.pki.ca.read_bytes() + new_ca
        assert reply.connection_settings.opamp.destination_endpoint == tls_host.url
        wait_for("the supervisor to reconnect after the rotation", lambda: connects(supervisor) > before, timeout=30)
        wait_for("the agent to report again after the rotation", lambda: messages_after(server, uid, at + 1) >= 3)
        time.sleep(3)
        assert server.the_agent()["connected"]  # type: ignore[index]
        assert INVALID not in supervisor.log()
        assert "Failed to connect to the OpAMP server" not in supervisor.log()
    finally:
        supervisor.stop()


def test_an_offered_ca_that_does_not_verify_the_server_is_not_rolled_back(tls_host: TlsHost) -> None:
    server, lab = tls_host.server, tls_host.lab
    supervisor = Supervisor(lab)
    try:
        uid = the_uid(server)
        wait_for("the supervisor to reconnect with the first offer", lambda: connects(supervisor) >= 2, timeout=30)
        tls_host.ca_file.write_bytes(make_pki(lab.tmp / "wrong-ca").ca.read_bytes())
        at, _ = wait_for("the bad offer", lambda: len(offers(server, uid)) >= 2 and offers(server, uid)[1])
        wait_for(
            "the supervisor to fail to connect with the offered CA",
            lambda: "Failed to connect to the OpAMP server" in supervisor.log(),
            timeout=30,
        )
        time.sleep(10)
        assert messages_after(server, uid, at + 2) == 0, "0.158.0 keeps retrying with the bad settings"
        assert INVALID not in supervisor.log()
        assert "x509" in supervisor.log() or "certificate" in supervisor.log()
    finally:
        supervisor.stop()
    # A restart goes back to its file (the offered settings live in memory only) and reconnects.
    tls_host.ca_file.write_bytes(lab.pki.ca.read_bytes())
    restarted_at = time.time()
    supervisor = Supervisor(lab)
    try:
        wait_for(
            "the restarted supervisor to report", lambda: messages_after(server, uid, restarted_at) >= 3, timeout=60
        )
    finally:
        supervisor.stop()
