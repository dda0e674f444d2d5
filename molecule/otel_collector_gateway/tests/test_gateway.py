"""Verify the gateway: otelstack's config, certificates from the internal CA, and mTLS enforced on OTLP.

dev has the DNS resolver: agents reach the gateways as `gateways.dev.internal` (the OTLP exporter's
`dns:///gateways.dev.internal:4317`, the load_balancing resolver's hostname). The real collector proves a
handshake to that name, both ways agents dial it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from otelstack.dist.checksums import parse_sums
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


def test_config_is_byte_identical_to_plan(host, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    # `otelstack plan` run as its own process (the CLI a user runs), not the renderer compared with itself.
    import hashlib
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("plan") / "build"
    cli = [str(Path(sys.executable).parent / "otelstack"), "plan", "--env", "dev", "--configs", str(ROOT / "configs")]
    subprocess.run([*cli, "--out", str(out), "--quiet"], check=True, timeout=600)
    expected = hashlib.sha256((out / "collector" / "gateway.yaml").read_bytes()).hexdigest()
    assert host.file("/etc/otelcol-contrib/gateway.yaml").sha256sum == expected
    assert expected == render_agent_config(ROOT / "configs", "dev", None, profile="gateway").sha256


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
    # The service name agents dial, from the spec through the lookup plugin (pki role, pki_gateway).
    assert "DNS:gateways.dev.internal" in text, text
    client = host.check_output(f"openssl x509 -in {TLS}/client.crt -noout -ext extendedKeyUsage")
    assert "TLS Web Client Authentication" in client
    assert host.run(f"openssl verify -CAfile {TLS}/ca.crt {TLS}/server.crt {TLS}/client.crt").rc == 0


def test_ca_key_never_reaches_the_host(host) -> None:  # type: ignore[no-untyped-def]
    assert host.run("find / -xdev -name 'ca.key' 2>/dev/null | grep -q .").rc != 0


def test_artefacts_came_through_the_verified_download_cache() -> None:
    # Downloaded from the mirror once each into the controller cache, verified against the pins of the
    # mirror's SHA256SUMS (otel_collector_sha256); the .sha256 files beside them are not fetched at all.
    ephemeral = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
    pins = parse_sums((ephemeral / "artefacts" / "SHA256SUMS").read_text())
    cached = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (ephemeral / "cache").iterdir()}
    assert any(n.startswith("otelcol-contrib_") and n.endswith(".tar.gz") for n in cached), sorted(cached)
    assert any(n.startswith("opampsupervisor_") for n in cached), sorted(cached)
    assert all(pins[name] == digest for name, digest in cached.items()), (cached, pins)


def test_gateway_listens_on_all_interfaces(host) -> None:  # type: ignore[no-untyped-def]
    for spec in ("tcp://0.0.0.0:4317", "tcp://0.0.0.0:4318", "tcp://0.0.0.0:13133"):
        assert host.socket(spec).is_listening, spec
    assert host.service("opampsupervisor").is_running


CLIENT = """
receivers:
  host_metrics:
    collection_interval: 1s
    scrapers: {load: {}}
exporters:
  otlp_grpc/service:
    endpoint: dns:///gateways.dev.internal:4317
    tls: &tls {ca_file: TLS/ca.crt, cert_file: TLS/client.crt, key_file: TLS/client.key, min_version: "1.3"}
    headers: &auth {authorization: Bearer lab-ingest-token}
  load_balancing:
    routing_key: metric
    protocol:
      otlp: {tls: *tls, headers: *auth, timeout: 5s}
    resolver:
      dns: {hostname: gateways.dev.internal, port: "4317", interval: 1s}
service:
  pipelines:
    metrics: {receivers: [host_metrics], exporters: [otlp_grpc/service, load_balancing]}
  telemetry:
    logs: {level: info}
    metrics:
      level: detailed
      readers: [{pull: {exporter: {prometheus: {host: 127.0.0.1, port: 18888}}}}]
"""


def test_real_collector_handshakes_with_the_service_name(host) -> None:  # type: ignore[no-untyped-def]
    """The real otelcol-contrib as an agent would dial: OTLP to dns:///gateways.dev.internal:4317 (TLS server
    name gateways.dev.internal) and load_balancing resolving that name (its sub-exporters dial IP:4317, so
    Go verifies the gateway's IP address SAN). Both must deliver, with no TLS error in the client's log."""
    address = host.check_output("hostname -I").split()[0]
    # podman bind-mounts /etc/hosts: append to it (the collector is built without cgo: Go reads the file).
    host.run(f"grep -q ' gateways.dev.internal$' /etc/hosts || echo '{address} gateways.dev.internal' >> /etc/hosts")
    host.run(f"mkdir -p /tmp/client && cat > /tmp/client/config.yaml <<'EOF'\n{CLIENT.replace('TLS/', TLS + '/')}\nEOF")
    run = host.run(
        "cd /tmp/client && (timeout 20 /opt/otelcol-contrib/active/otelcol-contrib --config=config.yaml > log 2>&1 &)"
        " ; sleep 12; python3 -c \"import urllib.request as u; print(u.urlopen('http://127.0.0.1:18888/metrics').read().decode())\""
    )
    log = host.file("/tmp/client/log").content_string
    assert run.rc == 0, (run.stderr, log[-3000:])
    sent = {
        line.split('exporter="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in run.stdout.splitlines()
        if line.startswith("otelcol_exporter_sent_metric_points") and 'exporter="' in line
    }
    failed = [line for line in run.stdout.splitlines() if line.startswith("otelcol_exporter_send_failed_metric_points")]
    print("client collector sent metric points:", sent, "failed:", failed)
    assert "certificate" not in log.lower() and "x509" not in log.lower(), log[-3000:]
    assert sent.get("otlp_grpc/service", 0) > 0, (sent, log[-3000:])
    assert sent.get("load_balancing", 0) > 0, (sent, log[-3000:])
