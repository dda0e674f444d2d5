"""The backends as the program creates them under Pulumi's mocks (docs/kubernetes/backends.md): every
backend component with its hardened workload, Secrets filled from the stack's secret config, the gateways
after the stores, a NetworkPolicy for every workload, the policy pack satisfied; a spec endpoint that does
not name the in-cluster Service and a missing admin password stop the program with a clear error."""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from stacks.policy import rules
from tests.stacks.mocked import Registered, run_program, with_all_secrets
from tests.stacks.test_mocks_components import check_hardened, check_host_mounts, component_of
from tests.stacks.test_mocks_program import stack_config

ROOT = Path(__file__).parents[2]
BACKENDS = ("prometheus", "alertmanager", "tempo", "loki", "grafana")
DOMAIN = "observability.svc.cluster.local"
CLUSTER = {"backends": {name: {"enabled": True} for name in BACKENDS}}


@functools.cache
def in_cluster_configs(target: Path | None = None) -> Path:
    """A copy of configs/ (at ``target``, or in a new temporary directory) whose dev backends are the
    stack's Services."""
    import tempfile

    target = target or Path(tempfile.mkdtemp(prefix="otelstack-backends-")) / "configs"
    shutil.copytree(ROOT / "configs", target)
    platform = target / "dev" / "platform.yaml"
    data = yaml.safe_load(platform.read_text())
    data["backends"]["tempo"]["endpoint"] = f"tempo.{DOMAIN}:4317"
    data["backends"]["loki"]["endpoint"] = f"http://loki.{DOMAIN}:3100/otlp"
    data["backends"]["prometheus"]["endpoint"] = f"http://prometheus.{DOMAIN}:9090/api/v1/write"
    platform.write_text(yaml.safe_dump(data))
    return target


def config(configs: Path | None = None) -> dict[str, Any]:
    base = stack_config("dev")
    cluster = {**dict(base.get("otelstack:cluster") or {}), **CLUSTER}
    return {**base, "otelstack:cluster": cluster, "otelstack:configs": str(configs or in_cluster_configs())}


@functools.cache
def registered() -> tuple[Registered, ...]:
    return tuple(run_program(with_all_secrets(config())))


def by_kind(kind: str) -> dict[str, Registered]:
    return {r.name.split("/")[-1]: r for r in registered() if r.kind == kind}


def test_every_backend_is_a_component_of_the_stack() -> None:
    parts = {component_of(r) for r in registered()}
    assert {"Prometheus", "Alertmanager", "Tempo", "Loki", "Grafana"} <= parts
    assert set(by_kind("StatefulSet")) >= {"prometheus", "alertmanager", "tempo", "loki"}
    assert "grafana" in by_kind("Deployment")


def test_backend_workloads_are_hardened_with_probes_and_no_host_mounts() -> None:
    for resource in [*by_kind("StatefulSet").values(), *by_kind("Deployment").values()]:
        check_hardened(resource)
        check_host_mounts(resource)
        for container in resource.object["spec"]["template"]["spec"]["containers"]:
            assert "readinessProbe" in container and "livenessProbe" in container


def test_secrets_are_filled_from_the_stack_config() -> None:
    admin = by_kind("Secret")["grafana-admin"]
    assert admin.inputs["stringData"] == {
        "GRAFANA_ADMIN_PASSWORD": "value-of-GRAFANA_ADMIN_PASSWORD",
        "GRAFANA_SECRET_KEY": "value-of-GRAFANA_SECRET_KEY",
    }


def test_the_gateways_wait_for_the_stores() -> None:
    gateway = by_kind("StatefulSet")["otel-gateway"]
    assert {"prometheus", "tempo", "loki"} <= set(gateway.depends_on), gateway.depends_on


def test_policies_and_the_policy_pack_cover_the_backends() -> None:
    items = [(r.typ, r.object) for r in registered()]
    assert rules.workloads_without_policy(items) == []
    for r in registered():
        assert rules.privileged(r.typ, r.object, rules.DEFAULT_ALLOW_LIST) == [], r.name
        assert rules.latest_images(r.typ, r.object) == [], r.name
        assert rules.insecure_tls(r.typ, r.object) == [], r.name


def _run_failing(stack_config_: dict[str, Any]) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.stacks.mocked", json.dumps(stack_config_)],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stderr


def test_an_endpoint_outside_the_cluster_stops_the_program() -> None:
    secrets = with_all_secrets(config())["otelstack:secrets"]
    stderr = _run_failing({**config(ROOT / "configs"), "otelstack:secrets": secrets})
    assert "SpecError: `backends.prometheus.endpoint` is 'http://prometheus.dev.internal:9090/api/v1/write'" in stderr
    assert f"prometheus.{DOMAIN}:9090" in stderr


def test_a_missing_admin_password_stops_the_program() -> None:
    full = with_all_secrets(config())
    secrets = {k: v for k, v in full["otelstack:secrets"].items() if k != "GRAFANA_ADMIN_PASSWORD"}
    stderr = _run_failing({**full, "otelstack:secrets": secrets})
    assert "grafana-admin needs GRAFANA_ADMIN_PASSWORD" in stderr


@functools.cache
def with_schema_job() -> tuple[Registered, ...]:
    base = config(ROOT / "configs")
    image = {"repository": "registry.local/otelstack", "tag": "0.1.0"}
    cluster = {**base["otelstack:cluster"], "backends": {}, "clickhouseSchema": {"enabled": True, "image": image}}
    return tuple(run_program(with_all_secrets({**base, "otelstack:cluster": cluster})))


def test_the_gateways_wait_for_the_clickhouse_schema_job() -> None:
    resources = with_schema_job()
    (job,) = [r for r in resources if r.kind == "Job"]
    assert component_of(job) == "ClickhouseSchema" and job.name.split("/")[-1].startswith("clickhouse-schema-")
    gateway = next(r for r in resources if r.kind == "StatefulSet" and r.name.endswith("/otel-gateway"))
    assert "clickhouse-schema" in gateway.depends_on, gateway.depends_on
    secret = next(r for r in resources if r.kind == "Secret" and r.name.endswith("observability/otelstack-secrets"))
    assert (
        secret.inputs["stringData"]["OTELSTACK_CLICKHOUSE_ADMIN_PASSWORD"]
        == "value-of-OTELSTACK_CLICKHOUSE_ADMIN_PASSWORD"
    )
    check_hardened(job)
    items = [(r.typ, r.object) for r in resources]
    assert rules.workloads_without_policy(items) == []


def test_the_clickhouse_users_passwords_are_generated_when_the_config_does_not_give_them() -> None:
    base = config(ROOT / "configs")
    image = {"repository": "registry.local/otelstack", "tag": "0.1.0"}
    cluster = {**base["otelstack:cluster"], "backends": {}, "clickhouseSchema": {"enabled": True, "image": image}}
    full = with_all_secrets({**base, "otelstack:cluster": cluster})
    given = {k: v for k, v in full["otelstack:secrets"].items() if "CLICKHOUSE_PASSWORD" not in k and "READER" not in k}
    resources = run_program({**full, "otelstack:secrets": given})
    secret = next(r for r in resources if r.kind == "Secret" and r.name.endswith("observability/otelstack-secrets"))
    data = secret.inputs["stringData"]
    generated = "observability/otelstack-secrets/OTELSTACK_CLICKHOUSE_PASSWORD"
    assert data["OTELSTACK_CLICKHOUSE_PASSWORD"] == f"generated-{generated}"
    assert data["OTELSTACK_CLICKHOUSE_READER_PASSWORD"].startswith("generated-")
    assert data["OTELSTACK_CLICKHOUSE_ADMIN_PASSWORD"] == "value-of-OTELSTACK_CLICKHOUSE_ADMIN_PASSWORD"


def test_the_random_value_provider_makes_a_value_once_and_keeps_it() -> None:
    from stacks.components.generated import RandomValueProvider

    provider = RandomValueProvider()
    first, second = provider.create({"bytes": 32}), provider.create({"bytes": 32})
    assert first.outs["value"] != second.outs["value"] and len(first.outs["value"]) == 43
    assert provider.diff(first.id, first.outs, {"bytes": 32, "value": None}).changes is False
    assert provider.diff(first.id, first.outs, {"bytes": 48, "value": None}).replaces == ["bytes"]
