"""Bad specs fail with a message naming the file, the key and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from otelstack.errors import SpecError
from otelstack.model.loader import load_spec


def hierarchy(tmp_path: Path, env_doc: str, *, region_doc: str | None = None, env: str = "prod") -> Path:
    (tmp_path / "global").mkdir()
    (tmp_path / "global" / "platform.yaml").write_text("sampling: {tail: {probabilistic_percentage: 10}}\n")
    (tmp_path / env).mkdir()
    (tmp_path / env / "platform.yaml").write_text(env_doc)
    if region_doc is not None:
        (tmp_path / env / "eu").mkdir()
        (tmp_path / env / "eu" / "platform.yaml").write_text(region_doc)
    return tmp_path


def error_of(configs: Path, env: str = "prod", region: str | None = None, **kw: object) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(configs, env, region, **kw)  # type: ignore[arg-type]
    return str(info.value)


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (
            "sampling: {tail: {probabilistic_percentage: 120}}\n",
            r"prod/platform.yaml: sampling.tail.probabilistic_percentage: Input should be less than or equal to 100",
        ),
        (
            "sampling: {tail: {keep_erors: true}}\n",
            r"sampling.tail.keep_erors: unknown key 'keep_erors'; allowed here: .*keep_errors",
        ),
        ("bogus: 1\n", r"bogus: unknown key 'bogus'; allowed here: alerting, backends, cardinality"),
        (
            "security: {tls: {agent_to_gateway: insecure}}\n",
            r"security.tls.agent_to_gateway is 'insecure' \(TLS off\) in environment 'prod'; allowed: mtls or tls",
        ),
        ("security: {allow_insecure: true}\n", r"security.allow_insecure is refused in prod"),
        ("backends: {loki: {endpoint: 'loki:3100'}}\n", r"backends.loki.endpoint: 'loki:3100' is not a URL"),
        (
            "backends: {tempo: {endpoint: 'http://tempo'}}\n",
            r"backends.tempo.endpoint: expected host:port, e.g. tempo.example.internal:4317 \(got 'http://tempo'\)",
        ),
        (
            "backends: {clickhouse: {password: hunter2}}\n",
            r"backends.clickhouse.password: expected a secret reference: use env:NAME .* never the secret itself",
        ),
        (
            "security: {receiver_auth: {token: 'env:lower'}}\n",
            r"security.receiver_auth.token: expected a secret reference: use env:NAME \(an upper-case",
        ),
        ("security: {tls: {agent_to_gateway: sometimes}}\n", r"Input should be 'mtls', 'tls' or 'insecure'"),
        (
            "sampling: {tail: {composite: {errors: 80, latency: 30, probabilistic: 20}}}\n",
            r"composite weights add up to 130 %, at most 100 % is allowed",
        ),
        (
            "tiers: {gateway: {min_replicas: 5, max_replicas: 3}}\n",
            r"prod/platform.yaml: tiers.gateway.min_replicas = 5 is above tiers.gateway.max_replicas = 3",
        ),
        (
            "tiers: {gateway: {min_replicas: 1}}\n",
            r"tiers.gateway.min_replicas: Input should be greater than or equal to 2",
        ),
        (
            "tiers: {agent: {resolver: {kind: static}}}\n",
            r"resolver tiers.agent.resolver.kind \(.*prod/platform.yaml\) is 'static', which needs at least one "
            r"entry in tiers.agent.resolver.hostnames \(default\)",
        ),
        (
            "tiers: {agent: {journald: {enabled: true, priority: verbose}}}\n",
            r"tiers.agent.journald.priority: 'verbose' is not a journal priority; allowed: emerg, alert, crit, err, "
            r"warning, notice, info, debug or 0–7",
        ),
        ("tiers: {agent: {journald: {priority: 8}}}\n", r"tiers.agent.journald.priority: 8 is not a journal priority"),
        (
            "tiers: {agent: {journald: {units: [ssh.service, '']}}}\n",
            r"tiers.agent.journald.units.1: '' is not a systemd unit name; allowed: a non-empty name or glob",
        ),
        (
            "tiers: {agent: {journald: {units: ['my unit']}}}\n",
            r"tiers.agent.journald.units.0: 'my unit' is not a systemd unit name",
        ),
        (
            "tiers: {agent: {journald: {units: ssh.service}}}\n",
            r"tiers.agent.journald.units: Input should be a valid list",
        ),
        (
            "tiers: {agent: {journald: {enable: true}}}\n",
            r"tiers.agent.journald.enable: unknown key 'enable'; allowed here: enabled, priority, units",
        ),
        ("retention: {logs: {hot_days: 30, warm_days: 7}}\n", r"retention tiers must not shrink"),
        (
            "redaction: {patterns: [{attribute: a, pattern: '([', replacement: x}]}\n",
            r"redaction.patterns.0.pattern: pattern '\(\[' is not a valid regular expression",
        ),
        (
            "sampling: {tail: {decision_wait: ten}}\n",
            r"sampling.tail.decision_wait: expected a duration: a whole number followed by ms, s, m or h",
        ),
        ("load: {spans_per_second: -1}\n", r"load.spans_per_second: Input should be greater than or equal to 0"),
        ("size: huge\n", r"size: Input should be 'small', 'medium', 'large' or 'xlarge'"),
    ],
)
def test_bad_values_name_file_key_and_what_is_allowed(tmp_path: Path, doc: str, expected: str) -> None:
    message = error_of(hierarchy(tmp_path, doc))
    assert message.startswith("invalid platform spec for environment 'prod'")
    assert "prod/platform.yaml" in message
    assert pytest.importorskip("re").search(expected, message), message


def test_the_region_file_is_named_when_it_sets_the_bad_value(tmp_path: Path) -> None:
    configs = hierarchy(tmp_path, "size: large\n", region_doc="sampling: {tail: {probabilistic_percentage: 101}}\n")
    message = error_of(configs, region="eu")
    assert "prod/eu/platform.yaml: sampling.tail.probabilistic_percentage" in message


def test_agent_and_namespace_levels_are_named(tmp_path: Path) -> None:
    configs = hierarchy(tmp_path, "size: large\n")
    assert "<agent level>: sampling.tail.num_traces" in error_of(
        configs, agent={"sampling": {"tail": {"num_traces": 5}}}
    )
    assert "<namespace level>: nope: unknown key" in error_of(configs, namespace={"nope": 1})


def test_dev_may_allow_plaintext(tmp_path: Path) -> None:
    configs = hierarchy(tmp_path, "security: {allow_insecure: true, tls: {agent_to_gateway: insecure}}\n", env="dev")
    spec = load_spec(configs, "dev")
    assert spec.insecure_allowed


@pytest.mark.parametrize(
    ("env", "region", "expected"),
    [
        ("qa", None, r"environment 'qa' not found under .*: allowed: prod"),
        ("prod", "mars", r"region 'mars' not found for environment 'prod': allowed: eu"),
    ],
)
def test_unknown_environment_or_region(tmp_path: Path, env: str, region: str | None, expected: str) -> None:
    configs = hierarchy(tmp_path, "size: large\n", region_doc="")
    assert pytest.importorskip("re").search(expected, error_of(configs, env=env, region=region))


def test_environment_key_must_match_the_directory(tmp_path: Path) -> None:
    message = error_of(hierarchy(tmp_path, "environment: staging\n"))
    assert "prod/platform.yaml: environment is 'staging' but the file sits in the hierarchy for 'prod'" in message


def test_invalid_yaml_and_non_mapping_documents(tmp_path: Path) -> None:
    assert "not valid YAML" in error_of(hierarchy(tmp_path, "a: [unclosed\n"))


def test_a_list_document_is_refused(tmp_path: Path) -> None:
    assert "must be a mapping of keys to values, not list" in error_of(hierarchy(tmp_path, "- a\n- b\n"))


def test_missing_global_level(tmp_path: Path) -> None:
    (tmp_path / "prod").mkdir()
    (tmp_path / "prod" / "platform.yaml").write_text("size: large\n")
    assert "the global level is required" in error_of(tmp_path)


def test_shipped_hierarchy_loads_for_every_environment_and_region() -> None:
    configs = Path(__file__).parents[2] / "configs"
    from otelstack.layering import available_environments, available_regions

    envs = available_environments(configs)
    assert envs == ["dev", "prod", "staging"]
    for env in envs:
        for region in [None, *available_regions(configs, env)]:
            spec = load_spec(configs, env, region)
            assert spec.environment == env and spec.region == region
    assert load_spec(configs, "prod", "us-east-1").sampling.tail.critical_services == [
        "payment-service",
        "auth-service",
        "checkout-service",
    ]
