"""The ClickHouse schema Job: otelstack's own runner on the rendered files, before the gateways.

The Job's command is run here as the container would run it — the files laid out as its projected volume
lays them out, its argv, its environment — against the real ClickHouse engine in-process (chDB) in place of
the HTTP connection: the migrations table then records exactly what the Python runner records on the
rendered files directly, and a second run applies nothing."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

from otelstack.backends import render_backends
from otelstack.backends.clickhouse import __main__ as runner_cli
from otelstack.backends.clickhouse import runner
from otelstack.backends.clickhouse.check import chdb_connection
from otelstack.errors import SpecError
from otelstack.kubernetes import clickhouse
from otelstack.kubernetes.settings import parse_cluster
from otelstack.model.loader import load_spec
from otelstack.model.spec import PlatformSpec
from otelstack.render import kubernetes_components
from tests.unit.k8s_helpers import CONFIGS, find, pod_spec

IMAGE = {"repository": "registry.example/otelstack", "tag": "0.1.0"}
ON = {"clickhouseSchema": {"enabled": True, "image": IMAGE}}


def components(env: str = "dev", cluster: dict[str, Any] | None = None, spec: PlatformSpec | None = None) -> Any:
    return kubernetes_components(spec or load_spec(CONFIGS, env), parse_cluster(cluster or ON))


def the_job(comps: Any) -> dict[str, Any]:
    return find(comps, "Job")


def test_the_gateways_wait_for_the_job_and_the_configmap_holds_the_render() -> None:
    spec = load_spec(CONFIGS, "prod")
    comps = components(spec=spec)
    assert next(c for c in comps if c.name == "gateway").depends_on == ("certificates", "clickhouse-schema")
    names = [c.name for c in comps]
    assert names.index("clickhouse-schema") < names.index("gateway")
    rendered = render_backends(spec)
    data = find(comps, "ConfigMap", "clickhouse-schema")["data"]
    assert data == {
        k.removeprefix("clickhouse/"): v
        for k, v in rendered.items()
        if k.startswith("clickhouse/") and k.endswith(".sql") and k.count("/") == 1
    }
    assert {"bootstrap.sql", "users.sql", "retention.sql", "002-traces.sql"} <= set(data)


def test_the_job_is_hardened_and_reads_its_secrets_from_otelstack_secrets() -> None:
    comps = components("prod")
    job = the_job(comps)
    pod = pod_spec(job)
    (container,) = pod["containers"]
    assert container["image"] == "registry.example/otelstack:0.1.0"
    assert container["securityContext"]["readOnlyRootFilesystem"] and pod["automountServiceAccountToken"] is False
    env = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"] if "valueFrom" in e}
    assert env == {
        "CLICKHOUSE_ADMIN_PASSWORD": "OTELSTACK_CLICKHOUSE_ADMIN_PASSWORD",
        "OTELSTACK_CLICKHOUSE_PASSWORD": "OTELSTACK_CLICKHOUSE_PASSWORD",
        "OTELSTACK_CLICKHOUSE_READER_PASSWORD": "OTELSTACK_CLICKHOUSE_READER_PASSWORD",
    }
    keys = find(comps, "Secret", "otelstack-secrets", "observability")["stringData"]
    assert set(env.values()) <= set(keys)
    assert container["command"][-2:] == ["--cafile", "/etc/otelstack-schema/tls/ca.crt"]
    assert "https://clickhouse.prod.internal:8443" in container["command"]


def test_a_changed_schema_is_a_new_job() -> None:
    first = the_job(components("dev"))["metadata"]["name"]
    data = load_spec(CONFIGS, "dev").model_dump(mode="json", by_alias=True)
    data["retention"]["traces"]["hot_days"] = 5
    second = the_job(components(spec=PlatformSpec.model_validate(data)))["metadata"]["name"]
    assert first != second and first.startswith("clickhouse-schema-")


def test_the_network_policy_lets_the_job_reach_clickhouse_only() -> None:
    comps = components("prod", {**ON, "networkPolicies": {"outside": {"clickhouse": ["10.9.0.0/24"]}}})
    policy = find(comps, "NetworkPolicy", "otelstack-clickhouse-schema")
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "clickhouse-schema"
    assert policy["spec"]["egress"][0] == {
        "to": [{"ipBlock": {"cidr": "10.9.0.0/24"}}],
        "ports": [{"protocol": "TCP", "port": 8443}],
    }
    assert "ingress" not in policy["spec"]


def _projected(job: dict[str, Any], configmap: dict[str, Any], root: Path) -> None:
    """Write the ConfigMap's files where the Job's projected volume puts them."""
    volume = next(v for v in pod_spec(job)["volumes"] if v["name"] == "config")
    (container,) = pod_spec(job)["containers"]
    mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "config")
    for source in volume["projected"]["sources"]:
        if "configMap" in source:
            for item in source["configMap"]["items"]:
                path = root / mount.lstrip("/") / item["path"]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(configmap["data"][item["key"]], encoding="utf-8")


def test_the_jobs_command_applies_what_the_runner_applies_and_then_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        importlib.import_module("chdb")
    except ImportError:
        pytest.skip("chDB is not installed")
    spec = load_spec(CONFIGS, "dev")
    comps = components(spec=spec)
    job = the_job(comps)
    _projected(job, find(comps, "ConfigMap", "clickhouse-schema"), tmp_path / "root")
    (container,) = pod_spec(job)["containers"]
    argv = list(container["command"][3:])  # after `python -m otelstack.backends.clickhouse`
    argv[argv.index("--dir") + 1] = str(tmp_path / "root" / argv[argv.index("--dir") + 1].lstrip("/"))
    monkeypatch.setenv("CLICKHOUSE_ADMIN_PASSWORD", "admin-secret")
    with chdb_connection(spec, tmp_path / "job") as conn:
        seen: dict[str, Any] = {}

        def connect(url: str, user: str, password: str, *, cafile: str | None = None) -> Any:
            seen.update(url=url, user=user, password=password)
            return conn

        # chDB has no access control: users.sql is left to the real server (tests/integration covers it)
        monkeypatch.setattr(runner_cli, "HttpConnection", connect)
        monkeypatch.setattr(runner_cli, "apply", lambda c, files, db: runner.apply(c, files, db, users=False))
        assert runner_cli.main(argv) == 0
        assert seen == {
            "url": "http://clickhouse.dev.internal:8123",
            "user": "otelstack_admin",
            "password": "admin-secret",
        }
        by_job = runner.recorded(conn, "otel")
        assert runner_cli.main(argv) == 0
        assert "no migration (up to date)" in capsys.readouterr().out
    files = {k: v for k, v in render_backends(spec).items() if k.startswith("clickhouse/") and k.endswith(".sql")}
    with chdb_connection(spec, tmp_path / "direct") as conn:
        runner.apply(conn, files, "otel", users=False)
        assert runner.recorded(conn, "otel") == by_job
    assert len(by_job) >= 9


def test_bad_schema_settings_are_clear_errors() -> None:
    with pytest.raises(SpecError) as excinfo:
        parse_cluster({"clickhouseSchema": {"enabled": True}})
    assert "no image with otelstack is given" in "\n".join(excinfo.value.issues)
    with pytest.raises(SpecError) as excinfo:
        parse_cluster({"clickhouseSchema": {"url": "clickhouse:8443"}})
    assert "clickhouseSchema.url" in "\n".join(excinfo.value.issues)
    data = load_spec(CONFIGS, "dev").model_dump(mode="json", by_alias=True)
    data["backends"]["clickhouse"]["password"] = "file:/run/secrets/ch"
    with pytest.raises(SpecError, match=r"users.sql names the secret\(s\) file:/run/secrets/ch; .*use env:NAME"):
        components(spec=PlatformSpec.model_validate(data))
    data = load_spec(CONFIGS, "dev").model_dump(mode="json", by_alias=True)
    data["backends"]["clickhouse"]["enabled"] = False
    with pytest.raises(
        SpecError, match=r"clickhouseSchema.enabled is true, but the spec's `backends.clickhouse.enabled`"
    ):
        components(spec=PlatformSpec.model_validate(data))


def test_url_defaults_follow_the_endpoint() -> None:
    comps = components("dev", {"clickhouseSchema": {**ON["clickhouseSchema"], "url": "https://ch.example:8443"}})
    assert "https://ch.example:8443" in pod_spec(the_job(comps))["containers"][0]["command"]
    assert clickhouse.CLICKHOUSE_HTTP_PORT == 8123
