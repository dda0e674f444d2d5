"""Structure of the Prometheus, rules and Alertmanager renders (the real tools run in
tests/integration/test_prometheus_alertmanager_check.py)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from otelstack.backends import rules
from otelstack.backends.alertmanager import render_alertmanager
from otelstack.backends.prometheus import PrometheusRenderError, render_prometheus
from otelstack.model.spec import SPAN_METRICS_BUCKETS_MS, PlatformSpec
from otelstack.render import build_collector
from otelstack.yamlout import dump

RECEIVERS: list[dict[str, Any]] = [
    {"name": "oncall", "kind": "pagerduty", "secret_file": "/etc/alertmanager/secrets/pagerduty"},
    {
        "name": "chat",
        "kind": "slack",
        "secret_file": "/etc/alertmanager/secrets/slack",
        "severities": ["critical", "warning"],
        "channel": "#observability",
    },
    {
        "name": "tickets",
        "kind": "webhook",
        "secret_file": "/etc/alertmanager/secrets/tickets",
        "severities": ["warning"],
    },
]


def spec(**kw: object) -> PlatformSpec:
    return PlatformSpec.model_validate({"environment": "dev", **kw})


def test_every_alert_has_a_firing_and_a_silent_case() -> None:
    for group in rules.groups(spec()):
        assert group.untested() == [], group.name
        tests = yaml.safe_load(dump(group.tests_yaml()))
        checked = {c["alertname"] for t in tests["tests"] for c in t["alert_rule_test"]}
        assert checked == {a.name for a in group.alerts}


def test_an_alert_without_cases_is_reported() -> None:
    group = rules.opamp_group()
    group.cases = [c for c in group.cases if any(c.expect.values())]  # keep only the firing case
    assert sorted(group.untested()) == sorted(a.name for a in group.alerts)


def test_four_burn_rate_tiers_per_slo() -> None:
    group = rules.slo_group(spec().alerting.slos[0])
    exprs = {a.name: a.expr for a in group.alerts}
    assert len(exprs) == 4
    assert "slo:sli_error:ratio_rate1h" in exprs["SLOBurnRate1h_availability"]
    assert "slo:sli_error:ratio_rate5m" in exprs["SLOBurnRate1h_availability"]
    assert "> 14.4 * 0.001" in exprs["SLOBurnRate1h_availability"]
    assert "> 6 * 0.001" in exprs["SLOBurnRate6h_availability"]
    assert (
        "> 3 * 0.001" in exprs["SLOBurnRate1d_availability"] and "ratio_rate2h" in exprs["SLOBurnRate1d_availability"]
    )
    assert (
        "> 1 * 0.001" in exprs["SLOBurnRate3d_availability"] and "ratio_rate6h" in exprs["SLOBurnRate3d_availability"]
    )
    recorded = {r["record"] for r in group.records}
    assert recorded == {f"slo:sli_error:ratio_rate{w}" for w in ("5m", "30m", "1h", "2h", "6h", "1d", "3d")}


def test_slo_rules_read_the_span_metrics_the_gateways_emit() -> None:
    text = "".join(render_prometheus(spec()).values())
    assert 'traces_span_metrics_calls_total{span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_ERROR"}' in text
    assert "traces_span_metrics_duration_milliseconds_bucket" in text


def test_latency_thresholds_are_the_gateway_buckets() -> None:
    """The model's list of bucket bounds is the gateway render's (a latency SLO needs a bound)."""
    config = build_collector(spec(), "gateway")
    connector = next(v for k, v in config["connectors"].items() if k.startswith("span"))
    buckets = connector["histogram"]["explicit"]["buckets"]
    as_ms = [int(float(b[:-2])) if b.endswith("ms") else int(float(b[:-1]) * 1000) for b in buckets]
    assert tuple(as_ms) == SPAN_METRICS_BUCKETS_MS


def test_prometheus_flags_and_config() -> None:
    files = render_prometheus(spec())
    flags = files["prometheus/flags.txt"].split()
    assert {
        "--web.enable-remote-write-receiver",
        "--web.enable-otlp-receiver",
        "--enable-feature=exemplar-storage",
    } <= set(flags)
    config = yaml.safe_load(files["prometheus/prometheus.yml"])
    assert config["storage"]["tsdb"]["retention"]["time"] == "15d"
    assert config["storage"]["exemplars"]["max_exemplars"] > 0
    assert "service.name" in config["otlp"]["promote_resource_attributes"]
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert {"otel-gateway", "otel-agent", "opamp-server", "tempo", "loki", "clickhouse"} <= set(jobs)
    assert jobs["otel-gateway"]["dns_sd_configs"][0]["port"] == 8888
    assert jobs["opamp-server"]["authorization"]["credentials_file"].startswith("/etc/prometheus/secrets/")
    assert jobs["loki"]["scheme"] == "https" and jobs["loki"]["tls_config"]["ca_file"]


def test_plaintext_backends_are_scraped_without_tls() -> None:
    s = spec(
        security={"allow_insecure": True, "tls": {"gateway_to_backends": "insecure"}},
        backends={
            "loki": {"endpoint": "http://loki:3100/otlp"},
            "prometheus": {"endpoint": "http://prom:9090/api/v1/write"},
        },
    )
    files = render_prometheus(s)
    assert "prometheus/web.yml" not in files
    jobs = {j["job_name"]: j for j in yaml.safe_load(files["prometheus/prometheus.yml"])["scrape_configs"]}
    assert "scheme" not in jobs["loki"] and "scheme" not in jobs["tempo"]


def test_retention_shorter_than_the_rules_read_is_refused() -> None:
    with pytest.raises(PrometheusRenderError, match=r"retention\.metrics\.hot_days"):
        render_prometheus(spec(retention={"metrics": {"hot_days": 3, "warm_days": 30, "cold_days": 0}}))


def test_receivers_reference_secret_files_only() -> None:
    config = yaml.safe_load(
        render_alertmanager(spec(alerting={"receivers": RECEIVERS}))["alertmanager/alertmanager.yml"]
    )
    by_name = {r["name"]: r for r in config["receivers"]}
    assert by_name["critical"]["pagerduty_configs"] == [
        {"routing_key_file": "/etc/alertmanager/secrets/pagerduty", "send_resolved": True}
    ]
    assert by_name["warning"]["webhook_configs"][0]["url_file"] == "/etc/alertmanager/secrets/tickets"
    assert "pagerduty_configs" not in by_name["warning"]
    assert by_name["warning"]["slack_configs"][0]["channel"] == "#observability"
    inline = {"routing_key", "service_key", "api_url", "url"}
    for receiver in config["receivers"]:
        for key, entries in receiver.items():
            if key.endswith("_configs"):
                assert not inline & {k for e in entries for k in e}, receiver


def test_routes_by_severity_and_inhibits_symptoms() -> None:
    config = yaml.safe_load(render_alertmanager(spec())["alertmanager/alertmanager.yml"])
    routes = config["route"]["routes"]
    assert [r["matchers"] for r in routes] == [['severity="critical"'], ['severity="warning"']]
    sources = [i["source_matchers"] for i in config["inhibit_rules"]]
    assert ['alertname="OTelCollectorDown"'] in sources


def test_receiver_spec_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="`channel` is set on receiver 'oncall'"):
        spec(alerting={"receivers": [{**RECEIVERS[0], "channel": "#x"}]})
    with pytest.raises(ValueError, match="names must be unique; repeated: chat"):
        spec(alerting={"receivers": [RECEIVERS[1], RECEIVERS[1]]})
    with pytest.raises(ValueError, match="secret_file"):
        spec(alerting={"receivers": [{**RECEIVERS[0], "secret_file": "s3cr3t-inline"}]})
