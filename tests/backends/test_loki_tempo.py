"""Tempo and Loki renders: what they contain, otelstack's own checks, and the stand-in verifier (which
accepts every render and refuses misspelt keys, wrong types and refused combinations with clear messages)."""

from __future__ import annotations

import pytest
import yaml

from otelstack.backends.loki import INDEX_LABELS, LOKI_FILE, check_loki, render_loki
from otelstack.backends.tempo import TEMPO_FILE, check_tempo, render_tempo
from tests.backends.helpers import ENVIRONMENTS, env_spec, variant
from tests.backends.standin import load_schema, verify

S3 = {
    "backends": {"tempo": {"storage": {"kind": "s3", "bucket": "traces", "endpoint": "s3.eu-west-1.amazonaws.com:443"}}}
}
MTLS = {"security": {"tls": {"gateway_to_backends": "mtls"}}}


def _specs() -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = [(env, env_spec(env)) for env in ENVIRONMENTS]
    out.append(("prod+s3+mtls", variant("prod", {**S3, **MTLS})))
    return out


@pytest.mark.parametrize(("name", "spec"), _specs(), ids=[n for n, _ in _specs()])
def test_renders_pass_the_stand_in_and_our_checks(name: str, spec: object) -> None:
    loki = render_loki(spec)  # type: ignore[arg-type]
    tempo = render_tempo(spec)  # type: ignore[arg-type]
    assert verify("loki", loki[LOKI_FILE], quiet=True) == []
    assert verify("tempo", tempo[TEMPO_FILE], quiet=True) == []
    assert check_loki(loki) == [] and check_tempo(tempo) == []


def test_the_stand_in_says_it_is_one(capsys: pytest.CaptureFixture[str]) -> None:
    verify("loki", render_loki(env_spec("dev"))[LOKI_FILE])
    assert "STAND-IN" in capsys.readouterr().err


def _loki(env: str = "dev") -> dict:
    return yaml.safe_load(render_loki(env_spec(env))[LOKI_FILE])


def _tempo(env: str = "dev") -> dict:
    return yaml.safe_load(render_tempo(env_spec(env))[TEMPO_FILE])


def test_misspelt_key_is_refused_with_its_path() -> None:
    config = _loki()
    config["compactor"]["retention_enable"] = config["compactor"].pop("retention_enabled")
    problems = verify("loki", yaml.safe_dump(config), quiet=True)
    assert any("compactor.retention_enable: field retention_enable not found" in p for p in problems), problems
    config = _tempo()
    config["compactor"]["compaction"]["block_retentoin"] = "24h"
    problems = verify("tempo", yaml.safe_dump(config), quiet=True)
    assert any("compactor.compaction.block_retentoin: field block_retentoin not found" in p for p in problems)


def test_wrong_type_is_refused() -> None:
    config = _loki()
    config["server"]["http_listen_port"] = "3100"
    config["auth_enabled"] = "yes"
    problems = verify("loki", yaml.safe_dump(config), quiet=True)
    assert "server.http_listen_port: expected int, got str '3100'" in problems
    assert "auth_enabled: expected bool, got str 'yes'" in problems
    config = _tempo()
    config["metrics_generator"]["storage"]["remote_write"][0]["send_exemplars"] = "true"
    problems = verify("tempo", yaml.safe_dump(config), quiet=True)
    assert any(
        p.startswith("metrics_generator.storage.remote_write[0].send_exemplars: expected bool") for p in problems
    )


def test_tsdb_with_schema_v12_is_refused() -> None:
    config = _loki()
    config["schema_config"]["configs"][0]["schema"] = "v12"
    problems = verify("loki", yaml.safe_dump(config), quiet=True)
    assert len(problems) == 1 and "rule structured-metadata-needs-tsdb-v13" in problems[0], problems
    assert "schema 'v12'" in problems[0]
    # Our own check says the same before anything is written.
    assert any("schema` is 'v12'" in p for p in check_loki({LOKI_FILE: yaml.safe_dump(config)}))


def test_tsdb_index_period_and_retention_store_are_required() -> None:
    config = _loki()
    config["schema_config"]["configs"][0]["index"]["period"] = "168h"
    del config["compactor"]["delete_request_store"]
    problems = verify("loki", yaml.safe_dump(config), quiet=True)
    assert any("rule tsdb-index-period-24h" in p for p in problems)
    assert any("rule retention-needs-delete-request-store" in p for p in problems)


def test_tempo_s3_needs_bucket() -> None:
    config = yaml.safe_load(render_tempo(variant("prod", S3))[TEMPO_FILE])
    assert config["storage"]["trace"]["s3"] == {"bucket": "traces", "endpoint": "s3.eu-west-1.amazonaws.com:443"}
    del config["storage"]["trace"]["s3"]["bucket"]
    problems = verify("tempo", yaml.safe_dump(config), quiet=True)
    assert any("rule backend-settings-required" in p for p in problems)


def test_every_schema_block_names_its_upstream_source() -> None:
    for program in ("loki", "tempo"):
        schema = load_schema(program)
        for key, block in schema["root"].items():
            if isinstance(block, dict) and not key.startswith("_") and not {"enum", "list_enum"} & set(block):
                assert block.get("_source", {}).get("url", "").startswith("https://"), (program, key)
                assert block["_source"].get("release"), (program, key)


def test_retention_from_the_spec() -> None:
    spec = variant(
        "dev",
        {
            "retention": {
                "logs": {"hot_days": 5, "warm_days": 20},
                "traces": {"hot_days": 2, "warm_days": 9, "cold_days": 0, "archive_days": 400},
            }
        },
    )
    loki = yaml.safe_load(render_loki(spec)[LOKI_FILE])
    tempo = yaml.safe_load(render_tempo(spec)[TEMPO_FILE])
    assert loki["limits_config"]["retention_period"] == "480h"
    assert tempo["compactor"]["compaction"]["block_retention"] == "216h"  # the archive tier is outside Tempo


def test_loki_otlp_index_labels_and_tenancy() -> None:
    dev, prod = _loki("dev"), _loki("prod")
    rule = dev["limits_config"]["otlp_config"]["resource_attributes"]
    assert rule["ignore_defaults"] is True
    assert rule["attributes_config"] == [{"action": "index_label", "attributes": list(INDEX_LABELS)}]
    assert {"service.name", "k8s.namespace.name"} <= set(INDEX_LABELS)
    assert not {"service.instance.id", "k8s.pod.name", "trace_id"} & set(INDEX_LABELS)
    assert dev["auth_enabled"] is False and prod["auth_enabled"] is True


def test_tls_follows_the_backend_hop() -> None:
    dev, mtls = _tempo("dev"), yaml.safe_load(render_tempo(variant("prod", MTLS))[TEMPO_FILE])
    assert "tls" not in dev["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]
    grpc = mtls["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["tls"]
    assert grpc["client_ca_file"] == "/etc/tempo/tls/ca.crt" and grpc["min_version"] == "1.3"
    assert mtls["server"]["http_tls_config"]["client_auth_type"] == "RequireAndVerifyClientCert"
    write = mtls["metrics_generator"]["storage"]["remote_write"][0]
    assert write["send_exemplars"] is True and write["tls_config"]["cert_file"] == "/etc/tempo/tls/client.crt"
    assert mtls["overrides"]["defaults"]["metrics_generator"]["processors"] == ["service-graphs", "span-metrics"]


def test_our_checks_refuse_what_the_platform_forbids() -> None:
    config = _tempo()
    config["overrides"]["defaults"]["metrics_generator"]["processors"] = ["span-metrics"]
    config["metrics_generator"]["storage"]["remote_write"][0]["send_exemplars"] = False
    problems = check_tempo({TEMPO_FILE: yaml.safe_dump(config)})
    assert any("lacks ['service-graphs']" in p for p in problems)
    assert any("send_exemplars` is not true" in p for p in problems)
    config = _loki()
    config["compactor"]["retention_enabled"] = False
    assert any("retention_enabled" in p for p in check_loki({LOKI_FILE: yaml.safe_dump(config)}))


def test_every_index_label_is_explained_in_the_docs() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs/backends/loki.md").read_text()
    for attribute in INDEX_LABELS:
        label = attribute.replace(".", "_")
        assert f"| `{attribute}` (`{label}`) |" in doc, attribute


def test_renders_are_deterministic() -> None:
    from otelstack.backends.grafana import render_grafana

    for render in (render_loki, render_tempo, render_grafana):
        assert render(env_spec("prod")) == render(env_spec("prod"))


def test_tenant_headers_follow_auth_enabled() -> None:
    from otelstack.backends.loki import tenant_headers

    assert tenant_headers(env_spec("dev")) == {}
    assert tenant_headers(env_spec("prod")) == {"X-Scope-OrgID": "otelstack"}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_gateways_send_the_tenant_loki_requires(env: str) -> None:
    """Where Loki has auth_enabled, a push without X-Scope-OrgID is refused (401 "no org id"): the gateways'
    Loki exporter carries exactly the headers Loki's readers (Grafana) send, and none where auth is off."""
    from otelstack.backends.loki import build_loki, tenant_headers
    from otelstack.collector.blocks import Paths
    from otelstack.collector.gateway import render_gateway
    from otelstack.security.layout import VM

    spec = env_spec(env)
    exporter = render_gateway(spec, Paths.for_vm(VM), opamp_extension_enabled=False)["exporters"]["otlp_http/loki"]
    assert exporter.get("headers", {}) == tenant_headers(spec)
    assert bool(exporter.get("headers")) == build_loki(spec)["auth_enabled"]
