"""ClickHouse in the Kubernetes stack, mode altinity: a ClickHouseInstallation and a ClickHouseKeeperInstallation
of the Altinity operator (release 0.25.6) with the spec's cluster, the stack settings' shards and replicas, the
rendered fragment byte for byte, TLS as the endpoint asks, and NetworkPolicies for the replicas and Keeper.

The CRD check reads the operator's install bundle at its pinned release from ``OTELSTACK_ALTINITY_BUNDLE``
(``deploy/operator/clickhouse-operator-install-bundle.yaml`` of the operator's ``release-0.25.6`` tag): the Go
module proxy this project fetches from does not serve the operator's module, so no pinned copy can be fetched
at test time, and none is committed; without the file the check is skipped and says why."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from otelstack.backends import render_backends
from otelstack.kubernetes.clickhouse_altinity import ALTINITY_OPERATOR, BUNDLE_ENV, operator_resources
from otelstack.kubernetes.stack import export_stack
from otelstack.validate import kubernetes as kv
from tests.unit.k8s_helpers import find
from tests.unit.test_k8s_clickhouse_server import ON, clickhouse_spec, render

ALTINITY = {**ON, "backends": {"clickhouse": {"enabled": True, "mode": "altinity", "shards": 2, "replicas": 3}}}


def altinity(env: str = "prod", cluster: dict[str, Any] | None = None) -> Any:
    return render(spec=clickhouse_spec(env, cluster="otel"), cluster=cluster or ALTINITY)


def _pod(resource: dict[str, Any]) -> dict[str, Any]:
    (template,) = resource["spec"]["templates"]["podTemplates"]
    spec: dict[str, Any] = template["spec"]
    return spec


def test_the_installation_is_the_spec_cluster_with_keeper() -> None:
    components = altinity()
    chi = find(components, "ClickHouseInstallation", "otelstack")
    chk = find(components, "ClickHouseKeeperInstallation", "otelstack")
    assert (
        chi["apiVersion"] == "clickhouse.altinity.com/v1" and chk["apiVersion"] == "clickhouse-keeper.altinity.com/v1"
    )
    (cluster,) = chi["spec"]["configuration"]["clusters"]
    assert cluster["name"] == "otel" and cluster["layout"] == {"shardsCount": 2, "replicasCount": 3}
    assert (cluster["secure"], cluster["insecure"]) == ("yes", "no")
    assert chi["spec"]["configuration"]["zookeeper"]["nodes"] == [
        {"host": "keeper-otelstack.observability.svc", "port": 2181}
    ]
    assert chk["spec"]["configuration"]["clusters"][0]["layout"] == {"replicasCount": 3}
    assert not [o for c in components for o in c.objects if o["kind"] == "StatefulSet" and "clickhouse" in str(o)]
    assert ALTINITY_OPERATOR == "0.25.6"


def test_the_rendered_fragment_and_the_admin_user_reach_the_servers() -> None:
    spec = clickhouse_spec("prod", cluster="otel")
    chi = find(render(spec=spec, cluster=ALTINITY), "ClickHouseInstallation", "otelstack")
    files = chi["spec"]["configuration"]["files"]
    assert files["config.d/otelstack.xml"] == render_backends(spec)["clickhouse/config.d/otelstack.xml"]
    assert "<caConfig>/etc/clickhouse-server/tls/ca.crt</caConfig>" in files["config.d/otelstack-tls.xml"]
    users = chi["spec"]["configuration"]["users"]
    assert users["otelstack_admin/k8s_secret_env_password"] == "otelstack-secrets/OTELSTACK_CLICKHOUSE_ADMIN_PASSWORD"
    (service,) = chi["spec"]["templates"]["serviceTemplates"]
    assert service["generateName"] == "clickhouse"
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"secureclient": 9440, "https": 8443,
                                                                       "metrics": 9363}  # fmt: skip
    (container,) = _pod(chi)["containers"]
    assert container["name"] == "clickhouse" and container["image"].endswith(":26.9.14.10")
    assert container["securityContext"]["readOnlyRootFilesystem"] and _pod(chi)["automountServiceAccountToken"] is False


def test_network_policies_cover_replicas_and_keeper() -> None:
    components = altinity()
    policies = {o["metadata"]["name"]: o for c in components for o in c.objects if o["kind"] == "NetworkPolicy"}
    ch = policies["otelstack-clickhouse"]
    ingress = ch["metadata"]["annotations"]["otelstack.io/ingress-rules"].split(",")
    assert {"gateway-to-clickhouse", "clickhouse-replicas", "clickhouse-operator", "clickhouse-schema"} <= set(ingress)
    gateway = ch["spec"]["ingress"][ingress.index("gateway-to-clickhouse")]
    assert gateway["ports"] == [{"protocol": "TCP", "port": "secureclient"}, {"protocol": "TCP", "port": "https"}]
    egress = ch["metadata"]["annotations"]["otelstack.io/egress-rules"].split(",")
    assert ch["spec"]["egress"][egress.index("clickhouse-keeper")]["ports"] == [{"protocol": "TCP", "port": "zk"}]
    keeper = policies["otelstack-clickhouse-keeper"]
    assert keeper["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "clickhouse-keeper"
    chk = find(components, "ClickHouseKeeperInstallation", "otelstack")
    labels = chk["spec"]["templates"]["podTemplates"][0]["metadata"]["labels"]
    assert keeper["spec"]["podSelector"]["matchLabels"].items() <= labels.items()


def test_the_certificate_names_every_host() -> None:
    names = find(altinity(), "Certificate", "clickhouse-tls")["spec"]["dnsNames"]
    assert "clickhouse.observability.svc.cluster.local" in names and "*.observability.svc" in names


def test_a_plaintext_installation_opens_the_plaintext_ports() -> None:
    components = altinity("dev")
    chi = find(components, "ClickHouseInstallation", "otelstack")
    (cluster,) = chi["spec"]["configuration"]["clusters"]
    assert (cluster["secure"], cluster["insecure"]) == ("no", "yes")
    assert "config.d/otelstack-tls.xml" not in chi["spec"]["configuration"]["files"]
    ports = {p["name"]: p["port"] for p in chi["spec"]["templates"]["serviceTemplates"][0]["spec"]["ports"]}
    assert ports == {"tcp": 9000, "http": 8123, "metrics": 9363}


@pytest.mark.skipif(not os.environ.get(BUNDLE_ENV), reason=f"{BUNDLE_ENV} is not set (see the module's text)")
@pytest.mark.parametrize("env", ["prod", "dev"])
def test_the_resources_fit_the_operators_crds(env: str) -> None:
    pytest.importorskip("jsonschema")
    bundle = Path(os.environ[BUNDLE_ENV])
    assert f"altinity/clickhouse-operator:{ALTINITY_OPERATOR}" in bundle.read_text(encoding="utf-8")
    objects = [o for c in altinity(env) for o in c.objects if o["apiVersion"].startswith("clickhouse")]
    assert len(objects) == 2
    report = kv.Report()
    kv.validate_custom_resources(objects, [bundle], report)
    assert report.errors == []
    wrong = {**objects[0], "spec": {**objects[0]["spec"], "templates": {"podTemplate": []}}}
    kv.validate_custom_resources([wrong], [bundle], report)
    assert report.errors, "a field the CRD does not declare must be refused"


def test_the_exported_objects_pass_the_schemas_and_checkov() -> None:
    pytest.importorskip("kubernetes_validate")
    components = tuple(c for c in altinity() if c.name in ("clickhouse", "network-policies"))
    builtin = [o for c in components for o in c.objects if not o["apiVersion"].startswith("clickhouse")]
    report = kv.validate_objects(builtin, export_stack(components), checkov=kv.checkov_program() is not None)
    assert report.errors == []


def test_plan_checks_the_operators_resources_only_against_the_given_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    """`plan` keeps the operator's resources out of the pinned-CRD check (no pinned CRD defines them) and
    checks them against the bundle when one is given, else says they were not checked."""
    from otelstack import render as entry

    given = os.environ.get(BUNDLE_ENV)
    operator = operator_resources([o for c in altinity() for o in c.objects])
    assert {o["kind"] for o in operator} == {"ClickHouseInstallation", "ClickHouseKeeperInstallation"}
    monkeypatch.delenv(BUNDLE_ENV, raising=False)
    report = kv.Report()
    entry._check_operator_resources(operator, report)
    assert report.errors == [] and BUNDLE_ENV in report.notes[0] and ALTINITY_OPERATOR in report.notes[0]
    if given:
        monkeypatch.setenv(BUNDLE_ENV, given)
        report = kv.Report()
        entry._check_operator_resources(operator, report)
        assert report.errors == [] and report.notes == []
        broken = {**operator[0], "spec": {**operator[0]["spec"], "replicas": 3}}
        entry._check_operator_resources([broken], report)
        assert report.errors and "replicas" in report.errors[0]
