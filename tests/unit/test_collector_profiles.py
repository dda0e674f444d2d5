"""What each profile must do, asserted on the rendered data (the golden files catch any change; these say why)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from otelstack.catalog.components import canonical
from otelstack.model import PlatformSpec
from otelstack.model.loader import load_spec
from otelstack.render import PROFILES, build_collector, render_collector, render_supervisor_for
from otelstack.sizing import size_platform

CONFIGS = Path(__file__).parents[2] / "configs"
LB = canonical("exporter", "loadbalancing")
OTLP_X = canonical("exporter", "otlp")
TS = "tail_sampling"


def spec(**over: Any) -> PlatformSpec:
    return PlatformSpec.model_validate({"environment": "prod", **over})


@pytest.mark.parametrize("name", sorted(PROFILES))
@pytest.mark.parametrize("variant", ["normal", "emergency", "safe-minimal"])
def test_memory_limiter_is_first_everywhere(name: str, variant: str) -> None:
    config = build_collector(spec(), name, variant)  # type: ignore[arg-type]
    for pipeline in config["service"]["pipelines"].values():
        assert pipeline["processors"][0] == "memory_limiter"


@pytest.mark.parametrize(
    ("resolver", "expected", "balanced"),
    [
        (
            {"kind": "static", "hostnames": ["gw-a", "gw-b:4317"]},
            {"static": {"hostnames": ["gw-a:4317", "gw-b:4317"]}},
            "gw-a:4317",
        ),
        (
            {"kind": "dns", "dns_name": "gw.internal"},
            {"dns": {"hostname": "gw.internal", "port": "4317"}},
            "dns:///gw.internal:4317",
        ),
        (
            {"kind": "k8s", "k8s_service": "otel-gw.obs"},
            {"k8s": {"service": "otel-gw.obs", "ports": [4317]}},
            "dns:///otel-gw.obs.svc.cluster.local:4317",
        ),
    ],
)
def test_agents_balance_traces_by_trace_id_with_each_resolver(
    resolver: dict[str, Any], expected: dict[str, Any], balanced: str
) -> None:
    config = build_collector(spec(tiers={"agent": {"resolver": resolver}}), "agent-vm")
    lb = config["exporters"][LB]
    assert lb["routing_key"] == "traceID"
    assert lb["resolver"] == expected
    assert config["service"]["pipelines"]["traces"]["exporters"] == [LB]
    otlp = config["exporters"][f"{OTLP_X}/gateway"]
    assert otlp["endpoint"] == balanced and otlp["balancer_name"] == "round_robin"
    # dns and k8s resolvers dial addresses: the certificate is checked against the service name instead
    override = lb["protocol"]["otlp"]["tls"].get("server_name_override")
    assert override == (None if resolver["kind"] == "static" else balanced.removeprefix("dns:///").rsplit(":", 1)[0])
    assert "server_name_override" not in otlp["tls"], "dns:/// targets carry the name themselves"
    for signal in ("metrics", "logs"):
        assert config["service"]["pipelines"][signal]["exporters"] == [f"{OTLP_X}/gateway"]


@pytest.mark.parametrize(
    "resolver",
    [{"kind": "dns", "dns_name": "gateways.dev.internal"}, {"kind": "static", "hostnames": ["gw-a"]}, {"kind": "k8s"}],
    ids=lambda r: r["kind"],
)
def test_the_kubernetes_agent_always_resolves_the_gateways_headless_service(resolver: dict[str, Any]) -> None:
    config = build_collector(spec(tiers={"agent": {"resolver": resolver}}), "agent-k8s")
    lb = config["exporters"][LB]
    assert lb["resolver"] == {"k8s": {"service": "otel-gateway-headless.observability", "ports": [4317]}}
    fqdn = "otel-gateway-headless.observability.svc.cluster.local"
    assert lb["protocol"]["otlp"]["tls"]["server_name_override"] == fqdn
    assert config["exporters"][f"{OTLP_X}/gateway"]["endpoint"] == f"dns:///{fqdn}:4317"
    # The VM profiles keep the spec's resolver.
    assert next(iter(build_collector(spec(tiers={"agent": {"resolver": resolver}}), "agent-vm")["exporters"][LB]
                     ["resolver"])) == resolver["kind"]  # fmt: skip


def test_the_kubernetes_agent_needs_the_gateways_namespace_in_k8s_service() -> None:
    from otelstack.errors import ConfigValidationError

    with pytest.raises(ConfigValidationError, match=r"k8s_service.*<headless service>\.<namespace>"):
        build_collector(spec(tiers={"agent": {"resolver": {"k8s_service": "otel-gateway-headless"}}}), "agent-k8s")


def test_agent_hop_has_mtls_auth_and_a_disk_queue_on_the_balancer_itself() -> None:
    lb = build_collector(spec(), "agent-vm")["exporters"][LB]
    otlp = lb["protocol"]["otlp"]
    assert {"ca_file", "cert_file", "key_file"} <= set(otlp["tls"])
    assert otlp["auth"] == {"authenticator": "bearertokenauth/gateway"}
    # Upstream: every per-gateway sub-exporter shares protocol.otlp, so a storage there gives them one
    # ID and one file and all but one fail to start. The persistent queue belongs to the balancer.
    assert "storage" not in otlp["sending_queue"]
    assert lb["sending_queue"]["storage"] == "file_storage/queue"
    assert lb["retry_on_failure"]["enabled"] is True and otlp["retry_on_failure"]["enabled"] is True


def test_vm_agent_plaintext_listens_on_loopback_only_and_tls_opens_it() -> None:
    plain = build_collector(spec(), "agent-vm")["receivers"]["otlp"]["protocols"]
    assert plain["grpc"]["endpoint"] == "127.0.0.1:4317" and "tls" not in plain["grpc"]
    tls = build_collector(spec(security={"tls": {"apps_to_agent": "tls"}}), "agent-vm")["receivers"]["otlp"]
    assert tls["protocols"]["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert tls["protocols"]["grpc"]["tls"]["cert_file"].endswith("server.crt")


def test_vm_and_kubernetes_agents_collect_their_own_sources() -> None:
    vm = build_collector(spec(), "agent-vm")
    assert {canonical("receiver", "hostmetrics"), f"{canonical('receiver', 'filelog')}/host"} <= set(vm["receivers"])
    assert canonical("processor", "resourcedetection") in vm["processors"]
    assert vm["receivers"][f"{canonical('receiver', 'filelog')}/host"]["storage"] == "file_storage/checkpoints"
    k8s = build_collector(spec(), "agent-k8s")
    assert canonical("receiver", "kubeletstats") in k8s["receivers"]
    assert canonical("processor", "k8sattributes") in k8s["processors"]
    pods = k8s["receivers"][f"{canonical('receiver', 'filelog')}/pods"]
    assert pods["include"] == ["/var/log/pods/*/*/*.log"] and pods["exclude"], "own logs excluded"


def test_vm_agents_read_the_journal_only_when_enabled_and_kubernetes_agents_never() -> None:
    journal = f"{canonical('receiver', 'journald')}/host"
    file_log = f"{canonical('receiver', 'filelog')}/host"
    for name in ("agent-vm", "agent-vm-static"):
        assert journal not in build_collector(spec(), name)["receivers"], "off by default"
    on = spec(tiers={"agent": {"journald": {"enabled": True}}})
    for name in ("agent-vm", "agent-vm-static"):
        config = build_collector(on, name)
        # Everything journalctl is asked for, nothing more: units only when given; the cursor in the
        # checkpoints file_storage beside file_log's offsets, so a restart resumes where it stopped.
        rx = config["receivers"][journal]
        assert {k: v for k, v in rx.items() if k != "operators"} == {
            "start_at": "end",
            "priority": "info",
            "storage": "file_storage/checkpoints",
        }
        # The journal's PRIORITY becomes the record's severity (the emergency filter and Loki need it).
        [severity] = rx["operators"]
        assert severity["type"] == "severity_parser" and severity["parse_from"] == "body.PRIORITY"
        assert severity["preset"] == "none" and severity["mapping"]["error"] == "3"
        assert severity["on_error"] == "send_quiet", "an entry without PRIORITY passes"
        assert config["service"]["pipelines"]["logs"]["receivers"] == ["otlp", file_log, journal]
        assert journal not in config["service"]["pipelines"]["metrics"]["receivers"]
    k8s = build_collector(on, "agent-k8s")
    assert not any(r.startswith("journald") for r in k8s["receivers"]), "the Kubernetes agent reads pod logs"
    some = spec(tiers={"agent": {"journald": {"enabled": True, "units": ["ssh.service", "nginx*"], "priority": 4}}})
    rx = build_collector(some, "agent-vm")["receivers"][journal]
    assert rx["units"] == ["ssh.service", "nginx*"] and rx["priority"] == "4"


def test_agent_memory_limiter_is_sized_from_the_agent_limit() -> None:
    limiter = build_collector(spec(tiers={"agent": {"memory_limit_mib": 1000}}), "agent-vm")["processors"]
    assert limiter["memory_limiter"]["limit_mib"] == 800
    assert limiter["memory_limiter"]["spike_limit_mib"] == 200


def test_supervised_profiles_leave_the_opamp_extension_to_the_supervisor() -> None:
    assert "opamp" not in build_collector(spec(), "agent-vm")["extensions"]
    static = build_collector(spec(), "agent-vm-static")
    assert "opamp" in static["service"]["extensions"]
    server = static["extensions"]["opamp"]["server"]["ws"]
    assert server["endpoint"].startswith("wss://") and "ca_file" in server["tls"]
    assert server["headers"]["Authorization"] == "Bearer ${env:OTELSTACK_OPAMP_TOKEN}"


def test_gateway_ingress_requires_client_certificates_and_a_token_on_both_protocols() -> None:
    protocols = build_collector(spec(), "gateway")["receivers"]["otlp"]["protocols"]
    for proto in ("grpc", "http"):
        assert protocols[proto]["tls"]["client_ca_file"].endswith("ca.crt")
        assert protocols[proto]["auth"] == {"authenticator": "bearertokenauth/ingest"}


def test_gateway_pipelines_spanmetrics_before_sampling_and_exporters_per_signal() -> None:
    config = build_collector(spec(), "gateway")
    pipelines = config["service"]["pipelines"]
    spanmetrics = canonical("connector", "spanmetrics")
    assert pipelines["traces/spanmetrics"]["exporters"] == [spanmetrics]
    assert TS not in pipelines["traces/spanmetrics"]["processors"], "RED metrics see every span"
    assert pipelines["metrics/spanmetrics"]["receivers"] == [spanmetrics]
    assert "transform/cardinality" not in pipelines["metrics/spanmetrics"]["processors"]
    assert pipelines["traces"]["processors"].index(TS) < pipelines["traces"]["processors"].index("batch")
    assert pipelines["traces"]["exporters"] == [f"{OTLP_X}/tempo", "clickhouse"]
    assert pipelines["logs"]["exporters"] == [f"{canonical('exporter', 'otlphttp')}/loki", "clickhouse"]
    assert pipelines["metrics"]["exporters"] == [canonical("exporter", "prometheusremotewrite"), "clickhouse"]
    assert config["exporters"]["clickhouse"]["create_schema"] is False
    assert config["exporters"]["clickhouse"]["password"] == "${env:OTELSTACK_CLICKHOUSE_PASSWORD}"
    for exporter in (f"{OTLP_X}/tempo", "clickhouse"):
        assert config["exporters"][exporter]["sending_queue"]["storage"] == "file_storage/queue"


def test_gateway_span_metrics_keep_the_collector_instance_dimension() -> None:
    """The gateways' span metrics are told apart in Prometheus by collector.instance.id (tests/integration/
    test_data_path.py sees one series set per gateway there); excluding it is refused."""
    from otelstack.validate.collector import validate_collector_config

    config = build_collector(spec(), "gateway")
    connector = canonical("connector", "spanmetrics")
    assert "collector.instance.id" not in config["connectors"][connector].get("exclude_dimensions", [])
    assert validate_collector_config(config, source="gw.yaml", insecure_allowed=False) == []
    config["connectors"][connector]["exclude_dimensions"] = ["collector.instance.id"]
    found = validate_collector_config(config, source="gw.yaml", insecure_allowed=True)
    assert [(f.where, f.severity) for f in found] == [
        (f"gw.yaml: connectors.{connector}.exclude_dimensions", "error")
    ], found
    assert "Prometheus would keep one gateway's count at a time" in found[0].message


def test_clickhouse_trusts_the_platform_ca_like_every_backend() -> None:
    config = build_collector(spec(), "gateway")
    tempo_tls = config["exporters"][f"{OTLP_X}/tempo"]["tls"]
    assert config["exporters"]["clickhouse"]["tls"] == tempo_tls
    assert tempo_tls["ca_file"].endswith("ca.crt")


def test_routes_are_normalised_on_spans_before_span_metrics_aggregate() -> None:
    config = build_collector(spec(), "gateway")
    chain = config["service"]["pipelines"]["traces/spanmetrics"]["processors"]
    assert chain[-1] == "transform/routes"
    statements = config["processors"]["transform/routes"]["trace_statements"]
    assert 'replace_pattern(span.attributes["http.route"], "/orders/[0-9]+", "/orders/{id}")' in statements


def test_disabled_backends_drop_their_exporters() -> None:
    config = build_collector(spec(backends={"clickhouse": {"enabled": False}, "loki": {"enabled": False}}), "gateway")
    assert "clickhouse" not in config["exporters"]
    assert "logs" not in config["service"]["pipelines"]


def test_gateway_memory_comes_from_sizing() -> None:
    s = spec(load={"spans_per_second": 50_000})
    limiter = build_collector(s, "gateway")["processors"]["memory_limiter"]
    assert limiter["limit_mib"] == size_platform(s).gateway.memory_limiter_limit_mib


def test_redaction_covers_spans_span_events_logs_and_log_bodies_and_escapes_dollars() -> None:
    redact = build_collector(spec(), "gateway")["processors"]["transform/redact"]
    groups, logs = redact["trace_statements"], redact["log_statements"]
    # Two groups: in one list the span statements would run once per span event (test_rendered_ottl.py).
    assert [{st.split("(", 1)[1].split(".", 1)[0] for st in g["statements"]} for g in groups] == [
        {"span"},
        {"spanevent"},
    ]
    traces = [st for g in groups for st in g["statements"]]
    for context in ("span", "spanevent"):
        assert f'delete_key({context}.attributes, "http.request.header.authorization")' in traces
    assert (
        'set(span.attributes["user.email"], SHA256(span.attributes["user.email"])) where '
        'span.attributes["user.email"] != nil' in traces
    )
    assert any('"$${1}***"' in st for st in traces), "collector expansion must not eat ${1}"
    assert 'delete_key(log.attributes, "password")' in logs
    assert 'delete_key(log.body, "password") where IsMap(log.body)' in logs
    assert any(s.startswith("replace_pattern(log.body,") and "password" in s for s in logs)


def test_a_redaction_rule_covers_the_current_semantic_convention_name_too() -> None:
    groups = build_collector(spec(), "gateway")["processors"]["transform/redact"]["trace_statements"]
    traces = [st for g in groups for st in g["statements"]]
    assert any(s.startswith('replace_pattern(span.attributes["db.statement"]') for s in traces)
    assert any(s.startswith('replace_pattern(span.attributes["db.query.text"]') for s in traces)


def test_cardinality_controls_on_application_metric_datapoints() -> None:
    config = build_collector(spec(), "gateway")
    card = config["processors"]["transform/cardinality"]["metric_statements"]
    assert 'replace_pattern(datapoint.attributes["http.route"], "/users/[0-9]+", "/users/{id}")' in card
    assert 'delete_key(datapoint.attributes, "trace_id")' in card
    assert config["service"]["pipelines"]["metrics"]["receivers"] == ["otlp"]


def test_tail_sampling_or_policies_by_default() -> None:
    s = spec(sampling={"tail": {"critical_services": ["pay"], "baseline_spans_per_second": 50}})
    policies = build_collector(s, "gateway")["processors"][TS]["policies"]
    assert [p["name"] for p in policies] == [
        "errors",
        "latency",
        "probabilistic",
        "critical-services",
        "debug",
        "baseline",
    ]
    assert policies[-1] == {"name": "baseline", "type": "rate_limiting", "rate_limiting": {"spans_per_second": 50}}


def test_weights_render_a_real_composite_policy() -> None:
    s = spec(
        sampling={
            "tail": {"composite": {"max_total_spans_per_second": 900, "errors": 60, "latency": 30, "probabilistic": 10}}
        }
    )
    policies = build_collector(s, "gateway")["processors"][TS]["policies"]
    composite = policies[0]["composite"]
    assert policies[0]["type"] == "composite"
    assert composite["max_total_spans_per_second"] == 900
    assert [p["name"] for p in composite["composite_sub_policy"]] == composite["policy_order"]
    assert composite["rate_allocation"] == [
        {"policy": "errors", "percent": 60},
        {"policy": "latency", "percent": 30},
        {"policy": "probabilistic", "percent": 10},
    ]
    assert {p["name"] for p in policies[1:]} == {"debug"}, "weighted policies live only inside the composite"


def test_emergency_overlay_keeps_errors_and_critical_services_capped_and_one_percent_of_the_rest() -> None:
    s = spec(sampling={"tail": {"critical_services": ["pay"]}}, emergency={"drop_services_regex": "batch-.*"})
    config = build_collector(s, "gateway", "emergency")
    keep, rest = config["processors"][TS]["policies"]
    assert rest == {"name": "probabilistic", "type": "probabilistic", "probabilistic": {"sampling_percentage": 1.0}}
    assert keep["type"] == "composite"
    assert keep["composite"]["max_total_spans_per_second"] == 500
    assert [p["type"] for p in keep["composite"]["composite_sub_policy"]] == ["status_code", "string_attribute"]
    assert keep["composite"]["composite_sub_policy"][1]["string_attribute"]["values"] == ["pay"]
    emergency = config["processors"]["filter/emergency"]
    assert 'IsMatch(resource.attributes["service.name"], "batch-.*")' in emergency["trace_conditions"]
    assert any("SEVERITY_NUMBER_WARN" in c for c in emergency["log_conditions"])
    assert any("SEVERITY_NUMBER_UNSPECIFIED and not" in c for c in emergency["log_conditions"]), "file logs too"
    for name, pipeline in config["service"]["pipelines"].items():
        if name.startswith(("traces", "logs")):
            assert pipeline["processors"][:2] == ["memory_limiter", "filter/emergency"]
        else:
            assert "filter/emergency" not in pipeline["processors"]
    agent = build_collector(spec(), "agent-vm", "emergency")
    assert agent["service"]["pipelines"]["logs"]["processors"][1] == "filter/emergency"


def test_emergency_overlay_without_a_service_regex_filters_logs_only() -> None:
    config = build_collector(spec(), "gateway", "emergency")
    assert "trace_conditions" not in config["processors"]["filter/emergency"]
    assert "filter/emergency" not in config["service"]["pipelines"]["traces"]["processors"]
    assert config["service"]["pipelines"]["logs"]["processors"][:2] == ["memory_limiter", "filter/emergency"]


def test_safe_minimal_keeps_transport_security_and_redaction_and_drops_everything_else() -> None:
    full = build_collector(spec(), "gateway")
    minimal = build_collector(spec(), "gateway", "safe-minimal")
    assert set(minimal["processors"]) == {"memory_limiter", "batch", "transform/redact"}
    assert minimal["processors"]["transform/redact"] == full["processors"]["transform/redact"]
    assert list(minimal["receivers"]) == ["otlp"]
    assert minimal["receivers"]["otlp"] == full["receivers"]["otlp"], "same TLS and auth on ingress"
    for name, exporter in minimal["exporters"].items():
        assert exporter == full["exporters"][name]
    assert "connectors" not in minimal
    chains = {name: p["processors"] for name, p in minimal["service"]["pipelines"].items()}
    assert chains == {
        "traces": ["memory_limiter", "transform/redact", "batch"],
        "metrics": ["memory_limiter", "batch"],
        "logs": ["memory_limiter", "transform/redact", "batch"],
    }
    agent = build_collector(spec(), "agent-vm", "safe-minimal")
    assert set(agent["processors"]) == {"memory_limiter", "batch"}, "agents redact nothing; gateways do"


def test_collector_overrides_merge_and_are_validated() -> None:
    s = spec(collector_overrides={"gateway": {"processors": {"batch": {"timeout": "5s"}}}})
    assert build_collector(s, "gateway")["processors"]["batch"]["timeout"] == "5s"
    bad = spec(collector_overrides={"gateway": {"processors": {"batch": {"timeout_s": 5}}}})
    with pytest.raises(Exception, match=r"processors.batch.timeout_s: unknown key"):
        render_collector(bad, "gateway")


def test_agent_level_changes_only_that_agent() -> None:
    from otelstack.render import render_agent_config

    base = render_agent_config(CONFIGS, "prod", profile="agent-vm")
    debug = render_agent_config(
        CONFIGS, "prod", profile="agent-vm", agent={"tiers": {"agent": {"log_include+": ["/srv/app/*.log"]}}}
    )
    assert base.sha256 != debug.sha256 and "/srv/app/*.log" in debug.text
    assert render_agent_config(CONFIGS, "prod", profile="agent-vm").sha256 == base.sha256


def test_supervisor_config_points_at_the_rendered_file_and_enables_rollback() -> None:
    import yaml

    text = render_supervisor_for(load_spec(CONFIGS, "prod"), "gateway").text
    sup = yaml.safe_load(text)
    assert sup["agent"]["config_files"][0] == "/etc/otelcol-contrib/gateway.yaml"
    assert sup["agent"]["startup_fallback_configs"] == ["/etc/otelcol-contrib/gateway.yaml"]
    assert sup["agent"]["automatic_config_rollback"] is True
    assert sup["capabilities"]["accepts_remote_config"] is True
    with pytest.raises(Exception, match="not supervised"):
        render_supervisor_for(load_spec(CONFIGS, "prod"), "gateway-static")


def test_supervisor_carries_the_hosts_agent_level_to_the_opamp_server() -> None:
    import json

    import yaml

    from otelstack.collector.supervisor import decode_overrides_attribute
    from otelstack.render import render_supervisor_config

    level = {
        "tiers": {"agent": {"log_include+": ["/srv/app/*.log"]}},
        "security": {"opamp": {"endpoint": "wss://o:1/v1/opamp"}},
    }
    sup = yaml.safe_load(render_supervisor_config(CONFIGS, "prod", profile="agent-vm", agent=level).text)
    attributes = sup["agent"]["description"]["non_identifying_attributes"]
    value = attributes["otelstack.agent_overrides"]
    assert json.loads(decode_overrides_attribute(value)) == level
    # Canonical (sorted, compact): the same overrides give the same bytes on every run.
    canonical_json = json.dumps(level, sort_keys=True, separators=(",", ":"))
    assert decode_overrides_attribute(value) == canonical_json
    # No quote in the value: opampsupervisor pastes it unescaped into a double-quoted YAML string.
    assert value.startswith("base64:") and '"' not in value and "'" not in value
    assert decode_overrides_attribute(canonical_json) == canonical_json, "the plain JSON form is still read"
    # The agent level applies to the supervisor's own settings too.
    assert sup["server"]["endpoint"] == "wss://o:1/v1/opamp"
    plain = yaml.safe_load(render_supervisor_config(CONFIGS, "prod", profile="agent-vm").text)
    assert "otelstack.agent_overrides" not in plain["agent"]["description"]["non_identifying_attributes"]
    with pytest.raises(Exception, match=r"sampling.tail.probabilistic_percentage"):
        render_supervisor_config(CONFIGS, "prod", agent={"sampling": {"tail": {"probabilistic_percentage": 120}}})


def test_a_transform_mixing_span_and_spanevent_statements_in_one_group_is_refused() -> None:
    from otelstack.validate.collector import validate_collector_config

    config = build_collector(spec(), "gateway")
    groups = config["processors"]["transform/redact"]["trace_statements"]
    config["processors"]["transform/redact"]["trace_statements"] = [st for g in groups for st in g["statements"]]
    found = validate_collector_config(config, source="gw.yaml", insecure_allowed=True)
    assert [f.where for f in found] == ["gw.yaml: processors.transform/redact.trace_statements"], found
    assert "spans without events are not changed" in found[0].message
    only_spans = {"trace_statements": ['delete_key(span.attributes, "password")']}
    config["processors"]["transform/redact"] = only_spans
    assert validate_collector_config(config, source="gw.yaml", insecure_allowed=True) == []
