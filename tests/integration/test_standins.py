"""The stand-ins behave as the roles expect, so molecule scenarios that use them test something real."""

from __future__ import annotations

import contextlib
import json
import os
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

from otelstack.catalog.versions import otelcol_contrib
from tests.integration.pki_helpers import LabPki, make_pki
from tests.standins.build import build

GOLDEN = Path(__file__).parents[1] / "golden"


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("artefacts")
    archive, _supervisor = build(out, otelcol_contrib().version)
    subprocess.run(["tar", "-C", str(out), "-xzf", str(archive)], check=True)
    return out / "otelcol-contrib"


def run(standin: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(standin), *args], capture_output=True, text=True, timeout=30, check=False
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_version_says_it_is_a_stand_in(standin: Path) -> None:
    out = run(standin, "--version").stdout
    assert out.startswith(f"otelcol-contrib version {otelcol_contrib().version} ")
    assert "STAND-IN" in out


@pytest.mark.parametrize(
    "path", sorted(GOLDEN.glob("*/collector/*.yaml"))[:30], ids=lambda p: p.parent.parent.name + "/" + p.name
)
def test_validate_accepts_every_rendered_config(standin: Path, path: Path) -> None:
    result = run(standin, "validate", f"--config={path}")
    assert result.returncode == 0, result.stderr


def test_validate_rejects_broken_configs_with_a_reason(standin: Path, tmp_path: Path) -> None:
    good = yaml.safe_load((GOLDEN / "prod" / "collector" / "gateway.yaml").read_text())
    good["service"]["pipelines"]["logs"]["processors"].append("ghost")
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(good))
    result = run(standin, "validate", f"--config={broken}")
    assert result.returncode == 1
    assert "references processor 'ghost' which is not configured" in result.stderr
    marked = tmp_path / "marked.yaml"
    marked.write_text((GOLDEN / "prod" / "collector" / "gateway.yaml").read_text() + "otelstack_standin_reject: true\n")
    assert run(standin, "validate", f"--config={marked}").returncode == 1
    assert run(standin, "validate").returncode == 1


@contextlib.contextmanager
def serving(standin: Path, config: dict[str, object], tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen([sys.executable, str(standin), f"--config={path}"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for _ in range(50):
            line = proc.stdout.readline()
            if "Everything is ready" in line:
                break
        else:
            pytest.fail("stand-in did not become ready")
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


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


def test_serves_health_metrics_and_mtls_receivers(standin: Path, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    otlp, health, metrics = free_port(), free_port(), free_port()
    with serving(standin, mtls_config(pki, otlp, health, metrics), tmp_path):
        assert b"Server available" in urllib.request.urlopen(f"http://127.0.0.1:{health}/", timeout=5).read()
        assert b'stand_in="true"' in urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=5).read()
        assert handshake(otlp, pki, with_client_cert=True)
        assert not handshake(otlp, pki, with_client_cert=False)


def test_sighup_with_a_broken_config_keeps_serving(standin: Path, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    otlp, health, metrics = free_port(), free_port(), free_port()
    with serving(standin, mtls_config(pki, otlp, health, metrics), tmp_path) as proc:
        (tmp_path / "config.yaml").write_text("service: {}\n")
        os.kill(proc.pid, signal.SIGHUP)
        time.sleep(0.6)
        assert proc.poll() is None
        assert b"Server available" in urllib.request.urlopen(f"http://127.0.0.1:{health}/", timeout=5).read()


def test_a_broken_build_validates_but_dies_on_start(tmp_path: Path) -> None:
    archive, _ = build(tmp_path, "0.1.0", broken=True)
    subprocess.run(["tar", "-C", str(tmp_path), "-xzf", str(archive)], check=True)
    broken = tmp_path / "otelcol-contrib"
    config = GOLDEN / "dev" / "collector" / "agent-vm-static.yaml"
    assert run(broken, "validate", f"--config={config}").returncode == 0
    started = run(broken, f"--config={config}")
    assert started.returncode == 70
    assert "exiting on start" in started.stderr


def probe(*args: str) -> tuple[int, dict[str, object]]:
    """playbooks/files/tls_probe.py, as verify.yml runs it on an agent."""
    script = Path(__file__).parents[2] / "playbooks" / "files" / "tls_probe.py"
    result = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=30, check=False
    )
    return result.returncode, json.loads(result.stdout)


def test_verify_probe_tells_accepted_refused_untrusted_and_down(standin: Path, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    other = make_pki(tmp_path / "other")
    otlp, health, metrics = free_port(), free_port(), free_port()
    with serving(standin, mtls_config(pki, otlp, health, metrics), tmp_path):
        port = str(otlp)
        code, out = probe("localhost", port, str(pki.ca), str(pki.client_cert), str(pki.client_key))
        assert (code, out["outcome"], out["tls_version"]) == (0, "accepted", "TLSv1.3")
        code, out = probe("localhost", port, str(pki.ca))
        assert (code, out["outcome"]) == (3, "client-refused")
        code, out = probe("localhost", port, str(other.ca), str(other.client_cert), str(other.client_key))
        assert (code, out["outcome"]) == (4, "server-certificate-rejected")
    code, out = probe("localhost", str(free_port()), str(pki.ca))
    assert (code, out["outcome"]) == (5, "no-answer")


def test_a_refused_client_always_reads_the_alert(standin: Path, tmp_path: Path) -> None:
    """The stand-in drains a refused connection before closing it, so the client never gets a bare reset."""
    pki = make_pki(tmp_path / "pki")
    otlp, health, metrics = free_port(), free_port(), free_port()
    with serving(standin, mtls_config(pki, otlp, health, metrics), tmp_path):
        outcomes = [probe("localhost", str(otlp), str(pki.ca)) for _ in range(20)]
    assert {(code, out["outcome"], out["reason"]) for code, out in outcomes} == {
        (3, "client-refused", "TLSV13_ALERT_CERTIFICATE_REQUIRED")
    }


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
