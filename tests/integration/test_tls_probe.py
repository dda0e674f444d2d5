"""playbooks/files/tls_probe.py (what verify.yml runs on each agent) against the real collector's mTLS
listener, and against servers that behave in the ways a refusal can look on the wire."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from otelstack.dist.locate import locate
from tests.integration.pki_helpers import LabPki, make_pki


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mtls_config(pki: LabPki, otlp: int, health: int, metrics: int) -> dict[str, object]:
    tls = {
        "cert_file": str(pki.server_cert),
        "key_file": str(pki.server_key),
        "client_ca_file": str(pki.ca),
        "min_version": "1.3",
    }
    return {
        "extensions": {"health_check": {"endpoint": f"127.0.0.1:{health}"}},
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{otlp}", "tls": tls}}}},
        "exporters": {"nop": {}},
        "service": {
            "extensions": ["health_check"],
            "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["nop"]}},
            "telemetry": {
                "metrics": {"readers": [{"pull": {"exporter": {"prometheus": {"host": "127.0.0.1", "port": metrics}}}}]}
            },
        },
    }


def handshake(port: int, pki: LabPki, with_client_cert: bool) -> bool:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if with_client_cert:
        ctx.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(b"x")  # TLS 1.3: a missing client certificate surfaces on the first exchange
            tls.recv(1)
        return True
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return False


@contextlib.contextmanager
def serving(config: dict[str, object], tmp_path: Path, health: int) -> Iterator[subprocess.Popen[bytes]]:
    """The real otelcol-contrib (`make binaries`) on ``config``, once its health check answers."""
    binary = locate("otelcol-contrib")
    if binary is None:
        pytest.fail("otelcol-contrib is not built: run `make binaries`")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    log = (tmp_path / "collector.log").open("wb")
    proc = subprocess.Popen([binary, f"--config={path}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(f"http://127.0.0.1:{health}/", timeout=2).status == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the collector did not become healthy:\n{(tmp_path / 'collector.log').read_text()}")
            time.sleep(0.2)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


def test_the_real_collector_serves_health_metrics_and_an_mtls_receiver(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    otlp, health, metrics = free_port(), free_port(), free_port()
    with serving(mtls_config(pki, otlp, health, metrics), tmp_path, health):
        assert b"otelcol_process_uptime" in urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics").read()
        assert handshake(otlp, pki, with_client_cert=True)
        assert not handshake(otlp, pki, with_client_cert=False)


def probe(*args: str) -> tuple[int, dict[str, object]]:
    """playbooks/files/tls_probe.py, as verify.yml runs it on an agent."""
    script = Path(__file__).parents[2] / "playbooks" / "files" / "tls_probe.py"
    result = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=30, check=False
    )
    return result.returncode, json.loads(result.stdout)


def test_verify_probe_tells_accepted_refused_untrusted_and_down(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    other = make_pki(tmp_path / "other")
    otlp, health, metrics = free_port(), free_port(), free_port()
    with serving(mtls_config(pki, otlp, health, metrics), tmp_path, health):
        port = str(otlp)
        code, out = probe("localhost", port, str(pki.ca), str(pki.client_cert), str(pki.client_key))
        assert (code, out["outcome"], out["tls_version"]) == (0, "accepted", "TLSv1.3")
        code, out = probe("localhost", port, str(pki.ca))
        assert (code, out["outcome"]) == (3, "client-refused")
        code, out = probe("localhost", port, str(other.ca), str(other.client_cert), str(other.client_key))
        assert (code, out["outcome"]) == (4, "server-certificate-rejected")
    code, out = probe("localhost", str(free_port()), str(pki.ca))
    assert (code, out["outcome"]) == (5, "no-answer")


def test_a_client_without_a_certificate_is_always_told_it_was_refused(tmp_path: Path) -> None:
    """The real collector refuses a client without a certificate; whether its alert arrives before the
    close or not, the probe reports the refusal — twenty times in a row."""
    pki = make_pki(tmp_path / "pki")
    otlp, health, metrics = free_port(), free_port(), free_port()
    with serving(mtls_config(pki, otlp, health, metrics), tmp_path, health):
        outcomes = [probe("localhost", str(otlp), str(pki.ca)) for _ in range(20)]
    assert {(code, out["outcome"]) for code, out in outcomes} == {(3, "client-refused")}, outcomes


@pytest.mark.parametrize(
    ("server_does", "outcome", "reason"),
    [
        ("reset", "client-refused", "closed without a word after the handshake"),
        ("close", "client-refused", "closed without a word after the handshake"),
        ("speak", "accepted", None),
    ],
)
def test_verify_probe_reads_what_the_server_does_after_the_handshake(
    tmp_path: Path, server_does: str, outcome: str, reason: str | None
) -> None:
    """A server that resets or closes the connection right after the handshake (as one may when it refuses
    the client and its alert is lost) has refused the client; one that speaks first has accepted it."""
    pki = make_pki(tmp_path / "pki")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve_one() -> None:
            raw, _ = listener.accept()
            with ctx.wrap_socket(raw, server_side=True) as conn:
                if server_does == "reset":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                elif server_does == "speak":
                    conn.sendall(b"\0\0\0\4")  # the start of an HTTP/2 SETTINGS frame
                    time.sleep(1)

        server = threading.Thread(target=serve_one, daemon=True)
        server.start()
        code, out = probe("127.0.0.1", str(port), str(pki.ca))
        server.join(timeout=10)
    assert (code, out["outcome"], out["tls_version"]) == (0 if outcome == "accepted" else 3, outcome, "TLSv1.3"), out
    if reason is None:
        assert "reason" not in out, out
    else:
        assert str(out["reason"]).startswith(reason), out
