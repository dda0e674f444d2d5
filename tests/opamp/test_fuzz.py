"""Fuzzing the server with messages that parse but say strange things, and with mutated bytes.

Structure-aware: hypothesis builds AgentToServer messages with arbitrary descriptions (every AnyValue
kind, nested), health trees, config statuses and hashes, effective configs, package statuses, flags and
capabilities, for agents that may or may not be known. The fleet must answer every one (never raise),
keep its registry readable, and the live server must answer each over HTTP with 200 or 400 (never a
500) and keep serving.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry._opamp.proto import opamp_pb2 as pb
from opentelemetry._opamp.proto.anyvalue_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from otelstack.opamp.fleet import Fleet, FleetSettings
from otelstack.opamp.store import SqliteStore
from tests.opamp.conftest import ADMIN_TOKEN, CONFIGS, DEV_TOKEN, RunningServer

KEYS = st.sampled_from(
    [
        "deployment.environment.name",
        "cloud.region",
        "otelstack.profile",
        "k8s.namespace.name",
        "otelstack.agent_overrides",
        "service.version",
        "service.instance.id",
    ]
) | st.text(max_size=20)
SCALARS = st.one_of(
    st.builds(AnyValue, string_value=st.sampled_from(["dev", "prod", "lab", "gateway", "agent-k8s", "{}", "[]"])),
    st.builds(AnyValue, string_value=st.text(max_size=40)),
    st.builds(AnyValue, bool_value=st.booleans()),
    st.builds(AnyValue, int_value=st.integers(-(2**63), 2**63 - 1)),
    st.builds(AnyValue, double_value=st.floats(allow_nan=True)),
    st.builds(AnyValue, bytes_value=st.binary(max_size=16)),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.builds(lambda vs: AnyValue(array_value=ArrayValue(values=vs)), st.lists(inner, max_size=3)),
        st.builds(
            lambda kvs: AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in kvs])),
            st.lists(st.tuples(KEYS, inner), max_size=3),
        ),
    ),
    max_leaves=6,
)
ATTRIBUTES = st.lists(st.builds(KeyValue, key=KEYS, value=VALUES), max_size=6)


def with_children(health: pb.ComponentHealth, children: dict[str, pb.ComponentHealth]) -> pb.ComponentHealth:
    for name, child in children.items():
        health.component_health_map[name].CopyFrom(child)
    return health


HEALTH = st.recursive(
    st.builds(pb.ComponentHealth, healthy=st.booleans(), status=st.text(max_size=10), last_error=st.text(max_size=20)),
    lambda inner: st.builds(
        with_children,
        st.builds(pb.ComponentHealth, healthy=st.booleans()),
        st.dictionaries(st.text(max_size=8), inner, max_size=3),
    ),
    max_leaves=5,
)
HASHES = st.binary(max_size=40)
MESSAGES = st.builds(
    pb.AgentToServer,
    instance_uid=st.sampled_from([b"", b"\x01" * 16, b"\x02" * 16]) | st.binary(min_size=16, max_size=16),
    sequence_num=st.integers(0, 2**64 - 1),
    capabilities=st.integers(0, 2**64 - 1),
    flags=st.integers(0, 2**64 - 1),
    agent_description=st.none()
    | st.builds(pb.AgentDescription, identifying_attributes=ATTRIBUTES, non_identifying_attributes=ATTRIBUTES),
    health=st.none() | HEALTH,
    remote_config_status=st.none()
    | st.builds(
        pb.RemoteConfigStatus,
        last_remote_config_hash=HASHES,
        status=st.integers(0, 3),
        error_message=st.text(max_size=30),
    ),
    effective_config=st.none()
    | st.builds(
        lambda files: pb.EffectiveConfig(
            config_map=pb.AgentConfigMap(
                config_map={name: pb.AgentConfigFile(body=body) for name, body in files.items()}
            )
        ),
        st.dictionaries(st.text(max_size=8), st.binary(max_size=64), max_size=3),
    ),
    package_statuses=st.none()
    | st.builds(
        lambda name, version, status: pb.PackageStatuses(
            packages={name: pb.PackageStatus(name=name, agent_has_version=version, status=status)}
        ),
        st.text(max_size=10),
        st.text(max_size=10),
        st.integers(0, 5),
    ),
)


def a_fleet() -> Fleet:
    return Fleet(SqliteStore(":memory:"), FleetSettings(configs_dir=CONFIGS))


FLEET = a_fleet()


@given(st.lists(MESSAGES, min_size=1, max_size=4))
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_the_fleet_answers_any_well_formed_message(messages: list[pb.AgentToServer]) -> None:
    for message in messages:
        for environment in ("dev", None):
            reply = FLEET.handle(message, token_environment=environment)
            assert isinstance(reply, pb.ServerToAgent)
            assert pb.ServerToAgent.FromString(reply.SerializeToString()) == reply
    for agent in FLEET.store.list_agents():
        view = FLEET.view(agent)
        json.dumps(view, default=str)
        assert view["status"] in {"healthy", "unhealthy", "unknown", "config_failed", "disconnected"}


def post(server: RunningServer, body: bytes) -> int:
    request = urllib.request.Request(
        server.http_url + "/v1/opamp",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {DEV_TOKEN}", "Content-Type": "application/x-protobuf"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@given(message=MESSAGES, flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_live_server_answers_mutated_messages_with_200_or_400(
    server: RunningServer, message: pb.AgentToServer, flips: list[tuple[int, int]]
) -> None:
    body = bytearray(message.SerializeToString())
    for position, value in flips:
        if body:
            body[position % len(body)] = value
    assert post(server, bytes(body)) in (200, 400)
    health = urllib.request.urlopen(server.http_url + "/healthz", timeout=10)
    assert health.status == 200
    listing = urllib.request.Request(
        server.http_url + "/api/agents", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    with urllib.request.urlopen(listing, timeout=10) as response:
        assert isinstance(json.loads(response.read()), list)
