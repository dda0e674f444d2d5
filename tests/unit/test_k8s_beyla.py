"""Beyla: least capabilities per feature, never privileged, its own namespace, config keys of v3.33.0."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from otelstack.errors import SpecError
from otelstack.kubernetes import beyla
from otelstack.kubernetes.objects import CONFIG_CHECKSUM_ANNOTATION
from otelstack.kubernetes.settings import parse_cluster
from otelstack.kubernetes.stack import StackContext
from otelstack.model.spec import PlatformSpec
from otelstack.sizing import size_platform

# Every configuration key beyla.config() may write, checked against Beyla v3.33.0's docs/config-schema.json
# (the release pinned in ClusterSettings.beyla.image): (path, type or allowed values).
KNOWN_KEYS: dict[str, Any] = {
    "log_level": str,
    "enforce_sys_caps": bool,
    "health_check.listen_address": str,
    "health_check.port": int,
    "attributes.kubernetes.enable": ("autodetect", "false", "true"),
    "attributes.kubernetes.cluster_name": str,
    "discovery.instrument[].k8s_namespace": str,
    "discovery.exclude_instrument[].k8s_namespace": str,
    "ebpf.context_propagation": ("", "all", "disabled"),
    "otel_traces_export.protocol": ("", "grpc", "http/json", "http/protobuf"),
    "otel_metrics_export.protocol": ("", "grpc", "http/json", "http/protobuf"),
    "otel_metrics_export.features[]": ("application", "network"),
    "network.enable": bool,
    "network.source": ("socket_filter", "tc"),
}


def context(cluster: dict[str, Any] | None = None, **spec: Any) -> StackContext:
    platform = PlatformSpec.model_validate({"environment": "dev", **spec})
    return StackContext(platform, parse_cluster(cluster or {}), size_platform(platform), {})


def leaves(node: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(node, dict):
        return [item for k, v in node.items() for item in leaves(v, f"{path}.{k}" if path else k)]
    if isinstance(node, list):
        return [item for v in node for item in leaves(v, f"{path}[]")]
    return [(path, node)]


def objects(cluster: dict[str, Any], **spec: Any) -> dict[str, dict[str, Any]]:
    component = beyla.component(context({"beyla": {"enabled": True, **cluster}}, **spec))
    assert component is not None
    return {o["kind"]: o for o in component.objects}


FEATURES = [["application"], ["network"], ["application", "context_propagation"], ["application", "network"]]


@pytest.mark.parametrize("features", FEATURES, ids="+".join)
def test_config_uses_only_keys_of_the_pinned_release(features: list[str]) -> None:
    found = objects({"features": features}, cluster_name="eu-1")
    config = yaml.safe_load(found["ConfigMap"]["data"][beyla.CONFIG_FILE])
    for path, value in leaves(config):
        assert path in KNOWN_KEYS, f"{path} is not a Beyla v3.33.0 configuration key"
        allowed = KNOWN_KEYS[path]
        assert value in allowed if isinstance(allowed, tuple) else isinstance(value, allowed), (path, value)


@pytest.mark.parametrize(
    ("features", "caps", "host_pid", "host_network"),
    [
        (["application"],
         ["BPF", "CHECKPOINT_RESTORE", "DAC_READ_SEARCH", "NET_RAW", "PERFMON", "SYS_PTRACE"], True, False),
        (["network"], ["BPF", "NET_RAW"], False, True),
        (["application", "context_propagation"],
         ["BPF", "CHECKPOINT_RESTORE", "DAC_READ_SEARCH", "NET_ADMIN", "NET_RAW", "PERFMON", "SYS_PTRACE"], True, True),
    ],
)  # fmt: skip
def test_least_capabilities_per_feature_never_privileged(
    features: list[str], caps: list[str], host_pid: bool, host_network: bool
) -> None:
    pod = objects({"features": features})["DaemonSet"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["capabilities"] == {"add": caps, "drop": ["ALL"]}
    assert security["privileged"] is False and security["allowPrivilegeEscalation"] is False
    assert "SYS_ADMIN" not in caps
    assert security["readOnlyRootFilesystem"] is True
    assert pod.get("hostPID", False) is host_pid
    assert pod.get("hostNetwork", False) is host_network
    assert container["resources"]["limits"] and container["resources"]["requests"]


def test_own_namespace_is_the_only_privileged_one() -> None:
    found = objects({})
    namespace = found["Namespace"]["metadata"]
    assert namespace["name"] == "observability-beyla"
    assert namespace["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    for kind in ("DaemonSet", "ConfigMap", "ServiceAccount"):
        assert found[kind]["metadata"]["namespace"] == "observability-beyla"
    assert objects({"namespace": "ebpf"})["Namespace"]["metadata"]["name"] == "ebpf"


def test_exports_to_the_node_local_agent_and_rolls_on_config_change() -> None:
    found = objects({})
    container = found["DaemonSet"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    # The node-local agent Service, in the agents' own namespace.
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-agent.observability-agent.svc:4317"
    ctx = context({"beyla": {"enabled": True}, "agentNamespace": "nodes"})
    assert beyla.agent_otlp_url(ctx, 4317) == "http://otel-agent.nodes.svc:4317"
    # Beyla does not instrument the platform's own namespaces, the agents' included.
    excluded = [e["k8s_namespace"] for e in beyla.config(ctx)["discovery"]["exclude_instrument"]]
    assert excluded == ["observability", "nodes", "observability-beyla"]
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc"
    assert env["BEYLA_CONFIG_PATH"] == f"{beyla.CONFIG_DIR}/{beyla.CONFIG_FILE}"
    first = found["DaemonSet"]["spec"]["template"]["metadata"]["annotations"][CONFIG_CHECKSUM_ANNOTATION]
    other = objects({"instrumentNamespaces": ["shop-*"]})["DaemonSet"]["spec"]["template"]["metadata"]
    assert other["annotations"][CONFIG_CHECKSUM_ANNOTATION] != first
    assert container["image"] == "docker.io/grafana/beyla:3.33.0"


def test_rbac_reads_metadata_only() -> None:
    found = objects({})
    verbs = {v for rule in found["ClusterRole"]["rules"] for v in rule["verbs"]}
    assert verbs <= {"get", "list", "watch"}
    binding = found["ClusterRoleBinding"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "beyla", "namespace": "observability-beyla"}]
    assert binding["roleRef"]["name"] == found["ClusterRole"]["metadata"]["name"]


def test_mounts_and_tolerations() -> None:
    pod = objects({})["DaemonSet"]["spec"]["template"]["spec"]
    host = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    assert host == {"cgroup": "/sys/fs/cgroup", "tracefs": "/sys/kernel/tracing"}
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["cgroup"]["readOnly"] and mounts["tracefs"]["readOnly"]
    assert {"operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]


def test_disabled_renders_nothing() -> None:
    assert beyla.component(context()) is None


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"features": []}, "beyla.features"),
        ({"features": ["context_propagation"]}, "beyla.features"),
        ({"features": ["profiling"]}, "beyla.features[0]"),
        ({"image": {"repository": "grafana/beyla", "tag": "latest"}}, "beyla.image.tag"),
        ({"privileged": True}, "beyla.privileged"),
    ],
)
def test_bad_settings_name_the_key(settings: dict[str, Any], key: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_cluster({"beyla": settings}, source="stacks/platform/Pulumi.dev.yaml")
    text = "\n".join(getattr(err.value, "issues", [])) or str(err.value)
    assert key in text
