"""ClickHouse in the cluster as the program creates it under Pulumi's mocks (docs/kubernetes/backends.md,
"ClickHouse in the cluster"): the server's component with its hardened StatefulSet, the schema Job and the
gateways after it, the admin password generated when the stack config does not give it, the policy pack
satisfied; in mode altinity the operator's resources; an endpoint that does not name the Service stops the
program with a clear error."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

import yaml

from stacks.policy import rules
from tests.stacks.mocked import Registered, run_program, with_all_secrets
from tests.stacks.test_mocks_backends import DOMAIN, _run_failing, in_cluster_configs
from tests.stacks.test_mocks_components import check_hardened, check_host_mounts, component_of
from tests.stacks.test_mocks_program import stack_config

IMAGE = {"repository": "registry.local/otelstack", "tag": "0.1.0"}
ADMIN_KEY = "OTELSTACK_CLICKHOUSE_ADMIN_PASSWORD"


def clickhouse_configs(target: Path, *, tls: bool = False, cluster: str | None = None) -> Path:
    """configs/ (at `target`) with every dev backend on the stack's Services, ClickHouse too: plaintext as
    dev ships it, or TLS on the backends' hop."""
    configs = in_cluster_configs(target)
    platform = configs / "dev" / "platform.yaml"
    data = yaml.safe_load(platform.read_text())
    endpoint = f"tcp://clickhouse.{DOMAIN}:9440?secure=true" if tls else f"tcp://clickhouse.{DOMAIN}:9000"
    data["backends"]["clickhouse"]["endpoint"] = endpoint
    if cluster:
        data["backends"]["clickhouse"]["cluster"] = cluster
    if tls:
        data["security"]["tls"]["gateway_to_backends"] = "tls"
    platform.write_text(yaml.safe_dump(data))
    return configs


def config(configs: Path, **clickhouse: Any) -> dict[str, Any]:
    base = stack_config("dev")
    cluster = {
        **dict(base.get("otelstack:cluster") or {}),
        "backends": {"clickhouse": {"enabled": True, **clickhouse}},
        "clickhouseSchema": {"enabled": True, "image": IMAGE},
    }
    return {**base, "otelstack:cluster": cluster, "otelstack:configs": str(configs)}


def _tree(**options: Any) -> Path:
    return clickhouse_configs(Path(tempfile.mkdtemp(prefix="otelstack-clickhouse-")) / "configs", **options)


@functools.cache
def registered(tls: bool) -> tuple[Registered, ...]:
    full = with_all_secrets(config(_tree(tls=tls)))
    # The admin password is left to the program: it generates it (the stack runs the server).
    given = {k: v for k, v in full["otelstack:secrets"].items() if k != ADMIN_KEY}
    return tuple(run_program({**full, "otelstack:secrets": given}))


def by_kind(resources: tuple[Registered, ...], kind: str) -> dict[str, Registered]:
    return {r.name.split("/")[-1]: r for r in resources if r.kind == kind}


def test_the_server_is_a_component_with_a_hardened_workload() -> None:
    for tls in (False, True):
        resources = registered(tls)
        server = by_kind(resources, "StatefulSet")["clickhouse"]
        assert component_of(server) == "Clickhouse"
        check_hardened(server)
        check_host_mounts(server)
        (container,) = server.object["spec"]["template"]["spec"]["containers"]
        assert container["readinessProbe"]["httpGet"]["scheme"] == ("HTTPS" if tls else "HTTP")
        ports = {p["port"] for p in by_kind(resources, "Service")["clickhouse"].object["spec"]["ports"]}
        assert ports == ({9440, 8443, 9363} if tls else {9000, 8123, 9363})
        assert ("clickhouse-tls" in by_kind(resources, "Certificate")) is tls


def test_the_schema_job_and_the_gateways_wait_for_the_server() -> None:
    resources = registered(True)
    (job,) = [r for r in resources if r.kind == "Job"]
    assert "clickhouse" in job.depends_on, job.depends_on
    gateway = by_kind(resources, "StatefulSet")["otel-gateway"]
    assert {"clickhouse", "clickhouse-schema"} <= set(gateway.depends_on), gateway.depends_on


def test_the_admin_password_is_generated_and_shared() -> None:
    resources = registered(False)
    secret = next(r for r in resources if r.kind == "Secret" and r.name.endswith("observability/otelstack-secrets"))
    assert secret.inputs["stringData"][ADMIN_KEY] == f"generated-observability/otelstack-secrets/{ADMIN_KEY}"
    (container,) = by_kind(resources, "StatefulSet")["clickhouse"].object["spec"]["template"]["spec"]["containers"]
    (env,) = container["env"]
    assert env["valueFrom"]["secretKeyRef"] == {"name": "otelstack-secrets", "key": ADMIN_KEY}


def test_policies_and_the_policy_pack_cover_clickhouse() -> None:
    for tls in (False, True):
        resources = registered(tls)
        items = [(r.typ, r.object) for r in resources]
        assert rules.workloads_without_policy(items) == []
        assert "otelstack-clickhouse" in by_kind(resources, "NetworkPolicy")
        for r in resources:
            assert rules.privileged(r.typ, r.object, rules.DEFAULT_ALLOW_LIST) == [], r.name
            assert rules.latest_images(r.typ, r.object) == [], r.name
            assert rules.insecure_tls(r.typ, r.object) == [], r.name


def test_mode_altinity_creates_the_operators_resources() -> None:
    full = with_all_secrets(config(_tree(tls=True, cluster="otel"), mode="altinity", replicas=2))
    resources = run_program(full)
    kinds = {r.typ for r in resources}
    assert "kubernetes:clickhouse.altinity.com/v1:ClickHouseInstallation" in kinds
    assert "kubernetes:clickhouse-keeper.altinity.com/v1:ClickHouseKeeperInstallation" in kinds
    chi = next(r for r in resources if r.kind == "ClickHouseInstallation")
    assert chi.object["spec"]["configuration"]["clusters"][0]["layout"] == {"shardsCount": 1, "replicasCount": 2}
    assert "StatefulSet" not in {r.kind for r in resources if component_of(r) == "Clickhouse"}


def test_an_endpoint_outside_the_cluster_stops_the_program() -> None:
    configs = in_cluster_configs(Path(tempfile.mkdtemp(prefix="otelstack-clickhouse-")) / "configs")
    secrets = with_all_secrets(config(_tree()))["otelstack:secrets"]
    stderr = _run_failing({**config(configs), "otelstack:secrets": secrets})
    assert "SpecError: `backends.clickhouse.endpoint` is 'tcp://clickhouse.dev.internal:9000'" in stderr
    assert f"clickhouse.{DOMAIN}:9000" in stderr
