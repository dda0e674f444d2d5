"""After check mode and a real run: the host is converged (check mode did not stop the real run)."""

from __future__ import annotations


def test_real_run_converged_the_host(host) -> None:  # type: ignore[no-untyped-def]
    assert host.service("opampsupervisor").is_running
    assert host.socket("tcp://0.0.0.0:4317").is_listening
    assert host.file("/etc/otelcol-contrib/tls/server.crt").exists
