"""Grafana's ClickHouse datasource plugin in the cluster (docs/kubernetes/backends.md): where the rendered
provisioning has the ClickHouse datasource, Grafana preinstalls the pinned plugin before serving and its
NetworkPolicy opens HTTPS to public addresses (or the given networks) only; without that datasource nothing
is installed or opened; `install: image` downloads nothing; every bad value is a clear error."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from otelstack.backends import render_backends
from otelstack.backends.grafana.provisioning import DATASOURCES_FILE
from otelstack.errors import SpecError
from otelstack.kubernetes.objects import Component
from otelstack.kubernetes.settings import CLICKHOUSE_PLUGIN_VERSION, parse_cluster
from otelstack.kubernetes.stack import export_stack
from otelstack.model.spec import PlatformSpec
from otelstack.render import kubernetes_components
from otelstack.validate import kubernetes as kv
from tests.unit.k8s_helpers import find, pod_spec
from tests.unit.test_k8s_backends import ALL_ON, in_cluster_spec

PLUGIN = "grafana-clickhouse-datasource"


def grafana_stack(plugin: dict[str, Any] | None = None, spec: PlatformSpec | None = None) -> tuple[Component, ...]:
    backends = {**ALL_ON["backends"], "grafana": {"enabled": True, **({"clickhousePlugin": plugin} if plugin else {})}}
    return kubernetes_components(spec or in_cluster_spec("prod"), parse_cluster({"backends": backends}))


def grafana_env(components: tuple[Component, ...]) -> dict[str, Any]:
    (container,) = pod_spec(find(components, "Deployment", "grafana"))["containers"]
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def egress(components: tuple[Component, ...]) -> dict[str, Any]:
    policy = find(components, "NetworkPolicy", "otelstack-grafana")
    names = policy["metadata"]["annotations"]["otelstack.io/egress-rules"].split(",")
    return dict(zip(names, policy["spec"]["egress"], strict=True))


def without_clickhouse() -> PlatformSpec:
    data = in_cluster_spec("prod").model_dump(mode="json", by_alias=True)
    data["backends"]["clickhouse"]["enabled"] = False
    return PlatformSpec.model_validate(data)


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_pinned_plugin_is_preinstalled_where_the_clickhouse_datasource_is_provisioned(env: str) -> None:
    spec = in_cluster_spec(env)
    provisioned = yaml.safe_load(render_backends(spec)[DATASOURCES_FILE])["datasources"]
    assert PLUGIN in {d["type"] for d in provisioned}
    components = grafana_stack(spec=spec)
    variables = grafana_env(components)
    assert variables["GF_PLUGINS_PREINSTALL_SYNC"] == f"{PLUGIN}@{CLICKHOUSE_PLUGIN_VERSION}" == f"{PLUGIN}@4.20.0"
    assert "GF_PLUGINS_PREINSTALL_DISABLED" not in variables
    rule = egress(components)["plugins"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 443}]
    v4, v6 = (peer["ipBlock"] for peer in rule["to"])
    assert v4["cidr"] == "0.0.0.0/0" and {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"} <= set(
        v4["except"]
    )
    assert v6["cidr"] == "::/0" and "fc00::/7" in v6["except"]
    # the plugin lands on the data volume: the rendered grafana.ini does not move the plugins directory
    config = find(components, "ConfigMap", "grafana-config")["data"]
    assert "plugins" not in config["grafana.ini"].split("[paths]")[1].split("[")[0]


def test_a_given_version_and_download_networks_are_used() -> None:
    components = grafana_stack({"version": "4.14.1", "downloadCidrs": ["203.0.113.0/24", "2001:db8::/32"]})
    assert grafana_env(components)["GF_PLUGINS_PREINSTALL_SYNC"] == f"{PLUGIN}@4.14.1"
    assert egress(components)["plugins"]["to"] == [
        {"ipBlock": {"cidr": "203.0.113.0/24"}},
        {"ipBlock": {"cidr": "2001:db8::/32"}},
    ]


def test_without_the_clickhouse_datasource_nothing_is_installed_or_opened() -> None:
    spec = without_clickhouse()
    assert PLUGIN not in render_backends(spec)[DATASOURCES_FILE]
    components = grafana_stack(spec=spec)
    assert not {"GF_PLUGINS_PREINSTALL_SYNC", "GF_PLUGINS_PREINSTALL_DISABLED"} & set(grafana_env(components))
    assert "plugins" not in egress(components)


def test_an_image_with_the_plugin_downloads_nothing() -> None:
    components = grafana_stack({"install": "image"})
    variables = grafana_env(components)
    assert variables["GF_PLUGINS_PREINSTALL_DISABLED"] == "true" and "GF_PLUGINS_PREINSTALL_SYNC" not in variables
    assert "plugins" not in egress(components)
    assert set(egress(components)) >= {"dns", "grafana-to-clickhouse"}


@pytest.mark.parametrize("plugin", [{"downloadCidrs": ["203.0.113.0/24"]}, {"install": "image"}])
def test_grafana_and_its_policy_pass_the_schemas_and_checkov(plugin: dict[str, Any]) -> None:
    # the default (public addresses) is in test_k8s_backends' checkov test of every backend
    pytest.importorskip("kubernetes_validate")
    components = tuple(c for c in grafana_stack(plugin) if c.name in ("grafana", "network-policies"))
    objects = [o for c in components for o in c.objects]
    report = kv.validate_objects(objects, export_stack(components), checkov=kv.checkov_program() is not None)
    assert report.errors == [], report.errors


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        ({"version": "latest"}, "clickhousePlugin.version`: version 'latest' is not a plugin release; allowed: X.Y.Z"),
        ({"version": "v4.20.0"}, "version 'v4.20.0' is not a plugin release"),
        ({"install": "download"}, "clickhousePlugin.install`: Input should be 'preinstall' or 'image'"),
        ({"downloadCidrs": ["203.0.113.7/24"]}, "'203.0.113.7/24' is not a network in CIDR notation"),
        (
            {"install": "image", "downloadCidrs": ["203.0.113.0/24"]},
            "`downloadCidrs` is given with `install: image`, where Grafana downloads nothing",
        ),
        ({"preinstall": True}, "clickhousePlugin.preinstall`: unknown key; allowed: install, version, downloadCidrs"),
    ],
)
def test_bad_plugin_settings_are_clear_errors(plugin: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as failed:
        parse_cluster({"backends": {"grafana": {"enabled": True, "clickhousePlugin": plugin}}})
    assert any(message in issue for issue in failed.value.issues), failed.value.issues
