"""The deployed server answers the official OpAMP client over HTTPS with the platform CA, and only with a token."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from opentelemetry._opamp.client import OpAMPClient
from opentelemetry._opamp.proto import opamp_pb2 as pb

from otelstack.render import render_agent_config

ROOT = Path(os.environ["OTELSTACK_ROOT"])
CA = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "pki" / "ca.crt"
TOKEN, ADMIN = "lab-opamp-token-0123456789", "lab-admin-token-0123456789"


@pytest.fixture(scope="module")
def url(host) -> str:  # type: ignore[no-untyped-def]
    address = host.ansible("setup", "filter=ansible_default_ipv4")["ansible_facts"]["ansible_default_ipv4"]["address"]
    return f"https://{address}:4320"


def test_service_is_hardened_and_reads_the_tls_keys_through_a_group(host) -> None:  # type: ignore[no-untyped-def]
    service = host.service("otelstack-opamp")
    assert service.is_running and service.is_enabled
    props = service.systemd_properties
    assert props["User"] == "otelstack-opamp" and "otelcol" in props["SupplementaryGroups"]
    assert props["ProtectSystem"] == "strict" and props["NoNewPrivileges"] == "yes"
    assert "/var/lib/otelstack-opamp" in props["ReadWritePaths"]


def test_settings_hold_no_secret_and_pass_the_check(host) -> None:  # type: ignore[no-untyped-def]
    settings = host.file("/etc/otelstack-opamp/server.yaml")
    assert (settings.user, settings.group, settings.mode) == ("root", "otelstack-opamp", 0o640)
    assert TOKEN not in settings.content_string and ADMIN not in settings.content_string
    assert host.file("/etc/otelstack-opamp/secrets/dev").mode == 0o640
    out = host.check_output(
        "/opt/otelstack-opamp/venv/bin/otelstack opamp serve --check --settings /etc/otelstack-opamp/server.yaml"
    )
    assert "settings ok: environments dev, TLS" in out


def test_official_client_registers_over_https_and_gets_the_rendered_config(url: str) -> None:
    peer = OpAMPClient(
        endpoint=f"{url}/v1/opamp",
        headers={"Authorization": f"Bearer {TOKEN}"},
        agent_identifying_attributes={"service.instance.id": "molecule-client"},
        agent_non_identifying_attributes={"deployment.environment.name": "dev", "cloud.region": "lab"},
        tls_certificate=str(CA),
        timeout_millis=10_000,
    )
    reply = peer.send(peer.build_full_state_message())
    expected = render_agent_config(ROOT / "configs", "dev", "lab", profile="agent-vm")
    assert reply.remote_config.config_hash == bytes.fromhex(expected.sha256)
    status = peer.update_remote_config_status(reply.remote_config.config_hash, pb.RemoteConfigStatuses_APPLIED)
    assert status is not None
    peer.send(peer.build_remote_config_status_response_message(status))


def test_no_token_no_service(url: str) -> None:
    body = pb.AgentToServer(instance_uid=b"\x01" * 16).SerializeToString()
    assert requests.post(f"{url}/v1/opamp", data=body, verify=str(CA), timeout=10).status_code == 401
    assert requests.get(f"{url}/api/agents", verify=str(CA), timeout=10).status_code == 401
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{url}/healthz", timeout=10)  # the platform CA is not a public one


def test_fleet_cli_lists_the_registered_agent(url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "otelstack.cli", "fleet", "--server", url, "--ca-file", str(CA), "list", "--json"],
        env={**os.environ, "OTELSTACK_OPAMP_ADMIN_TOKEN": ADMIN},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    agents = json.loads(result.stdout)
    assert [a["attributes"].get("service.instance.id") for a in agents] == ["molecule-client"]
    assert agents[0]["config"]["compliant"] is True
