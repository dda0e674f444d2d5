"""Each policy of the pack rejects a bad resource and passes a good one, through CrossGuard's own argument
types and callbacks (the same calls the policy analyzer makes)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from pulumi_policy import (
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from stacks.policy import rules
from stacks.policy.pack import POLICIES

DAEMONSET = "kubernetes:apps/v1:DaemonSet"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"
NETWORKPOLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"

GOOD_CONTAINER: dict[str, Any] = {
    "name": "otelcol",
    "image": "otel/opentelemetry-collector-contrib:0.159.0",
    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}},
    "securityContext": {"privileged": False, "capabilities": {"drop": ["ALL"]}},
}
LABELS = {"app.kubernetes.io/part-of": "otelstack", "app.kubernetes.io/component": "agent"}


def workload(container: dict[str, Any] | None = None, **pod: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "otel-agent", "namespace": "observability"},
        "spec": {
            "selector": {"matchLabels": LABELS},
            "template": {"metadata": {"labels": LABELS}, "spec": {"containers": [container or GOOD_CONTAINER], **pod}},
        },
    }


def changed(**security: Any) -> dict[str, Any]:
    container = copy.deepcopy(GOOD_CONTAINER)
    container["securityContext"].update(security)
    return container


def opts() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def policy(name: str) -> Any:
    return next(p for p in POLICIES if p.name == name)


def violations(name: str, resource_type: str, props: dict[str, Any], config: dict[str, Any] | None = None) -> list:
    found: list[str] = []
    check = policy(name)
    assert isinstance(check, ResourceValidationPolicy)
    args = ResourceValidationArgs(resource_type, props, "urn:x", "x", opts(), None, config)
    check.validate(args, lambda message, urn=None: found.append(message))  # type: ignore[operator]
    return found


def stack_violations(resources: list[tuple[str, dict[str, Any]]]) -> list[str]:
    found: list[str] = []
    check = policy("network-policy-for-every-workload")
    assert isinstance(check, StackValidationPolicy)
    items = [PolicyResource(t, p, f"urn:{i}", str(i), opts(), None, None, [], {}) for i, (t, p) in enumerate(resources)]
    check.validate(StackValidationArgs(items), lambda message, urn=None: found.append(message))  # type: ignore[operator]
    return found


def test_every_policy_of_the_pack_is_one_of_the_five_rules() -> None:
    assert sorted(p.name for p in POLICIES) == [
        "network-policy-for-every-workload",
        "no-insecure-tls",
        "no-latest-images",
        "no-privileged-pods",
        "requests-and-limits",
    ]


def test_a_hardened_workload_passes_every_resource_policy() -> None:
    for name in ("no-privileged-pods", "requests-and-limits", "no-latest-images"):
        assert violations(name, DAEMONSET, workload()) == []


@pytest.mark.parametrize(
    ("container", "pod", "expected"),
    [
        (changed(privileged=True), {}, "container otelcol is privileged"),
        (changed(capabilities={"add": ["SYS_ADMIN"], "drop": ["ALL"]}), {}, "adds the capabilities SYS_ADMIN"),
        (None, {"hostPID": True}, "hostPID is set"),
        (None, {"hostNetwork": True}, "hostNetwork is set"),
    ],
)
def test_privileged_pods_are_rejected(container: dict[str, Any] | None, pod: dict[str, Any], expected: str) -> None:
    found = violations("no-privileged-pods", DAEMONSET, workload(container, **pod))
    assert len(found) == 1 and expected in found[0] and "observability/otel-agent" in found[0]


def test_the_allow_list_admits_a_named_workload_and_only_it() -> None:
    bad = workload(changed(capabilities={"add": ["BPF", "PERFMON"]}), hostPID=True)
    assert violations("no-privileged-pods", DAEMONSET, bad, {"allowList": ["observability/otel-agent"]}) == []
    assert len(violations("no-privileged-pods", DAEMONSET, bad, {"allowList": ["observability/other"]})) == 2


def test_a_container_without_limits_is_rejected_init_containers_included() -> None:
    lacking = copy.deepcopy(GOOD_CONTAINER)
    del lacking["resources"]["limits"]["cpu"]
    found = violations("requests-and-limits", DAEMONSET, workload(lacking))
    assert found == ["observability/otel-agent container otelcol lacks limits.cpu"]
    init = {"name": "init", "image": "busybox:1.37"}
    found = violations("requests-and-limits", DAEMONSET, workload(initContainers=[init]))
    assert found == [
        "observability/otel-agent container init lacks requests.cpu, requests.memory, limits.cpu, limits.memory"
    ]


@pytest.mark.parametrize(
    ("image", "ok"),
    [
        ("otel/opentelemetry-collector-contrib:latest", False),
        ("otel/opentelemetry-collector-contrib", False),
        ("registry.local:5000/otelcol", False),
        ("registry.local:5000/otelcol:0.159.0", True),
        ("otel/opentelemetry-collector-contrib@sha256:" + "a" * 64, True),
    ],
)
def test_images_must_be_pinned(image: str, ok: bool) -> None:
    container = dict(GOOD_CONTAINER, image=image)
    assert (violations("no-latest-images", DAEMONSET, workload(container)) == []) is ok


def collector_configmap(environment: str | None, tls: dict[str, Any]) -> dict[str, Any]:
    config = {"receivers": {"otlp": {}}, "exporters": {"otlp/gateway": {"endpoint": "gw:4317", "tls": tls}}}
    labels = {rules.ENVIRONMENT_LABEL: environment} if environment else {}
    return {
        "metadata": {"name": "otel-agent", "namespace": "observability", "labels": labels},
        "data": {"agent-k8s.yaml": yaml.safe_dump(config), "README": "insecure: true is not YAML config here"},
    }


def test_insecure_tls_is_rejected_outside_dev_and_without_an_environment_label() -> None:
    off = {"insecure": True}
    unverified = {"insecure_skip_verify": True}
    assert violations("no-insecure-tls", CONFIGMAP, collector_configmap("dev", off)) == []
    assert violations("no-insecure-tls", CONFIGMAP, collector_configmap("prod", off)) == [
        "observability/otel-agent agent-k8s.yaml: exporters.otlp/gateway.tls.insecure: true"
    ]
    assert len(violations("no-insecure-tls", CONFIGMAP, collector_configmap("staging", unverified))) == 1
    assert len(violations("no-insecure-tls", CONFIGMAP, collector_configmap(None, off))) == 1
    assert violations("no-insecure-tls", CONFIGMAP, collector_configmap("prod", {"ca_file": "/ca.crt"})) == []


def network_policy(selector: dict[str, Any], namespace: str = "observability") -> tuple[str, dict[str, Any]]:
    return NETWORKPOLICY, {"metadata": {"name": "p", "namespace": namespace}, "spec": {"podSelector": selector}}


def test_a_workload_needs_a_network_policy_of_its_own() -> None:
    agent = (DAEMONSET, workload())
    default_deny = network_policy({})
    assert stack_violations([agent, default_deny]) == ["observability/otel-agent (DaemonSet) has no NetworkPolicy"]
    assert stack_violations([agent, default_deny, network_policy({"matchLabels": LABELS}, "other")]) != []
    other_component = {"matchLabels": {**LABELS, "app.kubernetes.io/component": "gateway"}}
    assert stack_violations([agent, network_policy(other_component)]) != []
    assert stack_violations([agent, default_deny, network_policy({"matchLabels": LABELS})]) == []
    expression = {"matchExpressions": [{"key": "app.kubernetes.io/component", "operator": "In", "values": ["agent"]}]}
    assert stack_violations([agent, network_policy(expression)]) == []
