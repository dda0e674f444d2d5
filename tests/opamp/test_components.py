"""Available components (OpAMP AvailableComponents) and registry documents across server versions."""

from __future__ import annotations

import json

from opentelemetry._opamp.proto import opamp_pb2 as pb
from opentelemetry._opamp.proto.anyvalue_pb2 import AnyValue, KeyValue

from otelstack.opamp.fleet import Fleet, FleetSettings
from otelstack.opamp.store import AgentRecord, SqliteStore
from tests.opamp.conftest import CONFIGS

CAPS = pb.AgentCapabilities_ReportsStatus | pb.AgentCapabilities_ReportsAvailableComponents
ASK = pb.ServerToAgentFlags_ReportAvailableComponents


def components() -> pb.AvailableComponents:
    def detail(**subs: pb.ComponentDetails) -> pb.ComponentDetails:
        out = pb.ComponentDetails(
            metadata=[KeyValue(key="code.namespace", value=AnyValue(string_value="go.opentelemetry.io/x"))]
        )
        for name, sub in subs.items():
            out.sub_component_map[name].CopyFrom(sub)
        return out

    listing = pb.AvailableComponents(hash=b"\x07" * 32)
    listing.components["receivers"].CopyFrom(detail(otlp=detail(), file_log=detail()))
    listing.components["exporters"].CopyFrom(detail(load_balancing=detail()))
    return listing


def send(fleet: Fleet, seq: int, caps: int = CAPS, **fields: object) -> pb.ServerToAgent:
    message = pb.AgentToServer(instance_uid=b"\x05" * 16, sequence_num=seq, capabilities=caps, **fields)
    return fleet.handle(message, token_environment="dev")


def test_a_hash_the_registry_has_no_list_for_is_asked_for_then_stored_and_shown() -> None:
    fleet = Fleet(SqliteStore(":memory:"), FleetSettings(configs_dir=CONFIGS))
    only_hash = pb.AvailableComponents(hash=b"\x07" * 32)
    assert send(fleet, 0, available_components=only_hash).flags & ASK
    assert not send(fleet, 1, available_components=components()).flags & ASK
    assert not send(fleet, 2, available_components=only_hash).flags & ASK, "known now: not asked again"
    assert send(fleet, 3, available_components=pb.AvailableComponents(hash=b"\x08" * 32)).flags & ASK
    (agent,) = fleet.store.list_agents()
    view = fleet.view(agent)
    assert view["available_components"] == {"exporters": ["load_balancing"], "receivers": ["file_log", "otlp"]}
    assert agent.available_components["receivers"]["components"]["otlp"]["metadata"] == {
        "code.namespace": "go.opentelemetry.io/x"
    }


def test_an_agent_without_the_capability_is_never_asked() -> None:
    fleet = Fleet(SqliteStore(":memory:"), FleetSettings(configs_dir=CONFIGS))
    reply = send(
        fleet, 0, caps=pb.AgentCapabilities_ReportsStatus, available_components=pb.AvailableComponents(hash=b"\x01")
    )
    assert not reply.flags & ASK


def test_registry_documents_of_older_and_newer_servers_load() -> None:
    store = SqliteStore(":memory:")
    old = {"uid": "a", "environment": "dev"}  # written before later fields existed
    newer = {"uid": "b", "environment": "prod", "field_of_a_newer_server": [1, 2]}
    for doc in (old, newer):
        store._db.execute("INSERT INTO agents (uid, doc) VALUES (?, ?)", (doc["uid"], json.dumps(doc)))
    a, b = store.list_agents()
    assert a == AgentRecord(uid="a", environment="dev", first_seen=a.first_seen, last_seen=a.last_seen)
    assert (b.uid, b.environment, b.available_components) == ("b", "prod", {})
