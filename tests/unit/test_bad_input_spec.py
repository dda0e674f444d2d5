"""Issue 9, the merged spec: every model error names the file and key that set the offending value and
says what is allowed; security and endpoint rules cover every hop; the append marker is unambiguous.

Each test names the case of the issue it covers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from otelstack import cli
from otelstack.errors import SpecError
from otelstack.model.loader import load_spec
from otelstack.render import build_collector

BACKENDS = {
    "clickhouse": "tcp://clickhouse.prod.internal:9440?secure=true",
    "tempo": "tempo.prod.internal:4317",
    "loki": "https://loki.prod.internal:3100/otlp",
    "prometheus": "https://prometheus.prod.internal:9090/api/v1/write",
}
ENDPOINTS = "backends:\n" + "".join(f"  {name}: {{endpoint: {url!r}}}\n" for name, url in BACKENDS.items())
GLOBAL = "sampling: {tail: {probabilistic_percentage: 10}}\n"


def configs(
    tmp_path: Path,
    env_doc: str = ENDPOINTS,
    *,
    region_doc: str | None = None,
    global_doc: str = GLOBAL,
    env: str = "prod",
) -> Path:
    (tmp_path / "global").mkdir(exist_ok=True)
    (tmp_path / "global" / "platform.yaml").write_text(global_doc)
    (tmp_path / env).mkdir(exist_ok=True)
    (tmp_path / env / "platform.yaml").write_text(env_doc)
    if region_doc is not None:
        (tmp_path / env / "eu").mkdir(exist_ok=True)
        (tmp_path / env / "eu" / "platform.yaml").write_text(region_doc)
    return tmp_path


def error_of(root: Path, env: str = "prod", region: str | None = None, **kw: Any) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(root, env, region, **kw)
    return str(info.value)


def issues_of(root: Path, env: str = "prod", region: str | None = None, **kw: Any) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(root, env, region, **kw)
    return info.value.issues


def level(root: Path, rel: str = "prod") -> str:
    return str(root / rel / "platform.yaml")


# --- case 3: outside dev every enabled backend names its endpoint -----------------------------------


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_case3_a_removed_endpoint_does_not_fall_back_to_the_placeholder(tmp_path: Path, backend: str) -> None:
    doc = "backends:\n" + "".join(f"  {n}: {{endpoint: {u!r}}}\n" for n, u in BACKENDS.items() if n != backend)
    root = configs(tmp_path, doc)
    [issue] = issues_of(root)
    assert issue.startswith(f"{level(root)}: backends.{backend}.endpoint is not set for environment 'prod'")
    assert "the built-in" in issue and "is a placeholder" in issue and f"backends.{backend}.enabled: false" in issue


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_case3_a_null_endpoint_in_a_region_is_refused_and_the_region_named(tmp_path: Path, backend: str) -> None:
    root = configs(tmp_path, region_doc=f"backends: {{{backend}: {{endpoint: null}}}}\n")
    [issue] = issues_of(root, region="eu")
    assert issue.startswith(f"{level(root, 'prod/eu')}: backends.{backend}.endpoint: null deletes the endpoint")
    assert "never falls back to the built-in placeholder" in issue


def test_case3_deleting_the_whole_backend_section_is_refused_too(tmp_path: Path) -> None:
    root = configs(tmp_path, region_doc="backends: null\n")
    issues = issues_of(root, region="eu")
    assert len(issues) == 4 and all(i.startswith(f"{level(root, 'prod/eu')}: backends.") for i in issues)


def test_case3_an_endpoint_only_in_the_global_level_is_refused(tmp_path: Path) -> None:
    global_doc = GLOBAL + "backends: {tempo: {endpoint: tempo.shared.internal:4317}}\n"
    doc = "backends:\n" + "".join(f"  {n}: {{endpoint: {u!r}}}\n" for n, u in BACKENDS.items() if n != "tempo")
    root = configs(tmp_path, doc, global_doc=global_doc)
    [issue] = issues_of(root)
    assert issue == (
        f"{level(root, 'global')}: backends.tempo.endpoint is set only in the global level; outside dev each "
        f"environment names its own backends: set it in {level(root)} or a region level"
    )


def test_case3_a_disabled_backend_needs_no_endpoint_and_staging_is_checked_too(tmp_path: Path) -> None:
    doc = ENDPOINTS.replace(f"  tempo: {{endpoint: {BACKENDS['tempo']!r}}}\n", "  tempo: {enabled: false}\n")
    assert load_spec(configs(tmp_path, doc), "prod").backends.tempo.enabled is False
    (tmp_path / "s").mkdir()
    staging = configs(tmp_path / "s", "size: medium\n", env="staging")
    assert len(issues_of(staging, "staging")) == 4


def test_case3_dev_may_use_the_defaults(tmp_path: Path) -> None:
    root = configs(tmp_path, "size: small\n", env="dev")
    assert load_spec(root, "dev").backends.tempo.endpoint == "tempo.observability.internal:4317"


# --- case 4: security on every hop and every authentication setting --------------------------------


@pytest.mark.parametrize("env", ["staging", "prod"])
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"clickhouse": "tcp://clickhouse.x.internal:9000"},
            r"backends.clickhouse.endpoint = 'tcp://clickhouse.x.internal:9000' is the plaintext native protocol "
            r"\(no secure=true\): the password of 'otel_writer' and the telemetry would cross the network "
            r"unprotected .*; allowed: tcp://HOST:9440\?secure=true or https://HOST:8443",
        ),
        ({"clickhouse": "clickhouse://clickhouse.x.internal:9440"}, r"is the plaintext native protocol"),
        ({"clickhouse": "tcp://clickhouse.x.internal:9440?secure=false"}, r"is the plaintext native protocol"),
        ({"clickhouse": "http://clickhouse.x.internal:8123"}, r"backends.clickhouse.endpoint = .* is plain HTTP"),
        (
            {"clickhouse": "tcp://clickhouse.x.internal:9440?secure=true&skip_verify=true"},
            r"turns off certificate verification \(skip_verify\)",
        ),
        (
            {"loki": "http://loki.x.internal:3100/otlp"},
            r"backends.loki.endpoint = .* is plain HTTP .*allowed: https://",
        ),
        (
            {"prometheus": "http://prom.x.internal:9090/api/v1/write"},
            r"backends.prometheus.endpoint = .* is plain HTTP .*allowed: https://",
        ),
    ],
)
def test_case4_plaintext_backends_are_refused_outside_dev(
    tmp_path: Path, env: str, change: dict[str, str], expected: str
) -> None:
    doc = "backends:\n" + "".join(f"  {n}: {{endpoint: {change.get(n, u)!r}}}\n" for n, u in BACKENDS.items())
    root = configs(tmp_path, doc, env=env)
    [issue] = issues_of(root, env)
    assert issue.startswith(f"{level(root, env)}: "), issue
    assert re.search(expected, issue), issue


@pytest.mark.parametrize("env", ["staging", "prod"])
@pytest.mark.parametrize(
    ("security", "expected"),
    [
        (
            "{receiver_auth: {kind: none}}",
            "security.receiver_auth.kind is 'none' in {env}: gateways there also require a token from agents; "
            "allowed: bearer",
        ),
        (
            "{tls: {agent_to_gateway: tls}}",
            "security.tls.agent_to_gateway is 'tls' in {env}: gateways there require client certificates from "
            "agents; allowed: mtls",
        ),
        (
            "{opamp: {endpoint: 'ws://opamp.x.internal:4320/v1/opamp'}}",
            "security.opamp.endpoint = 'ws://opamp.x.internal:4320/v1/opamp' is plaintext in environment '{env}'; "
            "allowed: wss:// or https://",
        ),
        ("{opamp: {endpoint: 'http://opamp.x.internal:4320/v1/opamp'}}", "is plaintext in environment '{env}'"),
        ("{tls: {gateway_to_backends: insecure}}", "security.tls.gateway_to_backends is 'insecure' (TLS off)"),
        ("{allow_insecure: true}", "security.allow_insecure is refused in {env}"),
    ],
)
def test_case4_authentication_and_client_certificates_are_required_outside_dev(
    tmp_path: Path, env: str, security: str, expected: str
) -> None:
    root = configs(tmp_path, ENDPOINTS, region_doc=f"security: {security}\n", env=env)
    [issue] = issues_of(root, env, "eu")
    assert issue.startswith(f"{level(root, env + '/eu')}: ")
    assert expected.format(env=env) in issue


def test_case4_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    region = "security: {receiver_auth: {kind: none}, tls: {agent_to_gateway: tls}}\n"
    doc = ENDPOINTS.replace("?secure=true", "").replace("https://loki", "http://loki")
    assert len(issues_of(configs(tmp_path, doc, region_doc=region), "prod", "eu")) == 4


def test_case4_dev_may_ask_for_plaintext(tmp_path: Path) -> None:
    doc = (
        "security: {allow_insecure: true, tls: {gateway_to_backends: insecure}, receiver_auth: {kind: none}, "
        "opamp: {endpoint: 'ws://opamp:4320/v1/opamp'}}\n"
        "backends: {clickhouse: {endpoint: 'tcp://clickhouse:9000'}, loki: {endpoint: 'http://loki:3100/otlp'}}\n"
    )
    spec = load_spec(configs(tmp_path, doc, env="dev"), "dev")
    assert spec.backends.clickhouse.endpoint == "tcp://clickhouse:9000"


# --- case 5: numbers, ports, paths and regular expressions ------------------------------------------


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ("load: {agents: 0}", "load.agents: Input should be greater than or equal to 1 (got 0)"),
        (
            "backends: {tempo: {endpoint: 'tempo.prod.internal:99999'}}",
            "backends.tempo.endpoint: port 99999 in 'tempo.prod.internal:99999' is out of range; allowed: 1–65535",
        ),
        (
            "backends: {tempo: {endpoint: 'tempo.prod.internal:0'}}",
            "backends.tempo.endpoint: port 0 in 'tempo.prod.internal:0' is out of range",
        ),
        (
            "backends: {loki: {endpoint: 'https://loki.prod.internal:99999/otlp'}}",
            "backends.loki.endpoint: port 99999 in 'https://loki.prod.internal:99999/otlp' is out of range; "
            "allowed: 1–65535",
        ),
        (
            "backends: {clickhouse: {endpoint: 'tcp://ch.prod.internal:0?secure=true'}}",
            "backends.clickhouse.endpoint: port 0 in 'tcp://ch.prod.internal:0?secure=true' is out of range",
        ),
        (
            "backends: {prometheus: {endpoint: 'https://p.prod.internal:70000/w'}}",
            "backends.prometheus.endpoint: port 70000 in 'https://p.prod.internal:70000/w' is out of range",
        ),
        (
            "security: {opamp: {endpoint: 'wss://o.prod.internal:99999/v1/opamp'}}",
            "security.opamp.endpoint: port 99999 in 'wss://o.prod.internal:99999/v1/opamp' is out of range",
        ),
        (
            "backends: {loki: {endpoint: 'https://loki.prod.internal:31oo/otlp'}}",
            "backends.loki.endpoint: port '31oo' in 'https://loki.prod.internal:31oo/otlp' is not a number",
        ),
        (
            "security: {opamp: {endpoint: 'wss://opamp.prod.internal:4320/'}}",
            "security.opamp.endpoint: 'wss://opamp.prod.internal:4320/' has the path '/'; the OpAMP server serves "
            "/v1/opamp: write it, e.g. wss://opamp.example.internal:4320/v1/opamp",
        ),
        (
            "security: {opamp: {endpoint: 'wss://opamp.prod.internal:4320'}}",
            "security.opamp.endpoint: 'wss://opamp.prod.internal:4320' has the path '(none)'",
        ),
        (
            "security: {opamp: {endpoint: 'wss://opamp.prod.internal:4320/v1/opam'}}",
            "security.opamp.endpoint: 'wss://opamp.prod.internal:4320/v1/opam' has the path '/v1/opam'",
        ),
        (
            "emergency: {drop_services_regex: '(unclosed'}",
            "emergency.drop_services_regex: pattern '(unclosed' is not a valid regular expression: missing ), "
            "unterminated subpattern at position 0",
        ),
        (
            "emergency: {drop_services_regex: '^(?!critical-).*'}",
            "emergency.drop_services_regex: pattern '^(?!critical-).*' uses a negative lookahead/lookbehind",
        ),
        (
            "cardinality: {route_patterns: {'/users/(unclosed': '/users/{id}'}}",
            "cardinality.route_patterns: key '/users/(unclosed': pattern '/users/(unclosed' is not a valid regular",
        ),
        (
            "cardinality: {route_patterns: {'/(a)/\\1': x}}",
            "cardinality.route_patterns: key '/(a)/\\\\1': pattern '/(a)/\\\\1' uses a backreference",
        ),
        (
            "redaction: {patterns: [{attribute: a, pattern: '(?<=token=)\\w+', replacement: x}]}",
            "redaction.patterns.0.pattern: pattern '(?<=token=)\\\\w+' uses a lookahead/lookbehind",
        ),
        (
            "redaction: {patterns: [{attribute: a, pattern: 'a++', replacement: x}]}",
            "redaction.patterns.0.pattern: pattern 'a++' uses a possessive quantifier",
        ),
    ],
)
def test_case5_out_of_range_values_are_refused_at_load_time(tmp_path: Path, doc: str, expected: str) -> None:
    root = configs(tmp_path, ENDPOINTS, region_doc=doc + "\n")
    message = error_of(root, region="eu")
    assert f"  - {level(root, 'prod/eu')}: {expected}" in message, message


def test_case5_re2_syntax_that_python_also_accepts_loads(tmp_path: Path) -> None:
    doc = "emergency: {drop_services_regex: '(?i)^(batch|report)-.*$'}\ncardinality: {route_patterns: {'/a{2,5}': x}}\n"
    spec = load_spec(configs(tmp_path, ENDPOINTS, region_doc=doc), "prod", "eu")
    assert spec.emergency.drop_services_regex == "(?i)^(batch|report)-.*$"


# --- case 9: cross-field errors name every file involved -------------------------------------------


def test_case9_min_in_global_and_max_in_prod_names_both_files(tmp_path: Path) -> None:
    root = configs(
        tmp_path,
        ENDPOINTS + "tiers: {gateway: {max_replicas: 20}}\n",
        global_doc="tiers: {gateway: {min_replicas: 30}}\n",
    )
    [issue] = issues_of(root)
    assert issue == (
        f"tiers.gateway.min_replicas ({level(root, 'global')}) = 30 is above tiers.gateway.max_replicas "
        f"({level(root)}) = 20; allowed: min_replicas at most max_replicas"
    )


def test_case9_and_the_other_way_round(tmp_path: Path) -> None:
    root = configs(
        tmp_path,
        ENDPOINTS,
        region_doc="tiers: {gateway: {min_replicas: 12}}\n",
        global_doc="tiers: {gateway: {max_replicas: 8}}\n",
    )
    [issue] = issues_of(root, region="eu")
    assert issue == (
        f"tiers.gateway.min_replicas ({level(root, 'prod/eu')}) = 12 is above tiers.gateway.max_replicas "
        f"({level(root, 'global')}) = 8; allowed: min_replicas at most max_replicas"
    )


def test_case9_a_value_from_the_defaults_is_named_as_such(tmp_path: Path) -> None:
    root = configs(tmp_path, ENDPOINTS + "tiers: {gateway: {min_replicas: 30}}\n")
    [issue] = issues_of(root)
    assert issue.startswith(
        f"tiers.gateway.min_replicas ({level(root)}) = 30 is above tiers.gateway.max_replicas (default) = 10"
    )


def test_case9_one_file_setting_both_keys_is_named_once(tmp_path: Path) -> None:
    root = configs(tmp_path, ENDPOINTS + "tiers: {gateway: {min_replicas: 5, max_replicas: 3}}\n")
    [issue] = issues_of(root)
    assert issue.startswith(f"{level(root)}: tiers.gateway.min_replicas = 5 is above tiers.gateway.max_replicas = 3")


def test_case9_composite_weights_and_retention_across_files(tmp_path: Path) -> None:
    root = configs(
        tmp_path,
        ENDPOINTS + "sampling: {tail: {composite: {errors: 80}}}\nretention: {logs: {warm_days: 3}}\n",
        global_doc="sampling: {tail: {composite: {latency: 30}}}\nretention: {logs: {hot_days: 10}}\n",
    )
    issues = issues_of(root)
    composite = next(i for i in issues if "composite weights" in i)
    assert f"sampling.tail.composite.errors ({level(root)}) = 80" in composite
    assert f"sampling.tail.composite.latency ({level(root, 'global')}) = 30" in composite
    assert "sampling.tail.composite.probabilistic (default) = 20" in composite
    retention = next(i for i in issues if "retention tiers" in i)
    assert f"retention.logs.hot_days ({level(root, 'global')}) = 10" in retention
    assert f"retention.logs.warm_days ({level(root)}) = 3" in retention


def test_case9_security_errors_name_the_file_that_set_the_value(tmp_path: Path) -> None:
    root = configs(
        tmp_path,
        ENDPOINTS,
        region_doc="security: {tls: {agent_to_gateway: tls}}\n",
        global_doc="security: {receiver_auth: {kind: none}}\n",
    )
    issues = issues_of(root, region="eu")
    assert any(i.startswith(f"{level(root, 'prod/eu')}: security.tls.agent_to_gateway is 'tls'") for i in issues)
    assert any(i.startswith(f"{level(root, 'global')}: security.receiver_auth.kind is 'none'") for i in issues)


# --- case 10: what is expected, never a raw regular expression --------------------------------------


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            "backends: {clickhouse: {password: hunter2}}",
            "backends.clickhouse.password: expected a secret reference: use env:NAME (an upper-case environment "
            "variable) or file:/absolute/path, never the secret itself (value not shown: it may be a secret)",
        ),
        (
            "security: {receiver_auth: {token: 's3cr3t-token'}}",
            "security.receiver_auth.token: expected a secret reference",
        ),
        ("security: {opamp: {token: 12345}}", "security.opamp.token: Input should be a valid string (value not shown"),
        (
            "backends: {tempo: {endpoint: ''}}",
            "backends.tempo.endpoint: expected host:port, e.g. tempo.example.internal:4317 (got '')",
        ),
        (
            "backends: {loki: {endpoint: ''}}",
            "backends.loki.endpoint: '' is not a URL with scheme http or https and a host, e.g. "
            "https://loki.example.internal:3100/otlp",
        ),
        (
            "sampling: {tail: {decision_wait: 10 seconds}}",
            "sampling.tail.decision_wait: expected a duration: a whole number followed by ms, s, m or h, e.g. "
            "500ms, 10s, 5m, 1h (got '10 seconds')",
        ),
        (
            "sampling: {tail: {critical_services: ['pay ment']}}",
            "sampling.tail.critical_services.0: expected a service.name: letters, digits, '_', '.' and '-' "
            "(got 'pay ment')",
        ),
        (
            "backends: {clickhouse: {database: 1otel}}",
            "backends.clickhouse.database: expected an identifier: a letter or '_', then letters, digits or '_'",
        ),
    ],
)
def test_case10_pattern_errors_say_what_is_expected(tmp_path: Path, doc: str, expected: str) -> None:
    root = configs(tmp_path, ENDPOINTS, region_doc=doc + "\n")
    message = error_of(root, region="eu")
    assert f"  - {level(root, 'prod/eu')}: {expected}" in message, message
    assert "should match pattern" not in message and "^(" not in message
    assert "hunter2" not in message and "s3cr3t" not in message and "12345" not in message


# --- case 11: the append marker --------------------------------------------------------------------


def test_case11_a_route_regex_ending_in_plus_can_be_written(tmp_path: Path) -> None:
    root = configs(tmp_path, ENDPOINTS + "cardinality: {route_patterns: {'/a+': '/a', '/b/[0-9]+': '/b/{id}'}}\n")
    assert load_spec(root, "prod").cardinality.route_patterns == {"/a+": "/a", "/b/[0-9]+": "/b/{id}"}


def test_case11_an_append_without_a_list_says_how_to_write_it(tmp_path: Path) -> None:
    root = configs(tmp_path, ENDPOINTS + "sampling: {tail: {critical_services+: checkout}}\n")
    [issue] = issues_of(root)
    assert issue == (
        f"{level(root)}: sampling.tail.critical_services+: unknown key 'critical_services+': a key ending in + "
        "appends to the list critical_services and needs a list value, e.g. critical_services+: [item]"
    )


def test_case11_appending_to_a_non_list_names_both_levels(tmp_path: Path) -> None:
    root = configs(
        tmp_path,
        ENDPOINTS + "tiers: {agent: {memory_limit_mib+: [1]}}\n",
        global_doc="tiers: {agent: {memory_limit_mib: 512}}\n",
    )
    assert error_of(root) == (
        f"{level(root)}: tiers.agent.memory_limit_mib+ appends to a list, but {level(root, 'global')} set "
        "tiers.agent.memory_limit_mib to a number; write memory_limit_mib: (without +) to replace it"
    )


def test_case11_appends_in_collector_overrides_extend_the_rendered_lists(tmp_path: Path) -> None:
    root = configs(
        tmp_path,
        ENDPOINTS
        + "collector_overrides:\n  gateway:\n    service: {pipelines: {logs: {processors+: [batch/second]}}}\n",
        global_doc="collector_overrides:\n  gateway:\n    processors: {batch/second: {}}\n",
    )
    config = build_collector(load_spec(root, "prod"), "gateway")
    (tmp_path / "plain").mkdir()
    plain = build_collector(load_spec(configs(tmp_path / "plain"), "prod"), "gateway")
    before = plain["service"]["pipelines"]["logs"]["processors"]
    assert config["service"]["pipelines"]["logs"]["processors"] == [*before, "batch/second"]
    assert before[0] == "memory_limiter"


def test_case11_null_in_collector_overrides_deletes_a_rendered_key(tmp_path: Path) -> None:
    root = configs(
        tmp_path, ENDPOINTS + "collector_overrides: {gateway: {processors: {batch: {send_batch_size: null}}}}\n"
    )
    config = build_collector(load_spec(root, "prod"), "gateway")
    assert "send_batch_size" not in (config["processors"]["batch"] or {})


# --- also: unknown components in collector overrides, once, with the file ---------------------------


def test_unknown_override_components_are_reported_once_with_their_file(tmp_path: Path) -> None:
    root = configs(
        tmp_path,
        ENDPOINTS,
        region_doc="collector_overrides:\n  gateway:\n    exporters: {jaeger: {endpoint: 'j:14250'}}\n"
        "  agent:\n    processors: {batchy/x: {}}\n    extension: {}\n",
    )
    issues = issues_of(root, region="eu")
    region = level(root, "prod/eu")
    assert len(issues) == 3, issues
    assert any(
        i.startswith(f"{region}: collector_overrides.gateway.exporters.jaeger: exporter type 'jaeger' does not exist")
        and "export OTLP to Jaeger" in i
        for i in issues
    )
    assert (
        f"{region}: collector_overrides.agent.processors.batchy/x: processor type 'batchy' does not exist"
        in "\n".join(issues)
    )
    assert any(
        "collector_overrides.agent.extension: unknown collector-config section; allowed: receivers" in i for i in issues
    )


# --- bad input changes nothing ---------------------------------------------------------------------


def test_a_bad_spec_leaves_the_previous_plan_untouched(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c").mkdir()
    root = configs(tmp_path / "c")
    out = tmp_path / "out"
    argv = ["plan", "--env", "prod", "--configs", str(root), "--out", str(out), "--quiet"]
    assert cli.main(argv) == 0
    before = {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    (root / "prod" / "platform.yaml").write_text(ENDPOINTS + "size: large\nsize: small\n")
    capsys.readouterr()
    assert cli.main(argv) == 2
    assert "key 'size' is given twice" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before
