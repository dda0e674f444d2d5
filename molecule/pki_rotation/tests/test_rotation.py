"""Renewal and rotation through playbooks/pki.yml, with the gateway serving throughout. File order matters."""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.environ["OTELSTACK_ROOT"])

from tests.lab.playbooks import run_playbook, tail

TLS = "/etc/otelcol-contrib/tls"
SERVED = (
    f"openssl s_client -connect 127.0.0.1:4317 -servername pki-gateway -CAfile {TLS}/ca.crt "
    f"-cert {TLS}/client.crt -key {TLS}/client.key -verify_return_error </dev/null 2>/dev/null "
    "| openssl x509 -noout -serial"
)


def on_disk(host) -> str:  # type: ignore[no-untyped-def]
    return host.check_output(f"openssl x509 -in {TLS}/server.crt -noout -serial")


def served(host, expected: str, within: float = 20.0) -> str:  # type: ignore[no-untyped-def]
    """The serial the gateway presents, waiting for its reload_interval to pick up `expected`."""
    deadline = time.monotonic() + within
    seen = ""
    while time.monotonic() < deadline:
        seen = host.run(SERVED).stdout.strip()
        if seen == expected:
            break
        time.sleep(1)
    return seen


def pid(host) -> str:  # type: ignore[no-untyped-def]
    """The collector process the supervisor runs (a restart by the supervisor would change it)."""
    return host.check_output("pgrep -u otelcol -f /opt/otelcol-contrib/active/otelcol-contrib")


def test_plain_run_keeps_valid_certificates(host) -> None:  # type: ignore[no-untyped-def]
    before = on_disk(host)
    result = run_playbook("pki.yml")
    assert result.returncode == 0, tail(result)
    assert on_disk(host) == before


def test_forced_renewal_is_served_without_a_restart(host) -> None:  # type: ignore[no-untyped-def]
    before, process = on_disk(host), pid(host)
    result = run_playbook("pki.yml", "pki_force_renew=true")
    assert result.returncode == 0, tail(result)
    renewed = on_disk(host)
    assert renewed != before
    assert served(host, renewed) == renewed
    assert pid(host) == process, "rotation must not restart the collector"


def test_key_rotation_gives_new_keys_that_work(host) -> None:  # type: ignore[no-untyped-def]
    old_key = host.file(f"{TLS}/server.key").sha256sum
    result = run_playbook("pki.yml", "pki_rotate_keys=true")
    assert result.returncode == 0, tail(result)
    assert host.file(f"{TLS}/server.key").sha256sum != old_key
    assert served(host, on_disk(host)) == on_disk(host)  # the client certificate was re-issued too


def test_certificate_near_expiry_is_renewed_by_a_plain_run(host) -> None:  # type: ignore[no-untyped-def]
    short = run_playbook("pki.yml", "pki_force_renew=true", "pki_cert_valid_days=2", "pki_renew_before_days=1")
    assert short.returncode == 0, tail(short)
    expiring = on_disk(host)
    result = run_playbook("pki.yml")  # 30 days before expiry by default: this one is due
    assert result.returncode == 0, tail(result)
    assert on_disk(host) != expiring
    # Re-issued for the default 90 days: still valid 60 days from now (the 2-day one was not).
    assert host.run(f"openssl x509 -in {TLS}/server.crt -noout -checkend {60 * 86400}").rc == 0
