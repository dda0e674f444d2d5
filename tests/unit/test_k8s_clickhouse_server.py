"""ClickHouse in the Kubernetes stack, mode single: one server running the rendered config.d/otelstack.xml
byte for byte, TLS (or plaintext) as the spec's endpoint asks, the admin user from otelstack-secrets, the
schema Job after it, NetworkPolicies from the flows matrix; every mismatch is a clear error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from otelstack.backends import render_backends
from otelstack.errors import SpecError
from otelstack.kubernetes.settings import parse_cluster
from otelstack.kubernetes.stack import export_stack
from otelstack.model.spec import PlatformSpec
from otelstack.render import kubernetes_components
from otelstack.validate import kubernetes as kv
from tests.unit.k8s_helpers import find, pod_spec
from tests.unit.test_k8s_backends import DOMAIN, in_cluster_spec

IMAGE = {"repository": "registry.example/otelstack", "tag": "0.1.0"}
ON = {"backends": {"clickhouse": {"enabled": True}}, "clickhouseSchema": {"enabled": True, "image": IMAGE}}
ENDPOINTS = {"dev": f"tcp://clickhouse.{DOMAIN}:9000", "prod": f"tcp://clickhouse.{DOMAIN}:9440?secure=true"}


def clickhouse_spec(env: str, endpoint: str | None = None, **clickhouse: Any) -> PlatformSpec:
    """The environment's spec with every backend on the stack's Services (ClickHouse too)."""
    data = in_cluster_spec(env).model_dump(mode="json", by_alias=True)
    data["backends"]["clickhouse"].update(endpoint=endpoint or ENDPOINTS[env], **clickhouse)
    return PlatformSpec.model_validate(data)


def render(env: str = "prod", cluster: dict[str, Any] | None = None, spec: PlatformSpec | None = None) -> Any:
    return kubernetes_components(spec or clickhouse_spec(env), parse_cluster(cluster or ON))


@pytest.fixture(scope="module", params=["dev", "prod"])
def rendered(request: pytest.FixtureRequest) -> tuple[str, PlatformSpec, Any]:
    spec = clickhouse_spec(request.param)
    return request.param, spec, render(spec=spec)


def _server(components: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    workload = find(components, "StatefulSet", "clickhouse")
    (container,) = pod_spec(workload)["containers"]
    return workload, container


def test_the_server_runs_the_rendered_fragment_byte_for_byte(rendered: tuple[str, PlatformSpec, Any]) -> None:
    _, spec, components = rendered
    data = find(components, "ConfigMap", "clickhouse-config")["data"]
    assert data["otelstack.xml"] == render_backends(spec)["clickhouse/config.d/otelstack.xml"]
    workload, container = _server(components)
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts["/etc/clickhouse-server/config.d"] == "config" and mounts["/var/lib/clickhouse"] == "data"
    assert mounts["/etc/clickhouse-server/users.d"] == "users"
    config = next(v for v in pod_spec(workload)["volumes"] if v["name"] == "config")
    (source,) = config["projected"]["sources"]
    assert {i["path"] for i in source["configMap"]["items"]} == {"otelstack.xml", "otelstack-kubernetes.xml"}
    assert container["image"] == "docker.io/clickhouse/clickhouse-server:26.9.14.10"
    assert container["command"] == ["/usr/bin/clickhouse-server"]
    assert container["args"] == ["--config-file=/etc/clickhouse-server/config.xml"]


def test_tls_follows_the_endpoint(rendered: tuple[str, PlatformSpec, Any]) -> None:
    env, _, components = rendered
    workload, container = _server(components)
    fragment = find(components, "ConfigMap", "clickhouse-config")["data"]["otelstack-kubernetes.xml"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    service = {p["name"]: p["port"] for p in find(components, "Service", "clickhouse")["spec"]["ports"]}
    probe = container["readinessProbe"]["httpGet"]
    if env == "prod":
        assert ports == service == {"native-tls": 9440, "https": 8443, "metrics": 9363}
        assert probe == {"path": "/ping", "port": "https", "scheme": "HTTPS"}
        assert "<tcp_port_secure>9440</tcp_port_secure>" in fragment and '<tcp_port remove="remove" />' in fragment
        assert "<certificateFile>/etc/clickhouse-server/tls/server.crt</certificateFile>" in fragment
        tls = next(v for v in pod_spec(workload)["volumes"] if v["name"] == "tls")
        assert tls["secret"]["secretName"] == "clickhouse-tls"
        assert {i["path"] for i in tls["secret"]["items"]} == {"ca.crt", "server.crt", "server.key"}
        names = find(components, "Certificate", "clickhouse-tls")["spec"]["dnsNames"]
        assert f"clickhouse.{DOMAIN}" in names
    else:
        assert ports == service == {"native": 9000, "http": 8123, "metrics": 9363}
        assert probe == {"path": "/ping", "port": "http", "scheme": "HTTP"}
        assert "<tcp_port>9000</tcp_port>" in fragment and "openSSL" not in fragment
        assert not [o for c in components for o in c.objects if o["kind"] == "Certificate" and "clickhouse" in str(o)]


def test_mtls_verifies_client_certificates_when_presented() -> None:
    data = clickhouse_spec("prod").model_dump(mode="json", by_alias=True)
    data["security"]["tls"]["gateway_to_backends"] = "mtls"
    fragment = find(render(spec=PlatformSpec.model_validate(data)), "ConfigMap", "clickhouse-config")["data"]
    assert "<verificationMode>relaxed</verificationMode>" in fragment["otelstack-kubernetes.xml"]
    plain = find(render("prod"), "ConfigMap", "clickhouse-config")["data"]["otelstack-kubernetes.xml"]
    assert "<verificationMode>none</verificationMode>" in plain


def test_the_admin_password_comes_from_otelstack_secrets_and_may_be_generated() -> None:
    components = render("prod")
    _, container = _server(components)
    (env,) = container["env"]
    assert env == {
        "name": "CLICKHOUSE_ADMIN_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "otelstack-secrets", "key": "OTELSTACK_CLICKHOUSE_ADMIN_PASSWORD"}},
    }
    users = find(components, "ConfigMap", "clickhouse-users")["data"]["otelstack-admin.xml"]
    assert '<password from_env="CLICKHOUSE_ADMIN_PASSWORD" />' in users and "<otelstack_admin>" in users
    assert '<default remove="remove" />' in users
    job = find(components, "Job")
    (job_container,) = pod_spec(job)["containers"]
    job_env = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in job_container["env"] if "valueFrom" in e}
    assert job_env["CLICKHOUSE_ADMIN_PASSWORD"] == "OTELSTACK_CLICKHOUSE_ADMIN_PASSWORD"
    assert "otelstack_admin" in job_container["command"]
    secret = find(components, "Secret", "otelstack-secrets", "observability")
    generated = secret["metadata"]["annotations"]["otelstack.io/generated-keys"].split(",")
    assert "OTELSTACK_CLICKHOUSE_ADMIN_PASSWORD" in generated
    outside = kubernetes_components(
        clickhouse_spec("prod"), parse_cluster({"clickhouseSchema": ON["clickhouseSchema"]})
    )
    annotations = find(outside, "Secret", "otelstack-secrets", "observability")["metadata"]["annotations"]
    assert "OTELSTACK_CLICKHOUSE_ADMIN_PASSWORD" not in annotations["otelstack.io/generated-keys"]


def test_the_schema_job_and_the_gateways_come_after_the_server(rendered: tuple[str, PlatformSpec, Any]) -> None:
    env, _, components = rendered
    names = [c.name for c in components]
    assert names.index("clickhouse") < names.index("clickhouse-schema") < names.index("gateway")
    job = next(c for c in components if c.name == "clickhouse-schema")
    assert "clickhouse" in job.depends_on
    (container,) = pod_spec(find(components, "Job"))["containers"]
    url = "https://clickhouse.observability.svc.cluster.local:8443" if env == "prod" else None
    assert (url or "http://clickhouse.observability.svc.cluster.local:8123") in container["command"]


def test_the_workload_is_hardened() -> None:
    workload, container = _server(render("prod"))
    pod = pod_spec(workload)
    sc = container["securityContext"]
    assert (
        sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"] == {"drop": ["ALL"]}
    )
    assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] > 0
    assert pod["automountServiceAccountToken"] is False
    assert container["resources"]["limits"]["memory"] == container["resources"]["requests"]["memory"] == "4Gi"
    assert workload["spec"]["template"]["metadata"]["annotations"]["otelstack.io/config-sha256"]
    claim = workload["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["resources"]["requests"]["storage"] == "100Gi"


def test_a_changed_fragment_rolls_the_pod() -> None:
    first, _ = _server(render("prod"))
    data = clickhouse_spec("prod").model_dump(mode="json", by_alias=True)
    data["security"]["tls"]["gateway_to_backends"] = "mtls"
    second, _ = _server(render(spec=PlatformSpec.model_validate(data)))
    key = "otelstack.io/config-sha256"
    assert (
        first["spec"]["template"]["metadata"]["annotations"][key]
        != second["spec"]["template"]["metadata"]["annotations"][key]
    )


def _policies(components: Any) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for c in components for o in c.objects if o["kind"] == "NetworkPolicy"}


def _rule(policy: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    names = policy["metadata"]["annotations"][f"otelstack.io/{kind}-rules"].split(",")
    rule: dict[str, Any] = policy["spec"][kind][names.index(name)]
    return rule


def test_network_policies_open_the_ports_the_server_serves(rendered: tuple[str, PlatformSpec, Any]) -> None:
    env, _, components = rendered
    policies = _policies(components)
    native, http = ("native-tls", "https") if env == "prod" else ("native", "http")
    ingress = _rule(policies["otelstack-clickhouse"], "ingress", "gateway-to-clickhouse")
    assert ingress["ports"] == [{"protocol": "TCP", "port": native}, {"protocol": "TCP", "port": http}]
    job_in = _rule(policies["otelstack-clickhouse"], "ingress", "clickhouse-schema")
    assert job_in["ports"] == [{"protocol": "TCP", "port": http}]
    assert job_in["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "clickhouse-schema"
    job_out = _rule(policies["otelstack-clickhouse-schema"], "egress", "clickhouse")
    assert job_out["ports"] == [{"protocol": "TCP", "port": http}]
    assert job_out["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "clickhouse"
    gateway = _rule(policies["otelstack-gateway"], "egress", "gateway-to-clickhouse")
    assert gateway["ports"] == ingress["ports"]
    _, container = _server(components)
    declared = {p["name"] for p in container["ports"]}
    for rule in policies["otelstack-clickhouse"]["spec"]["ingress"]:
        assert {p["port"] for p in rule["ports"]} <= declared


@pytest.mark.parametrize(
    ("env", "endpoint", "expected"),
    [
        ("prod", "tcp://clickhouse.prod.internal:9440?secure=true", "allowed hosts: clickhouse, "),
        ("prod", f"tcp://clickhouse.{DOMAIN}:9000?secure=true", "port 9440"),
        ("prod", f"https://clickhouse.{DOMAIN}:9440", "port 8443"),
        ("dev", f"http://clickhouse.{DOMAIN}:8443", "port 8123"),
        ("dev", f"tcp://clickhouse.{DOMAIN}:9440?secure=true", "gateway_to_backends` is insecure"),
        ("dev", f"https://clickhouse.{DOMAIN}:8443?skip_verify=true", "without skip_verify"),
    ],
)
def test_an_endpoint_that_does_not_fit_the_server_is_an_error(env: str, endpoint: str, expected: str) -> None:
    spec = clickhouse_spec(env, endpoint)
    with pytest.raises(SpecError) as excinfo:
        render(spec=spec)
    assert "`backends.clickhouse.endpoint`" in str(excinfo.value) and expected in str(excinfo.value)


def test_a_plaintext_endpoint_on_a_protected_hop_is_an_error() -> None:
    data = clickhouse_spec("dev").model_dump(mode="json", by_alias=True)
    data["security"]["tls"]["gateway_to_backends"] = "tls"
    with pytest.raises(SpecError, match=r"plaintext native protocol .*gateway_to_backends` is tls"):
        render(spec=PlatformSpec.model_validate(data))


def test_a_schema_url_elsewhere_is_an_error() -> None:
    cluster = {**ON, "clickhouseSchema": {**ON["clickhouseSchema"], "url": "https://ch.example:8443"}}
    with pytest.raises(SpecError, match=r"`otelstack:cluster.clickhouseSchema.url` is 'https://ch.example:8443'"):
        render("prod", cluster)


def test_the_layout_must_fit_the_mode() -> None:
    with pytest.raises(SpecError, match=r"cluster` is 'otel'.*mode is single"):
        render(spec=clickhouse_spec("prod", cluster="otel"))
    altinity = {**ON, "backends": {"clickhouse": {"enabled": True, "mode": "altinity"}}}
    with pytest.raises(SpecError, match=r"mode is altinity .* `backends.clickhouse.cluster` is null"):
        render("prod", altinity)
    data = clickhouse_spec("prod").model_dump(mode="json", by_alias=True)
    data["backends"]["clickhouse"]["enabled"] = False
    with pytest.raises(SpecError, match=r"backends.clickhouse.enabled is true, but the spec's"):
        render(spec=PlatformSpec.model_validate(data), cluster=ON)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"mode": "replicated"}, "backends.clickhouse.mode`: Input should be 'single' or 'altinity'"),
        ({"shards": 2}, "`shards` = 2 and `replicas` = 1 with mode `single`"),
        ({"mode": "altinity", "keeperReplicas": 2}, "backends.clickhouse.keeperReplicas`"),
        ({"storageGib": 0}, "backends.clickhouse.storageGib`: Input should be greater than or equal to 1"),
        ({"image": {"repository": "clickhouse/clickhouse-server", "tag": "latest"}}, "is not pinned"),
        ({"replica": 2}, "backends.clickhouse.replica`: unknown key; allowed: enabled, image"),
    ],
)
def test_bad_clickhouse_settings_are_clear_errors(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as excinfo:
        parse_cluster({"backends": {"clickhouse": settings}}, source="stacks/platform/Pulumi.prod.yaml")
    issues = "\n".join(excinfo.value.issues)
    assert message in issues and "stacks/platform/Pulumi.prod.yaml" in issues


def test_a_server_without_the_schema_job_is_an_error() -> None:
    with pytest.raises(SpecError) as excinfo:
        parse_cluster({"backends": {"clickhouse": {"enabled": True}}}, source="stacks/platform/Pulumi.dev.yaml")
    (issue,) = excinfo.value.issues
    assert issue.startswith("stacks/platform/Pulumi.dev.yaml: `otelstack:cluster`")
    assert "`backends.clickhouse.enabled` is true but `clickhouseSchema.enabled` is false" in issue


def test_the_exported_objects_pass_the_schemas_and_checkov(tmp_path: Path) -> None:
    pytest.importorskip("kubernetes_validate")
    for env in ("dev", "prod"):
        components = tuple(c for c in render(env) if c.name in ("clickhouse", "clickhouse-schema", "network-policies"))
        files = export_stack(components)
        report = kv.validate_objects(
            [o for c in components for o in c.objects], files, checkov=kv.checkov_program() is not None
        )
        assert report.errors == [], env
        for text in files.values():
            assert all(doc for doc in yaml.safe_load_all(text))
