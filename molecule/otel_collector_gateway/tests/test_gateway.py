"""Verify the gateway: otelstack's config, certificates from the internal CA, and mTLS enforced on OTLP."""

from __future__ import annotations

import json
import os
from pathlib import Path

from otelstack.render import render_agent_config

ROOT = Path(os.environ["OTELSTACK_ROOT"])
TLS = "/etc/otelcol-contrib/tls"

PROBE = (ROOT / "playbooks" / "files" / "tls_probe.py").read_text()


def handshake(host, with_client_cert: bool, name: str = "solo-gateway") -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    """verify.yml's TLS probe, run inside the gateway against its OTLP gRPC port: (exit code, outcome)."""
    host.run(f"cat > /tmp/tls_probe.py <<'EOF'\n{PROBE}\nEOF")
    client = f" {TLS}/client.crt {TLS}/client.key" if with_client_cert else ""
    # The probe connects to the name and verifies the server's certificate against that same name.
    result = host.run(f"python3 /tmp/tls_probe.py {name} 4317 {TLS}/ca.crt{client}")
    return result.rc, json.loads(result.stdout)


def test_config_is_byte_identical_to_plan(host) -> None:  # type: ignore[no-untyped-def]
    expected = render_agent_config(ROOT / "configs", "dev", "lab", profile="gateway")
    assert host.file("/etc/otelcol-contrib/gateway.yaml").sha256sum == expected.sha256


def test_mtls_handshake_with_a_client_certificate(host) -> None:  # type: ignore[no-untyped-def]
    rc, outcome = handshake(host, with_client_cert=True)
    assert (rc, outcome["outcome"], outcome["tls_version"]) == (0, "accepted", "TLSv1.3"), outcome
    assert outcome["server_subject"]["commonName"] == "solo-gateway", outcome


def test_no_client_certificate_is_refused(host) -> None:  # type: ignore[no-untyped-def]
    rc, outcome = handshake(host, with_client_cert=False)
    assert (rc, outcome["outcome"]) == (3, "client-refused"), outcome
    assert "CERTIFICATE_REQUIRED" in outcome["reason"].upper(), outcome


def test_wrong_name_fails_verification(host) -> None:  # type: ignore[no-untyped-def]
    # 127.0.0.2 reaches the same listener, but no certificate name or address matches it.
    rc, outcome = handshake(host, with_client_cert=True, name="127.0.0.2")
    assert (rc, outcome["outcome"]) == (4, "server-certificate-rejected"), outcome
    assert "mismatch" in outcome["reason"].lower(), outcome


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
