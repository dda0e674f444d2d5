"""Every component as the program creates it, under Pulumi's mocks, with everything switched on (Beyla,
the OpAMP server): the hardened pod and container settings, probes, RBAC only where the API is called,
host mounts only where the collector reads the node, a NetworkPolicy for every workload, the policy pack
satisfied, and the creation order (inside a component by rank, between components by depends_on).

The objects' own details (which receivers need which RBAC verbs, which flow opens which port) are tested
per renderer module in tests/unit/test_k8s_*.py; here it is what reaches the cluster through Pulumi."""

from __future__ import annotations

import functools
from typing import Any

from stacks.components.platform_component import rank
from stacks.policy import rules
from tests.stacks.mocked import Registered, run_program, with_all_secrets
from tests.stacks.test_mocks_program import stack_config

WORKLOADS = ("DaemonSet", "StatefulSet", "Deployment")
# hostPath volumes a component may mount: the agent reads the node's logs and keeps its checkpoints.
HOST_PATHS = {"otel-agent": {"/var/log/pods", "/var/lib/otelstack/agent"}}
# Workloads that run as uid 0, each in a Pod Security privileged namespace of its own: Beyla (its added
# capabilities need uid 0, docs/kubernetes/beyla.md) and the agent (root-owned pod logs and hostPath
# checkpoint directory, no capability, docs/kubernetes/collectors.md).
ROOT_WORKLOADS = {"beyla", "otel-agent"}


@functools.cache
def everything() -> tuple[Registered, ...]:
    config = stack_config("prod")
    cluster = dict(config.get("otelstack:cluster") or {})
    cluster["beyla"] = {"enabled": True, "features": ["application"]}
    cluster["opampServer"] = {"enabled": True, "image": {"repository": "registry.local/otelstack", "tag": "0.1.0"}}
    return tuple(run_program(with_all_secrets({**config, "otelstack:cluster": cluster})))


def workloads() -> list[Registered]:
    return [r for r in everything() if r.kind in WORKLOADS]


def pod(resource: Registered) -> dict[str, Any]:
    return resource.object["spec"]["template"]["spec"]


def component_of(resource: Registered) -> str:
    return resource.urn.split("::")[2].split("$")[0].removeprefix("otelstack:platform:")


def test_every_part_is_there() -> None:
    parts = {component_of(r) for r in everything()}
    assert {"Namespace", "Certificates", "Agent", "Gateway", "OpampServer", "Beyla", "NetworkPolicies"} <= parts
    assert {r.name.split("/")[-1] for r in workloads()} >= {"otel-agent", "otel-gateway", "beyla"}


def test_every_container_is_hardened_and_sized() -> None:
    for resource in workloads():
        check_hardened(resource)


def check_hardened(resource: Registered) -> None:
    spec = pod(resource)
    for container in rules.containers(spec):
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, container["name"]
        assert context["readOnlyRootFilesystem"] is True, container["name"]
        assert context["capabilities"]["drop"] == ["ALL"], container["name"]
        assert context.get("privileged", False) is False, container["name"]
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, container["name"]
        if resource.name.split("/")[-1] not in ROOT_WORKLOADS:
            assert context["runAsNonRoot"] is True or spec["securityContext"]["runAsNonRoot"] is True
        assert rules.pinned(container["image"]), container["image"]
        assert rules.requests_and_limits(resource.typ, resource.object) == []


def test_every_long_running_container_has_probes() -> None:
    for resource in workloads():
        for container in pod(resource)["containers"]:
            assert "readinessProbe" in container and "livenessProbe" in container, (resource.name, container["name"])


def test_host_mounts_only_where_the_node_is_read() -> None:
    for resource in workloads():
        check_host_mounts(resource)


def check_host_mounts(resource: Registered) -> None:
    name = resource.name.split("/")[-1]
    host_paths = {v["hostPath"]["path"] for v in pod(resource).get("volumes") or [] if "hostPath" in v}
    if name == "beyla":
        assert host_paths and all(path.startswith("/sys/") for path in host_paths), host_paths
    else:
        assert host_paths <= HOST_PATHS.get(name, set()), host_paths
    for container in pod(resource)["containers"]:
        for mount in container.get("volumeMounts") or []:
            volume = next((v for v in pod(resource).get("volumes") or [] if v["name"] == mount["name"]), {})
            if "hostPath" in volume and volume["hostPath"]["path"] != "/var/lib/otelstack/agent":
                assert mount.get("readOnly") is True, (name, mount)


def test_the_api_is_reachable_only_for_who_calls_it() -> None:
    accounts = {r.name: pod(r) for r in workloads()}
    callers = {name for name, spec in accounts.items() if spec.get("automountServiceAccountToken", True)}
    bound = {
        subject["namespace"] + "/" + subject["name"]
        for r in everything()
        if r.kind in ("ClusterRoleBinding", "RoleBinding")
        for subject in r.object["subjects"]
    }
    for name in callers:
        account = accounts[name].get("serviceAccountName")
        assert account and f"{name.split('/')[0]}/{account}" in bound, name
    for r in everything():
        if r.kind in ("ClusterRole", "Role"):
            for rule in r.object["rules"]:
                assert "*" not in rule.get("verbs", []) and "*" not in rule.get("resources", []), r.name
                assert set(rule["verbs"]) <= {"get", "list", "watch"}, (r.name, rule)


def test_every_workload_has_a_network_policy_and_every_namespace_a_default_deny() -> None:
    items = [(r.typ, r.object) for r in everything()]
    assert rules.workloads_without_policy(items) == []
    namespaces = {r.name for r in everything() if r.kind == "Namespace"}
    denied = {
        r.object["metadata"]["namespace"]
        for r in everything()
        if r.kind == "NetworkPolicy" and r.object["spec"]["podSelector"] == {}
    }
    assert namespaces <= denied


def test_the_whole_stack_passes_the_policy_pack() -> None:
    allow = rules.DEFAULT_ALLOW_LIST
    for r in everything():
        assert rules.privileged(r.typ, r.object, allow) == [], r.name
        assert rules.insecure_tls(r.typ, r.object) == [], r.name
        assert rules.latest_images(r.typ, r.object) == [], r.name


def test_creation_order_by_rank_inside_a_component_and_by_dependency_between_them() -> None:
    by_name = {(r.kind, r.name): r for r in everything()}
    for r in everything():
        waits_for = set(r.depends_on)
        for (kind, name), other in by_name.items():
            same_part = component_of(other) == component_of(r)
            if same_part and rank({"kind": kind}) < rank({"kind": r.kind}):
                assert name in waits_for, f"{r.kind} {r.name} does not wait for {kind} {name}"
    instrumentation = [r for r in everything() if r.kind == "Instrumentation"]
    assert instrumentation and all("agent" in r.depends_on for r in instrumentation)
    assert all("namespace" in r.depends_on for r in everything() if component_of(r) != "Namespace")
