"""Certificate rotation through OpAMP: an agent's CSR is signed by the server's client CA and offered back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from opentelemetry._opamp.proto import opamp_pb2 as pb

from otelstack.opamp import protocol
from tests.integration.pki_helpers import make_pki
from tests.opamp.conftest import DEV_TOKEN, free_port, settings, start_server
from tests.opamp.wsagent import CAPS, WsAgent


def csr_for(key: ec.EllipticCurvePrivateKey) -> bytes:
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "whatever-the-agent-says")]))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM)


async def ask(url: str, uid: bytes, csr: bytes) -> pb.ServerToAgent:
    agent = WsAgent(url, uid, DEV_TOKEN, capabilities=CAPS | pb.AgentCapabilities_AcceptsOpAMPConnectionSettings)
    await agent.connect()
    try:
        request = pb.ConnectionSettingsRequest()
        request.opamp.certificate_request.csr = csr
        return await agent.send(agent_description=agent.description, connection_settings_request=request)
    finally:
        await agent.ws.close()


def test_csr_is_signed_for_the_agent_and_offered_with_the_ca(tmp_path: Path) -> None:
    ca = make_pki(tmp_path / "ca")
    key_file = tmp_path / "ca" / "ca.key"
    assert key_file.exists(), "make_pki keeps the CA key next to the CA certificate"
    running = start_server(
        settings(tmp_path, free_port(), client_ca={"cert_file": str(ca.ca), "key_file": str(key_file)})
    )
    try:
        key = ec.generate_private_key(ec.SECP256R1())
        uid = b"\x5a" * 16
        reply = asyncio.run(ask(running.ws_url, uid, csr_for(key)))
    finally:
        running.stop()
    offered = reply.connection_settings.opamp.certificate
    cert = x509.load_pem_x509_certificate(offered.cert)
    ca_cert = x509.load_pem_x509_certificate(offered.ca_cert)
    assert ca_cert == x509.load_pem_x509_certificate(ca.ca.read_bytes())
    cert.verify_directly_issued_by(ca_cert)
    assert cert.public_key() == key.public_key()
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == protocol.uid_text(uid)
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not offered.private_key, "the key never leaves the agent"


def test_garbage_csr_gets_no_certificate(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ca = make_pki(tmp_path / "ca")
    running = start_server(
        settings(
            tmp_path, free_port(), client_ca={"cert_file": str(ca.ca), "key_file": str(tmp_path / "ca" / "ca.key")}
        )
    )
    try:
        with caplog.at_level("WARNING", logger="otelstack.opamp"):
            reply = asyncio.run(ask(running.ws_url, b"\x5b" * 16, b"-----BEGIN CERTIFICATE REQUEST-----\nnope\n"))
    finally:
        running.stop()
    assert not reply.connection_settings.opamp.certificate.cert
    assert reply.connection_settings.opamp.heartbeat_interval_seconds == 30
    assert "certificate request refused" in caplog.text
