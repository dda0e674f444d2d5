"""Verify the gateway: otelstack's config, certificates from the internal CA, and mTLS enforced on OTLP."""

from __future__ import annotations

import os
from pathlib import Path

from otelstack.render import render_agent_config

ROOT = Path(os.environ["OTELSTACK_ROOT"])
TLS = "/etc/otelcol-contrib/tls"

# Runs inside the gateway: a TLS 1.3 handshake to the OTLP gRPC port, verifying the server by its name.
HANDSHAKE = """
import socket, ssl, sys
ctx = ssl.create_default_context(cafile="{tls}/ca.crt")
if sys.argv[1] == "with-client-cert":
    ctx.load_cert_chain("{tls}/client.crt", "{tls}/client.key")
with socket.create_connection(("127.0.0.1", 4317), timeout=5) as raw:
    with ctx.wrap_socket(raw, server_hostname=sys.argv[2]) as conn:
        conn.sendall(b"x")
        try:
            data = conn.recv(1)
        except ssl.SSLError as exc:
            print("refused:", exc.reason); sys.exit(3)
        print("handshake:", conn.version())
""".format(tls=TLS)


def handshake(host, mode: str, name: str = "solo-gateway"):  # type: ignore[no-untyped-def]
    host.run(f"cat > /tmp/handshake.py <<'EOF'\n{HANDSHAKE}\nEOF")
    return host.run(f"python3 /tmp/handshake.py {mode} {name}")


def test_config_is_byte_identical_to_plan(host) -> None:  # type: ignore[no-untyped-def]
    expected = render_agent_config(ROOT / "configs", "dev", "lab", profile="gateway")
    assert host.file("/etc/otelcol-contrib/gateway.yaml").sha256sum == expected.sha256


def test_mtls_handshake_with_a_client_certificate(host) -> None:  # type: ignore[no-untyped-def]
    result = handshake(host, "with-client-cert")
    assert result.rc == 0, result.stdout + result.stderr
    assert "handshake: TLSv1.3" in result.stdout


def test_no_client_certificate_is_refused(host) -> None:  # type: ignore[no-untyped-def]
    result = handshake(host, "without-client-cert")
    assert result.rc != 0
    assert "CERTIFICATE_REQUIRED" in (result.stdout + result.stderr).upper()


def test_wrong_name_fails_verification(host) -> None:  # type: ignore[no-untyped-def]
    result = handshake(host, "with-client-cert", "not-a-gateway.example")
    assert result.rc != 0
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr


def test_key_and_certificate_files(host) -> None:  # type: ignore[no-untyped-def]
    for kind in ("server", "client"):
        key = host.file(f"{TLS}/{kind}.key")
        assert (key.user, key.group, key.mode) == ("root", "otelcol", 0o640)
        cert = host.file(f"{TLS}/{kind}.crt")
        assert (cert.user, cert.mode) == ("root", 0o644)
    assert host.file(TLS).mode == 0o750
    text = host.check_output(f"openssl x509 -in {TLS}/server.crt -noout -ext subjectAltName,extendedKeyUsage")
    assert "DNS:solo-gateway" in text and "IP Address:127.0.0.1" in text and "TLS Web Server Authentication" in text
    client = host.check_output(f"openssl x509 -in {TLS}/client.crt -noout -ext extendedKeyUsage")
    assert "TLS Web Client Authentication" in client
    assert host.run(f"openssl verify -CAfile {TLS}/ca.crt {TLS}/server.crt {TLS}/client.crt").rc == 0


def test_ca_key_never_reaches_the_host(host) -> None:  # type: ignore[no-untyped-def]
    assert host.run("find / -xdev -name 'ca.key' 2>/dev/null | grep -q .").rc != 0


def test_artefacts_came_through_the_verified_download_cache() -> None:
    cache = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "cache"
    names = sorted(p.name for p in cache.iterdir())
    assert any(n.startswith("otelcol-contrib_") and n.endswith(".tar.gz") for n in names), names
    assert any(n.endswith(".sha256") for n in names), names


def test_gateway_listens_on_all_interfaces(host) -> None:  # type: ignore[no-untyped-def]
    for spec in ("tcp://0.0.0.0:4317", "tcp://0.0.0.0:4318", "tcp://0.0.0.0:13133"):
        assert host.socket(spec).is_listening, spec
    assert host.service("opampsupervisor").is_running
