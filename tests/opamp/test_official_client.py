"""The official Python OpAMP client (opentelemetry-opamp-client) as a real peer over HTTP."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from typing import Any

from opentelemetry._opamp.client import OpAMPClient
from opentelemetry._opamp.proto import opamp_pb2 as pb

from otelstack.collector.supervisor import overrides_attribute
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


def test_host_overrides_in_the_description_are_rendered_like_the_hosts_own_file(server: RunningServer) -> None:
    # What the otel_collector role writes for a host with otelstack_agent_overrides: the same overrides
    # in the supervisor's description, so the config offered equals the host's file (level 5 on both).
    host_level = {"tiers": {"agent": {"log_include+": ["/srv/app/*.log"]}}}
    peer = official_client(server.http_url, attributes={"otelstack.agent_overrides": overrides_attribute(host_level)})
    reply = peer.send(peer.build_full_state_message())
    expected = render_agent_config(CONFIGS, "dev", "lab", profile="agent-vm", agent=host_level)
    assert expected.sha256 != render_agent_config(CONFIGS, "dev", "lab", profile="agent-vm").sha256
    assert reply.remote_config.config_hash == bytes.fromhex(expected.sha256)
    assert "/srv/app/*.log" in reply.remote_config.config.config_map["otelstack.yaml"].body.decode()


def test_server_overrides_stack_on_the_hosts_own(server: RunningServer) -> None:
    host_level = {"tiers": {"agent": {"log_include+": ["/srv/app/*.log"]}}}
    server_level = {"tiers": {"agent": {"log_include+": ["/srv/batch/*.log"]}}}
    peer = official_client(server.http_url, attributes={"otelstack.agent_overrides": overrides_attribute(host_level)})
    peer.send(peer.build_full_state_message())
    (agent,) = api(server, "/api/agents")
    put(server, f"/api/agents/{agent['uid']}/overrides", server_level)
    body = peer.send(peer.build_heartbeat_message()).remote_config.config.config_map["otelstack.yaml"].body.decode()
    assert "/srv/app/*.log" in body and "/srv/batch/*.log" in body


def test_host_overrides_that_are_not_a_json_object_get_no_config_and_say_why(server: RunningServer) -> None:
    peer = official_client(server.http_url, attributes={"otelstack.agent_overrides": "[1, 2"})
    reply = peer.send(peer.build_full_state_message())
    assert not reply.HasField("remote_config")
    (agent,) = api(server, "/api/agents")
    assert agent["config"]["desired"] == "" and not agent["config"]["compliant"]
    assert "otelstack.agent_overrides: not JSON" in agent["config"]["render_error"]


def test_host_overrides_are_validated_before_anything_is_offered(server: RunningServer) -> None:
    bad = overrides_attribute({"sampling": {"tail": {"probabilistic_percentage": 120}}})
    peer = official_client(server.http_url, attributes={"otelstack.agent_overrides": bad})
    assert not peer.send(peer.build_full_state_message()).HasField("remote_config")
    (agent,) = api(server, "/api/agents")
    assert agent["config"]["desired"] == ""
    assert "sampling.tail.probabilistic_percentage" in agent["config"]["render_error"]


def put(server: RunningServer, path: str, body: Any) -> Any:
    request = urllib.request.Request(
        server.http_url + path,
        data=json.dumps(body).encode(),
        method="PUT",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())
