"""Prometheus in the cluster scrapes the collectors it finds as pods (docs/kubernetes/backends.md): its
prometheus.yml is the render with only the collectors' jobs changed to `kubernetes_sd_configs`, whose
relabelling keeps exactly the pods and port the stack's workloads have; it reads pods through a Role in each
collectors' namespace (no ClusterRole), with a token only Prometheus mounts; its NetworkPolicy reaches the
API server and the collectors' metrics port; the real promtool accepts the config, and refuses a broken one."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from otelstack.backends import prometheus as prom
from otelstack.backends import render_backends
from otelstack.backends.promtools import locate_tool
from otelstack.kubernetes import network
from otelstack.kubernetes.objects import Component
from otelstack.kubernetes.prometheus import in_cluster_problems
from otelstack.kubernetes.settings import parse_cluster
from otelstack.render import kubernetes_components
from tests.unit.k8s_helpers import find, pod_spec
from tests.unit.test_k8s_backends import ALL_ON, BACKENDS, in_cluster_spec

COLLECTORS = {"otel-agent": ("DaemonSet", "otel-agent"), "otel-gateway": ("StatefulSet", "otel-gateway")}
needs_promtool = pytest.mark.skipif(locate_tool("promtool") is None, reason="promtool is not built: make binaries")


def stack(env: str = "dev", **cluster: Any) -> tuple[Component, ...]:
    return kubernetes_components(in_cluster_spec(env), parse_cluster({**ALL_ON, **cluster}))


def objects(components: tuple[Component, ...]) -> list[dict[str, Any]]:
    return [o for c in components for o in c.objects]


def in_cluster_yml(components: tuple[Component, ...]) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(find(components, "ConfigMap", "prometheus-config")["data"]["prometheus.yml"])
    return data


def jobs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {job["job_name"]: job for job in config["scrape_configs"]}


def meta_labels(workload: dict[str, Any], namespace: str, port: dict[str, Any]) -> dict[str, str]:
    """The discovery labels Prometheus gives one container port of a running pod of `workload`."""
    labels = workload["spec"]["template"]["metadata"]["labels"]
    found = {f"__meta_kubernetes_pod_label_{re.sub('[^a-zA-Z0-9_]', '_', k)}": v for k, v in labels.items()}
    return found | {
        "__meta_kubernetes_namespace": namespace,
        "__meta_kubernetes_pod_name": f"{workload['metadata']['name']}-0",
        "__meta_kubernetes_pod_node_name": "node-1",
        "__meta_kubernetes_pod_phase": "Running",
        "__meta_kubernetes_pod_container_port_name": port.get("name", ""),
        "__meta_kubernetes_pod_container_port_number": str(port["containerPort"]),
    }


def relabel(rules: list[dict[str, Any]], labels: dict[str, str]) -> dict[str, str] | None:
    """Prometheus' relabelling for the actions these jobs use (keep, drop, replace): the target's labels, or
    None when it is dropped. Regexes are anchored, as Prometheus anchors them."""
    labels = dict(labels)
    for rule in rules:
        value = rule.get("separator", ";").join(labels.get(name, "") for name in rule["source_labels"])
        matched = re.fullmatch(rule.get("regex", "(.*)"), value)
        action = rule.get("action", "replace")
        if action == "keep" and not matched:
            return None
        if action == "drop" and matched:
            return None
        if action == "replace" and matched:
            labels[rule["target_label"]] = matched.expand(rule.get("replacement", "$1").replace("$1", r"\1"))
    return labels


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_only_the_collectors_jobs_differ_from_the_render(env: str) -> None:
    components = stack(env)
    rendered = yaml.safe_load(render_backends(in_cluster_spec(env))[prom.CONFIG_FILE])
    in_cluster = in_cluster_yml(components)
    assert [j["job_name"] for j in in_cluster["scrape_configs"]] == [j["job_name"] for j in rendered["scrape_configs"]]
    assert {k: v for k, v in in_cluster.items() if k != "scrape_configs"} == {
        k: v for k, v in rendered.items() if k != "scrape_configs"
    }
    changed = {n for n, job in jobs(in_cluster).items() if job != jobs(rendered)[n]}
    assert changed == set(COLLECTORS)
    for name in COLLECTORS:
        assert set(jobs(in_cluster)[name]) == {"job_name", "kubernetes_sd_configs", "relabel_configs"}
    # the rules select the collectors by these job names: every one of them is still a job
    rule_text = "".join(
        t for rel, t in render_backends(in_cluster_spec(env)).items() if rel.startswith("prometheus/rules/")
    )
    named = set(re.findall(r'job="([^"]+)"', rule_text)) | {
        n for group in re.findall(r'job=~"([^"]+)"', rule_text) for n in group.split("|")
    }
    assert set(COLLECTORS) <= named and named & set(COLLECTORS) <= set(jobs(in_cluster))


@pytest.mark.parametrize("cluster", [{}, {"agentNamespace": "telemetry-nodes"}])
def test_each_collector_pod_is_one_target_on_its_metrics_port(cluster: dict[str, Any]) -> None:
    components = stack(**cluster)
    config = jobs(in_cluster_yml(components))
    for job_name, (kind, name) in COLLECTORS.items():
        workload = find(components, kind, name)
        namespace = workload["metadata"]["namespace"]
        (sd,) = config[job_name]["kubernetes_sd_configs"]
        assert sd["role"] == "pod" and sd["namespaces"] == {"names": [namespace]}
        selector = dict(item.split("=") for item in sd["selectors"][0]["label"].split(","))
        assert selector.items() <= workload["spec"]["template"]["metadata"]["labels"].items()
        ports = pod_spec(workload)["containers"][0]["ports"]
        kept = [relabel(config[job_name]["relabel_configs"], meta_labels(workload, namespace, port)) for port in ports]
        targets = [t for t in kept if t is not None]
        assert len(ports) > 1 and len(targets) == 1, kept
        (target,) = targets
        assert (
            target["instance"] == f"{name}-0:8888" and target["__meta_kubernetes_pod_container_port_number"] == "8888"
        )
        assert (target["namespace"], target["pod"], target["node"]) == (namespace, f"{name}-0", "node-1")
        # another component's pod, and a collector pod that has finished, are not targets
        beyla_like = {**meta_labels(workload, namespace, ports[-1])}
        beyla_like["__meta_kubernetes_pod_label_app_kubernetes_io_component"] = "beyla"
        assert relabel(config[job_name]["relabel_configs"], beyla_like) is None
        done = {**meta_labels(workload, namespace, ports[-1]), "__meta_kubernetes_pod_phase": "Succeeded"}
        assert relabel(config[job_name]["relabel_configs"], done) is None


def test_prometheus_reads_pods_through_roles_in_the_collectors_namespaces_only() -> None:
    components = stack(agentNamespace="telemetry-nodes")
    everything = objects(components)
    prometheus = next(c for c in components if c.name == "prometheus")
    roles = [o for o in prometheus.objects if o["kind"] in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")]
    assert sorted((o["kind"], o["metadata"]["namespace"]) for o in roles) == [
        ("Role", "observability"), ("Role", "telemetry-nodes"),
        ("RoleBinding", "observability"), ("RoleBinding", "telemetry-nodes"),
    ]  # fmt: skip
    for role in (o for o in roles if o["kind"] == "Role"):
        assert role["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}]
    for binding in (o for o in roles if o["kind"] == "RoleBinding"):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "prometheus", "namespace": "observability"}]
        assert binding["roleRef"]["kind"] == "Role"
    account = find(components, "ServiceAccount", "prometheus")
    assert account["metadata"]["namespace"] == "observability" and account["automountServiceAccountToken"] is False
    pod = pod_spec(find(components, "StatefulSet", "prometheus"))
    assert pod["serviceAccountName"] == "prometheus" and pod["automountServiceAccountToken"] is True
    for name in BACKENDS[1:]:  # no other backend calls the API: no token
        kind = "Deployment" if name == "grafana" else "StatefulSet"
        assert pod_spec(find(components, kind, name))["automountServiceAccountToken"] is False
    assert not [o for o in everything if o["kind"] == "ClusterRole" and "prometheus" in o["metadata"]["name"]]


def test_network_policies_let_prometheus_reach_the_api_server_and_the_collectors_metrics_port() -> None:
    components = stack(networkPolicies={"apiServer": {"cidrs": ["10.96.0.1/32"], "ports": [443]}})
    policies = {o["metadata"]["name"]: o for o in objects(components) if o["kind"] == "NetworkPolicy"}
    egress = policies["otelstack-prometheus"]
    names = egress["metadata"]["annotations"][network.EGRESS_ANNOTATION].split(",")
    api = egress["spec"]["egress"][names.index("kube-apiserver")]
    assert api == {"to": [{"ipBlock": {"cidr": "10.96.0.1/32"}}], "ports": [{"protocol": "TCP", "port": 443}]}
    for flow, target in (
        ("prometheus-scrapes-agents", "otelstack-agent"),
        ("prometheus-scrapes-gateways", "otelstack-gateway"),
    ):
        assert egress["spec"]["egress"][names.index(flow)]["ports"] == [{"protocol": "TCP", "port": "metrics"}]
        ingress = policies[target]
        listed = ingress["metadata"]["annotations"][network.INGRESS_ANNOTATION].split(",")
        assert ingress["spec"]["ingress"][listed.index(flow)]["ports"] == [{"protocol": "TCP", "port": "metrics"}]
    # without Prometheus in the cluster, nothing of this
    alone = kubernetes_components(in_cluster_spec("dev"), parse_cluster({}))
    assert not [o for o in objects(alone) if o["kind"] == "Role" and o["metadata"]["name"] == "prometheus-pods"]


def test_a_job_that_the_render_does_not_have_is_an_error() -> None:
    pods = {"otel-collector": prom.PodTargets("observability", (("app", "x"),), "metrics")}
    with pytest.raises(ValueError, match="no scrape job otel-collector to find as pods; the jobs: alertmanager"):
        prom.in_cluster_config(in_cluster_spec("dev"), pods)


@needs_promtool
@pytest.mark.parametrize("env", ["dev", "prod"])
def test_promtool_accepts_the_in_cluster_config(env: str) -> None:
    components = stack(env)
    assert in_cluster_problems(objects(components), render_backends(in_cluster_spec(env))) == []


@needs_promtool
def test_promtool_refuses_a_broken_in_cluster_config() -> None:
    components = stack()
    everything = objects(components)
    config_map = next(
        o for o in everything if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "prometheus-config"
    )
    broken = config_map["data"]["prometheus.yml"].replace("role: pod", "role: pods", 1)
    assert broken != config_map["data"]["prometheus.yml"]
    config_map["data"]["prometheus.yml"] = broken
    (problem,) = in_cluster_problems(everything, render_backends(in_cluster_spec("dev")))
    assert problem.startswith("promtool check config failed") and 'unknown Kubernetes SD role "pods"' in problem, (
        problem
    )


def test_without_prometheus_in_the_cluster_there_is_nothing_to_check() -> None:
    alone = kubernetes_components(in_cluster_spec("dev"), parse_cluster({}))
    assert in_cluster_problems(objects(alone), {}) == []
