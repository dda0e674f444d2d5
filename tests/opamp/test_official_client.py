"""The official Python OpAMP client (opentelemetry-opamp-client) as a real peer over HTTP."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from typing import Any

from opentelemetry._opamp.client import OpAMPClient
from opentelemetry._opamp.proto import opamp_pb2 as pb

from otelstack.render import render_agent_config
from tests.opamp.conftest import ADMIN_TOKEN, CONFIGS, DEV_TOKEN, RunningServer, official_client


def client(server: RunningServer, token: str = DEV_TOKEN, environment: str = "dev") -> OpAMPClient:
    return official_client(server.http_url, token=token, environment=environment)


def api(server: RunningServer, path: str) -> Any:
    request = urllib.request.Request(server.http_url + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_register_receive_config_and_report_applied(server: RunningServer) -> None:
    peer = client(server)
    reply = peer.send(peer.build_full_state_message())
    expected = render_agent_config(CONFIGS, "dev", "lab", profile="agent-vm")
    assert reply.capabilities & pb.ServerCapabilities_OffersRemoteConfig
    assert reply.remote_config.config_hash == bytes.fromhex(expected.sha256)
    # Collector configs are YAML (the client's decode_remote_config only parses JSON, for SDK configs).
    assert list(reply.remote_config.config.config_map) == ["otelstack.yaml"]
    assert reply.remote_config.config.config_map["otelstack.yaml"].content_type == "text/yaml"
    body = reply.remote_config.config.config_map["otelstack.yaml"].body.decode()
    assert hashlib.sha256(body.encode()).hexdigest() == expected.sha256

    status = peer.update_remote_config_status(reply.remote_config.config_hash, pb.RemoteConfigStatuses_APPLIED)
    assert status is not None
    after = peer.send(peer.build_remote_config_status_response_message(status))
    assert not after.HasField("remote_config"), "an applied config is not sent again"

    heartbeat = peer.send(peer.build_heartbeat_message())
    assert not heartbeat.HasField("remote_config")
    assert not heartbeat.flags & pb.ServerToAgentFlags_ReportFullState

    (agent,) = api(server, "/api/agents")
    assert agent["environment"] == "dev" and agent["region"] == "lab" and agent["version"] == "0.159.0"
    assert agent["config"]["status"] == "APPLIED" and agent["config"]["compliant"] is True
    assert agent["config"]["last_good"] == expected.sha256


def test_failed_config_is_not_offered_again_and_shows(server: RunningServer) -> None:
    peer = client(server)
    reply = peer.send(peer.build_full_state_message())
    config_hash = reply.remote_config.config_hash
    status = peer.update_remote_config_status(config_hash, pb.RemoteConfigStatuses_FAILED, "receivers: bad endpoint")
    assert status is not None
    peer.send(peer.build_remote_config_status_response_message(status))
    for _ in range(3):
        assert not peer.send(peer.build_heartbeat_message()).HasField("remote_config")
    (agent,) = api(server, "/api/agents")
    assert agent["status"] == "config_failed"
    assert agent["config"]["error"] == "receivers: bad endpoint"
    assert agent["config"]["failed"] == config_hash.hex()


def test_sequence_gap_asks_for_the_full_state(server: RunningServer) -> None:
    peer = client(server)
    peer.send(peer.build_full_state_message())
    peer._sequence_num += 5  # messages lost in between
    reply = peer.send(peer.build_heartbeat_message())
    assert reply.flags & pb.ServerToAgentFlags_ReportFullState


def test_heartbeat_from_an_unknown_agent_asks_for_the_full_state(server: RunningServer) -> None:
    peer = client(server)
    reply = peer.send(peer.build_heartbeat_message())
    assert reply.flags & pb.ServerToAgentFlags_ReportFullState
    assert not reply.HasField("remote_config"), "no config before the agent says who it is"


def test_token_of_another_environment_is_refused(server: RunningServer) -> None:
    from tests.opamp.conftest import PROD_TOKEN

    peer = client(server, token=PROD_TOKEN, environment="dev")
    reply = peer.send(peer.build_full_state_message())
    assert reply.HasField("error_response")
    assert "this token is for environment 'prod'" in reply.error_response.error_message
    assert not reply.HasField("remote_config")
