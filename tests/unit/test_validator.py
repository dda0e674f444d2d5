"""Every validation rule fails on bad input with a message that says where and why."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from otelstack.catalog.components import canonical
from otelstack.model.loader import load_spec
from otelstack.render import build_collector
from otelstack.validate.collector import (
    Finding,
    has_tail_sampling,
    trace_routing_findings,
    validate_collector_config,
)

CONFIGS = Path(__file__).parents[2] / "configs"
LB = canonical("exporter", "loadbalancing")
OTLP_RX = canonical("receiver", "otlp")
OTLP_X = canonical("exporter", "otlp")
SPANMETRICS = canonical("connector", "spanmetrics")


@pytest.fixture(scope="module")
def gateway() -> dict[str, Any]:
    return build_collector(load_spec(CONFIGS, "prod"), "gateway")


@pytest.fixture(scope="module")
def agent() -> dict[str, Any]:
    return build_collector(load_spec(CONFIGS, "prod"), "agent-vm")


def errors(config: dict[str, Any], insecure_allowed: bool = False) -> list[str]:
    found = validate_collector_config(config, source="gw.yaml", insecure_allowed=insecure_allowed)
    return [str(f) for f in found if f.severity == "error"]


def one_error(config: dict[str, Any], expected: str, insecure_allowed: bool = False) -> None:
    found = errors(config, insecure_allowed)
    assert len(found) == 1, found
    assert expected in found[0], found[0]


def test_rendered_profiles_are_clean(gateway: dict[str, Any], agent: dict[str, Any]) -> None:
    assert errors(gateway) == []
    assert errors(agent) == []


def test_unknown_top_level_section(gateway: dict[str, Any]) -> None:
    bad = copy.deepcopy(gateway) | {"recievers": {}}
    one_error(bad, "gw.yaml: recievers: unknown top-level section; allowed: receivers, processors")


def test_missing_pipelines() -> None:
    assert errors({"receivers": {}}) == ["gw.yaml: service: missing: a config needs service.pipelines"]


def test_undefined_component_in_a_pipeline(gateway: dict[str, Any]) -> None:
    bad = copy.deepcopy(gateway)
    bad["service"]["pipelines"]["logs"]["processors"].insert(1, "attributes/ghost")
    one_error(bad, "service.pipelines.logs.processors: 'attributes/ghost' is used but not defined under processors")


def test_defined_but_unused_component(gateway: dict[str, Any]) -> None:
    bad = copy.deepcopy(gateway)
    bad["processors"]["batch/spare"] = {}
    one_error(bad, "processors.batch/spare: is defined but used by no pipeline")


def test_connector_must_be_used_on_both_sides(gateway: dict[str, Any]) -> None:
    bad = copy.deepcopy(gateway)
    del bad["service"]["pipelines"]["metrics/spanmetrics"]
    one_error(
        bad, f"connectors.{SPANMETRICS}: a connector must be an exporter of one pipeline and a receiver of another"
    )


def test_extension_defined_but_not_enabled_and_enabled_but_not_defined(gateway: dict[str, Any]) -> None:
    bad = copy.deepcopy(gateway)
    bad["extensions"]["pprof"] = {}
    one_error(bad, "extensions.pprof: is defined but not enabled in service.extensions")
    bad = copy.deepcopy(gateway)
    bad["service"]["extensions"].append("zpages")
    one_error(bad, "service.extensions: 'zpages' is enabled but not defined under extensions")


def test_references_to_undefined_extensions(gateway: dict[str, Any]) -> None:
    bad = copy.deepcopy(gateway)
    bad["receivers"][OTLP_RX]["protocols"]["grpc"]["auth"]["authenticator"] = "basicauth/nobody"
    one_error(bad, "refers to extension 'basicauth/nobody', which is not defined")
    bad = copy.deepcopy(gateway)
    tempo = f"{OTLP_X}/tempo"
    bad["exporters"][tempo]["sending_queue"]["storage"] = "file_storage/elsewhere"
    one_error(bad, f"exporters.{tempo}.sending_queue.storage: refers to extension 'file_storage/elsewhere'")


def test_unknown_and_removed_component_types(gateway: dict[str, Any]) -> None:
    bad = copy.deepcopy(gateway)
    bad["exporters"]["jaeger"] = {"endpoint": "jaeger:14250"}
    bad["service"]["pipelines"]["traces"]["exporters"].append("jaeger")
    found = errors(bad)
    assert len(found) == 1 and "exporter type 'jaeger' does not exist in otelcol-contrib" in found[0], found
    assert "OTLP" in found[0], "a removed component's message says what to use instead"
    bad = copy.deepcopy(gateway)
    bad["processors"]["frobnicate"] = {}
    bad["service"]["pipelines"]["logs"]["processors"].insert(1, "frobnicate")
    one_error(bad, "processors.frobnicate: processor type 'frobnicate' does not exist")


def test_deprecated_alias_is_a_warning_with_the_new_name(agent: dict[str, Any]) -> None:
    if LB == "loadbalancing":
        pytest.skip("the pinned release has no alias for loadbalancing")
    bad = copy.deepcopy(agent)
    bad["exporters"]["loadbalancing"] = bad["exporters"].pop(LB)
    bad["service"]["pipelines"]["traces"]["exporters"] = ["loadbalancing"]
    found = validate_collector_config(bad, source="a.yaml", insecure_allowed=False)
    assert [f.severity for f in found] == ["warning"]
    assert f"'loadbalancing' is a deprecated alias; the pinned release's name is '{LB}'" in str(found[0])


def test_unknown_config_key(gateway: dict[str, Any]) -> None:
    bad = copy.deepcopy(gateway)
    bad["receivers"][OTLP_RX]["protocols"]["grpc"]["max_recv_msg_size"] = 4
    one_error(bad, f"receivers.{OTLP_RX}.protocols.grpc.max_recv_msg_size: unknown key; allowed:")
    bad = copy.deepcopy(gateway)
    bad["processors"]["tail_sampling"]["decision_time"] = "10s"
    one_error(bad, "processors.tail_sampling.decision_time: unknown key; allowed:")


def test_memory_limiter_must_be_first(gateway: dict[str, Any]) -> None:
    bad = copy.deepcopy(gateway)
    procs = bad["service"]["pipelines"]["logs"]["processors"]
    procs.append(procs.pop(0))
    one_error(bad, "service.pipelines.logs.processors: memory_limiter must be first")
    bad = copy.deepcopy(gateway)
    bad["service"]["pipelines"]["logs"]["processors"] = []
    found = errors(bad)
    assert any("memory_limiter must be the first processor (none configured)" in f for f in found), found


def test_batch_before_tail_sampling_is_refused(gateway: dict[str, Any]) -> None:
    bad = copy.deepcopy(gateway)
    procs = bad["service"]["pipelines"]["traces"]["processors"]
    procs.remove("batch")
    procs.insert(1, "batch")
    one_error(bad, "batch runs before tail_sampling")


def test_pipeline_names_start_with_a_signal(gateway: dict[str, Any]) -> None:
    bad = copy.deepcopy(gateway)
    bad["service"]["pipelines"]["spans"] = bad["service"]["pipelines"].pop("logs")
    one_error(bad, "service.pipelines.spans: pipeline name must start with a signal")


def test_tls_off_skipped_verification_and_plaintext_endpoints(gateway: dict[str, Any]) -> None:
    tempo = f"{OTLP_X}/tempo"
    bad = copy.deepcopy(gateway)
    bad["exporters"][tempo]["tls"] = {"insecure": True}
    one_error(bad, f"exporters.{tempo}.tls.insecure: TLS is off on this hop")
    bad = copy.deepcopy(gateway)
    bad["exporters"][tempo]["tls"]["insecure_skip_verify"] = True
    one_error(bad, "tls.insecure_skip_verify: server certificates are not verified")
    loki = next(x for x in gateway["exporters"] if x.endswith("/loki"))
    bad = copy.deepcopy(gateway)
    bad["exporters"][loki]["endpoint"] = "http://loki:3100/otlp"
    one_error(bad, f"exporters.{loki}.endpoint: plaintext endpoint 'http://loki:3100/otlp'")
    for endpoint in ("tcp://ch.internal:9000", "clickhouse://ch.internal:9000?secure=false"):
        bad = copy.deepcopy(gateway)
        bad["exporters"]["clickhouse"]["endpoint"] = endpoint
        one_error(bad, f"exporters.clickhouse.endpoint: plaintext endpoint '{endpoint}': add ?secure=true")
    good = copy.deepcopy(gateway)
    good["exporters"]["clickhouse"]["endpoint"] = "tcp://ch.internal:9440?secure=true&compress=lz4"
    assert errors(good) == []
    bad = copy.deepcopy(gateway)
    del bad["receivers"][OTLP_RX]["protocols"]["http"]["tls"]
    one_error(bad, f"receivers.{OTLP_RX}.protocols.http: plaintext listener on 0.0.0.0:4318")
    assert errors(bad, insecure_allowed=True) == [], "environments that allow insecure accept plaintext"


def test_tail_sampling_needs_trace_id_routing(agent: dict[str, Any], gateway: dict[str, Any]) -> None:
    assert has_tail_sampling(gateway)
    assert trace_routing_findings({"agent.yaml": agent}, True) == []
    by_service = copy.deepcopy(agent)
    by_service["exporters"][LB]["routing_key"] = "service"
    found = trace_routing_findings({"agent.yaml": by_service}, True)
    assert [str(f) for f in found] == [
        f"agent.yaml: exporters.{LB}.routing_key: is 'service'; gateways run tail sampling, "
        "so traces must be routed by traceID"
    ]
    direct = copy.deepcopy(agent)
    direct["service"]["pipelines"]["traces"]["exporters"] = [f"{OTLP_X}/gateway"]
    found = trace_routing_findings({"agent.yaml": direct}, True)
    assert len(found) == 1 and "without trace-ID routing" in str(found[0])
    assert trace_routing_findings({"agent.yaml": direct}, False) == [], "no tail sampling, no constraint"


def test_finding_renders_severity() -> None:
    assert str(Finding("f: k", "m", "warning")) == "f: k: m (warning)"


def test_a_gateway_ingress_without_client_certificates_or_token_is_refused(gateway: dict[str, Any]) -> None:
    bad = copy.deepcopy(gateway)
    del bad["receivers"][OTLP_RX]["protocols"]["grpc"]["tls"]["client_ca_file"]
    one_error(bad, f"receivers.{OTLP_RX}.protocols.grpc.tls: no client_ca_file: a gateway accepts agents")
    bad = copy.deepcopy(gateway)
    del bad["receivers"][OTLP_RX]["protocols"]["http"]["auth"]
    one_error(bad, f"receivers.{OTLP_RX}.protocols.http.auth: no authenticator: a gateway requires")
    assert errors(bad, insecure_allowed=True) == [], "dev may run an open gateway"
