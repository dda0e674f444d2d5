"""The backends in the Kubernetes stack: Prometheus, Alertmanager, Tempo, Loki and Grafana run the rendered
files byte for byte (Prometheus' prometheus.yml with the collectors found as pods: test_k8s_scrape.py), at
the rendered paths; the spec's endpoints must name their Services; NetworkPolicies
follow the flows matrix; every bad setting is a clear error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from otelstack.backends import render_backends
from otelstack.errors import SpecError
from otelstack.kubernetes import network
from otelstack.kubernetes.objects import Component
from otelstack.kubernetes.settings import parse_cluster
from otelstack.kubernetes.stack import export_stack
from otelstack.model.loader import load_spec
from otelstack.model.spec import PlatformSpec
from otelstack.render import kubernetes_components
from otelstack.validate import kubernetes as kv
from tests.unit.k8s_helpers import CONFIGS, find, pod_spec

BACKENDS = ("prometheus", "alertmanager", "tempo", "loki", "grafana")
ALL_ON = {"backends": {name: {"enabled": True} for name in BACKENDS}}
DOMAIN = "observability.svc.cluster.local"


def in_cluster_spec(env: str = "dev", receivers: list[dict[str, Any]] | None = None) -> PlatformSpec:
    """The environment's spec with its backend endpoints on the stack's Services."""
    spec = load_spec(CONFIGS, env)
    scheme = "http" if env == "dev" else "https"
    data = spec.model_dump(mode="json", by_alias=True)
    data["backends"]["tempo"]["endpoint"] = f"tempo.{DOMAIN}:4317"
    data["backends"]["loki"]["endpoint"] = f"{scheme}://loki.{DOMAIN}:3100/otlp"
    data["backends"]["prometheus"]["endpoint"] = f"{scheme}://prometheus.{DOMAIN}:9090/api/v1/write"
    if receivers is not None:
        data["alerting"]["receivers"] = receivers
    return PlatformSpec.model_validate(data)


def backend_stack(
    env: str = "dev", cluster: dict[str, Any] | None = None, spec: PlatformSpec | None = None
) -> tuple[Component, ...]:
    return kubernetes_components(spec or in_cluster_spec(env), parse_cluster(cluster or ALL_ON))


@pytest.fixture(scope="module", params=["dev", "prod"])
def rendered(request: pytest.FixtureRequest) -> tuple[str, PlatformSpec, tuple[Component, ...]]:
    spec = in_cluster_spec(request.param)
    return request.param, spec, kubernetes_components(spec, parse_cluster(ALL_ON))


def test_backends_are_off_by_default_and_the_stacks_are_unchanged() -> None:
    names = [c.name for c in kubernetes_components(load_spec(CONFIGS, "prod"), parse_cluster({}))]
    assert not set(names) & set(BACKENDS)


def test_each_backend_is_a_component_before_the_gateways(
    rendered: tuple[str, PlatformSpec, tuple[Component, ...]],
) -> None:
    _, _, components = rendered
    names = [c.name for c in components]
    assert set(BACKENDS) <= set(names)
    for store in ("prometheus", "tempo", "loki"):
        assert names.index(store) < names.index("gateway")


def test_configmaps_hold_the_renders_byte_for_byte(rendered: tuple[str, PlatformSpec, tuple[Component, ...]]) -> None:
    _, spec, components = rendered
    files = render_backends(spec)
    # prometheus.yml is the render with the collectors found as pods: tests/unit/test_k8s_scrape.py
    prometheus = find(components, "ConfigMap", "prometheus-config")["data"]
    assert prometheus.get("web.yml") == files.get("prometheus/web.yml")
    rules = find(components, "ConfigMap", "prometheus-rules")["data"]
    assert rules == {
        k.removeprefix("prometheus/rules/"): v for k, v in files.items() if k.startswith("prometheus/rules/")
    }
    am = find(components, "ConfigMap", "alertmanager-config")["data"]
    assert am["alertmanager.yml"] == files["alertmanager/alertmanager.yml"]
    assert find(components, "ConfigMap", "tempo-config")["data"]["tempo.yaml"] == files["tempo/tempo.yaml"]
    assert find(components, "ConfigMap", "loki-config")["data"]["loki.yaml"] == files["loki/loki.yaml"]
    grafana = find(components, "ConfigMap", "grafana-config")["data"]
    assert grafana["grafana.ini"] == files["grafana/grafana.ini"]
    assert grafana["datasources.yaml"] == files["grafana/provisioning/datasources/otelstack.yaml"]
    dashboards = find(components, "ConfigMap", "grafana-dashboards")["data"]
    assert dashboards == {
        k.removeprefix("grafana/dashboards/"): v for k, v in files.items() if k.startswith("grafana/dashboards/")
    }


def _projected_paths(workload: dict[str, Any]) -> set[str]:
    volume = next(v for v in pod_spec(workload)["volumes"] if v["name"] == "config")
    return {
        item["path"] for source in volume["projected"]["sources"] for ref in source.values() for item in ref["items"]
    }


def test_every_path_in_the_flags_is_mounted(rendered: tuple[str, PlatformSpec, tuple[Component, ...]]) -> None:
    env, spec, components = rendered
    files = render_backends(spec)
    for name, config_dir, data_dir in (
        ("prometheus", "/etc/prometheus", "/var/lib/prometheus"),
        ("alertmanager", "/etc/alertmanager", "/var/lib/alertmanager"),
    ):
        workload = find(components, "StatefulSet", name)
        (container,) = pod_spec(workload)["containers"]
        assert container["args"] == files[f"{name}/flags.txt"].split()
        mounted = _projected_paths(workload)
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        assert mounts[config_dir] == "config" and mounts[data_dir] == "data"
        for flag in container["args"]:
            value = flag.partition("=")[2]
            if value.startswith(config_dir + "/"):
                assert value.removeprefix(config_dir + "/") in mounted, flag
            elif value.startswith("/"):
                assert value.startswith(data_dir), flag
    if env == "prod":  # TLS: the web config and the certificate files the configs name
        assert {"web.yml", "tls/ca.crt", "tls/server.crt", "tls/server.key"} <= _projected_paths(
            find(components, "StatefulSet", "prometheus")
        )
        assert find(components, "Certificate", "prometheus-tls")["spec"]["dnsNames"][-1] == f"prometheus.{DOMAIN}"


def test_workloads_are_hardened_with_probes_resources_and_pinned_images(
    rendered: tuple[str, PlatformSpec, tuple[Component, ...]],
) -> None:
    env, _, components = rendered
    tags = {"prometheus": "v3.16.0", "alertmanager": "v0.35.0", "tempo": "2.10.6", "loki": "3.7.8", "grafana": "12.4.0"}
    for name in BACKENDS:
        workload = find(components, "Deployment" if name == "grafana" else "StatefulSet", name)
        pod = pod_spec(workload)
        (container,) = pod["containers"]
        assert container["image"].endswith(f":{tags[name]}")
        sc = container["securityContext"]
        assert (
            sc["readOnlyRootFilesystem"]
            and not sc["allowPrivilegeEscalation"]
            and sc["capabilities"] == {"drop": ["ALL"]}
        )
        # only Prometheus calls the API (it finds the collectors' pods): test_k8s_scrape.py
        assert pod["securityContext"]["runAsNonRoot"] and pod["automountServiceAccountToken"] is (name == "prometheus")
        assert container["resources"]["limits"]["memory"] == container["resources"]["requests"]["memory"]
        ready = container["readinessProbe"]
        path = ready.get("httpGet", {}).get("path")
        assert path == {"prometheus": "/-/ready", "alertmanager": "/-/ready", "grafana": "/api/health"}.get(
            name, "/ready"
        )
        scheme = ready["httpGet"]["scheme"]
        assert scheme == ("HTTP" if env == "dev" else "HTTPS")  # Alertmanager too: HTTPS where Prometheus is


def test_pvc_size_and_storage_class_come_from_the_settings() -> None:
    cluster = {"storageClass": "standard", "backends": {**ALL_ON["backends"],
               "prometheus": {"enabled": True, "storageGib": 123, "storageClass": "fast-ssd"}}}  # fmt: skip
    components = backend_stack(cluster=cluster)
    claim = find(components, "StatefulSet", "prometheus")["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["storageClassName"] == "fast-ssd" and claim["resources"]["requests"]["storage"] == "123Gi"
    loki = find(components, "StatefulSet", "loki")["spec"]["volumeClaimTemplates"][0]["spec"]
    assert loki["storageClassName"] == "standard"
    assert find(components, "PersistentVolumeClaim", "grafana-data")["spec"]["storageClassName"] == "standard"


def test_secrets_are_references_filled_from_the_stack_config() -> None:
    receivers = [{"name": "pd", "kind": "pagerduty", "secret_file": "/etc/alertmanager/secrets/pagerduty-key"}]
    components = backend_stack("prod", spec=in_cluster_spec("prod", receivers))
    secret = find(components, "Secret", "alertmanager-receivers")
    assert secret["stringData"] == {"pagerduty-key": ""}
    assert secret["metadata"]["annotations"]["otelstack.io/values-from"] == "pulumi-config"
    assert "secrets/pagerduty-key" in _projected_paths(find(components, "StatefulSet", "alertmanager"))
    assert (
        "/etc/alertmanager/secrets/pagerduty-key"
        in find(components, "ConfigMap", "alertmanager-config")["data"]["alertmanager.yml"]
    )
    admin = find(components, "Secret", "grafana-admin")
    assert admin["stringData"] == {"GRAFANA_ADMIN_PASSWORD": "", "GRAFANA_SECRET_KEY": ""}
    grafana = find(components, "Deployment", "grafana")
    assert {"secrets/admin-password", "secrets/secret-key"} <= _projected_paths(grafana)
    (container,) = pod_spec(grafana)["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["OTELSTACK_CLICKHOUSE_READER_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "otelstack-secrets"
    keys = find(components, "Secret", "otelstack-secrets", "observability")["stringData"]
    assert "OTELSTACK_CLICKHOUSE_READER_PASSWORD" in keys and "OTELSTACK_OPAMP_ADMIN_TOKEN" in keys
    ini = find(components, "ConfigMap", "grafana-config")["data"]["grafana.ini"]
    assert "[auth.anonymous]\nenabled = false" in ini


def test_network_policies_follow_the_flows_matrix() -> None:
    components = backend_stack()
    policy = {o["metadata"]["name"]: o for c in components for o in c.objects if o["kind"] == "NetworkPolicy"}

    def names(name: str, kind: str) -> list[str]:
        return policy[name]["metadata"]["annotations"].get(f"otelstack.io/{kind}-rules", "").split(",")

    assert {"gateway-to-prometheus", "tempo-to-prometheus", "grafana-to-prometheus"} <= set(
        names("otelstack-prometheus", "ingress")
    )
    assert {"prometheus-scrapes-agents", "prometheus-scrapes-gateways", "prometheus-to-alertmanager"} <= set(
        names("otelstack-prometheus", "egress")
    )
    assert set(names("otelstack-gateway", "egress")) >= {"gateway-to-tempo", "gateway-to-loki", "gateway-to-prometheus"}
    assert "prometheus-to-alertmanager" in names("otelstack-alertmanager", "ingress")
    assert {"grafana-to-tempo", "grafana-to-loki", "grafana-to-prometheus", "grafana-to-alertmanager"} <= set(
        names("otelstack-grafana", "egress")
    )
    # In-cluster targets are pods on named ports, never an address range.
    gateway = policy["otelstack-gateway"]["spec"]["egress"]
    to_prometheus = gateway[names("otelstack-gateway", "egress").index("gateway-to-prometheus")]
    assert to_prometheus == {
        "to": [
            {
                "podSelector": {
                    "matchLabels": {
                        "app.kubernetes.io/part-of": "otelstack",
                        "app.kubernetes.io/component": "prometheus",
                    }
                }
            }
        ],
        "ports": [{"protocol": "TCP", "port": "http"}],
    }
    # Every named port of a policy is a port name of the pods it selects.
    pods = {
        o["metadata"]["name"]: o
        for c in components
        for o in c.objects
        if o["kind"] in ("StatefulSet", "Deployment", "DaemonSet")
    }
    for tier in ("prometheus", "alertmanager", "tempo", "loki", "grafana"):
        (container,) = pod_spec(pods[tier])["containers"]
        declared = {p["name"] for p in container["ports"]}
        for rule in policy[f"otelstack-{tier}"]["spec"].get("ingress", []):
            assert {p["port"] for p in rule["ports"]} <= declared


def test_a_backend_outside_the_cluster_is_reached_on_the_matrix_port() -> None:
    spec = in_cluster_spec()
    components = kubernetes_components(spec, parse_cluster({"backends": {"prometheus": {"enabled": True}}}))
    policy = {o["metadata"]["name"]: o for c in components for o in c.objects if o["kind"] == "NetworkPolicy"}
    egress = policy["otelstack-prometheus"]
    names = egress["metadata"]["annotations"]["otelstack.io/egress-rules"].split(",")
    scrape = egress["spec"]["egress"][names.index("prometheus-scrapes-clickhouse")]
    assert scrape["ports"] == [{"protocol": "TCP", "port": 9363}]
    assert network.outside_ports(spec, "clickhouse") == (9000,)


@pytest.mark.parametrize(
    ("backend", "field", "value", "expected"),
    [
        ("prometheus", "prometheus", "http://prometheus.dev.internal:9090/api/v1/write", "prometheus.dev.internal"),
        ("prometheus", "prometheus", f"http://prometheus.{DOMAIN}:9091/api/v1/write", "port 9090"),
        ("tempo", "tempo", "tempo.dev.internal:4317", "'tempo.dev.internal:4317'"),
        ("loki", "loki", "http://loki.other:3100/otlp", "'http://loki.other:3100/otlp'"),
    ],
)
def test_an_endpoint_that_does_not_name_the_service_is_an_error(
    backend: str, field: str, value: str, expected: str
) -> None:
    data = in_cluster_spec().model_dump(mode="json", by_alias=True)
    data["backends"][field]["endpoint"] = value
    with pytest.raises(SpecError) as excinfo:
        backend_stack(spec=PlatformSpec.model_validate(data))
    message = str(excinfo.value)
    assert f"`backends.{field}.endpoint`" in message and expected in message
    assert f"{backend}.{DOMAIN}" in message and f"otelstack:cluster.backends.{backend}.enabled" in message


def test_alertmanager_beside_a_prometheus_outside_the_cluster_is_an_error() -> None:
    spec = load_spec(CONFIGS, "dev")
    with pytest.raises(SpecError, match=r"alertmanager.dev.internal:9093.*alertmanager\.observability"):
        kubernetes_components(spec, parse_cluster({"backends": {"alertmanager": {"enabled": True}}}))


def test_a_backend_the_spec_turns_off_cannot_run_in_the_cluster() -> None:
    data = in_cluster_spec().model_dump(mode="json", by_alias=True)
    data["backends"]["loki"]["enabled"] = False
    with pytest.raises(SpecError, match=r"backends.loki.enabled.*is true, but the spec's `backends.loki.enabled`"):
        backend_stack(spec=PlatformSpec.model_validate(data))


def test_a_receiver_secret_outside_the_mounted_directory_is_an_error() -> None:
    receivers = [{"name": "hook", "kind": "webhook", "secret_file": "/run/secrets/hook-url"}]
    with pytest.raises(
        SpecError, match=r"receivers` 'hook': secret_file is '/run/secrets/hook-url'.*/etc/alertmanager/secrets/"
    ):
        backend_stack(spec=in_cluster_spec(receivers=receivers))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"backends": {"loki": {"storageGib": 0}}},
            "backends.loki.storageGib`: Input should be greater than or equal to 1",
        ),
        ({"backends": {"tempo": {"storageClass": "Fast_SSD"}}}, "'Fast_SSD' is not a StorageClass name"),
        ({"storageClass": "-bad"}, "'-bad' is not a StorageClass name"),
        ({"backends": {"grafana": {"memoryLimit": "lots"}}}, "backends.grafana.memoryLimit`"),
        ({"backends": {"prometheus": {"image": {"repository": "prom/prometheus", "tag": "latest"}}}}, "is not pinned"),
        (
            {"backends": {"mimir": {"enabled": True}}},
            "unknown key; allowed: prometheus, alertmanager, tempo, loki, grafana",
        ),
    ],
)
def test_bad_backend_settings_are_clear_errors(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as excinfo:
        parse_cluster(settings)
    assert message in "\n".join(excinfo.value.issues)


def test_the_exported_objects_pass_the_schemas_and_checkov(tmp_path: Path) -> None:
    pytest.importorskip("kubernetes_validate")
    components = tuple(c for c in backend_stack("prod") if c.name in (*BACKENDS, "network-policies"))
    files = export_stack(components)
    report = kv.validate_objects(
        [o for c in components for o in c.objects], files, checkov=kv.checkov_program() is not None
    )
    assert report.errors == []
    for text in files.values():
        assert all(doc for doc in yaml.safe_load_all(text))
