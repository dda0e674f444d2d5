"""Prometheus finds the collectors as pods, for real: the loopback API server (tests/stacks/cluster.py) with
the planned ServiceAccount, Roles and RoleBindings applied, the collectors' pods created from their workloads'
templates (and a decoy of another component with the same ports; no kubelet runs them: their status is set
as a kubelet would), and the real Prometheus v3.16 (built by `make binaries`) running the collectors' jobs
of the in-cluster prometheus.yml as planned — only pointed at this API server with the `prometheus`
ServiceAccount's token instead of the in-cluster defaults.

It finds exactly one target per collector pod, on the metrics port, named `<pod>:8888` with the job names
the rules use; the decoy is not a target. The API server's RBAC grants that account pod reads in the
collectors' namespaces and nothing else."""

from __future__ import annotations

import contextlib
import copy
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from otelstack.backends.promtools import locate_tool
from tests.stacks.cluster import ApiError, Cluster, free_port, stop_process
from tests.stacks.test_real_backends import backend_tree
from tests.stacks.test_real_stack import namespaces, planned

pytestmark = pytest.mark.cluster

JOBS = ("otel-agent", "otel-gateway")
ACCOUNT = "system:serviceaccount:observability:prometheus"
WAIT_SECONDS = 90.0


def pod_from(workload: dict[str, Any], name: str, node: str) -> dict[str, Any]:
    """The pod a workload's controller would make (its template; a StatefulSet's claims as volumes), on `node`."""
    spec = copy.deepcopy(workload["spec"]["template"]["spec"])
    claims = workload["spec"].get("volumeClaimTemplates") or []
    spec["volumes"] = [
        *(spec.get("volumes") or []),
        *(
            {"name": c["metadata"]["name"], "persistentVolumeClaim": {"claimName": c["metadata"]["name"]}}
            for c in claims
        ),
    ]
    spec["nodeName"] = node
    meta = {
        "name": name,
        "namespace": workload["metadata"]["namespace"],
        "labels": workload["spec"]["template"]["metadata"]["labels"],
    }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def running(cluster: Cluster, pod: dict[str, Any]) -> None:
    """What the kubelet reports once the pod runs: phase Running and an address (loopback: nothing listens)."""
    status = {"status": {"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]}}
    cluster.request("PATCH", cluster.path(pod) + "/status", status, content_type="application/merge-patch+json")


def can(cluster: Cluster, verb: str, resource: str, namespace: str) -> bool:
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {"user": ACCOUNT, "groups": ["system:serviceaccounts", "system:serviceaccounts:observability"],
                 "resourceAttributes": {"verb": verb, "resource": resource, "namespace": namespace}},
    }  # fmt: skip
    answer = cluster.request("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", review)
    return bool(answer["status"].get("allowed"))


@contextlib.contextmanager
def prometheus(config: Path, workdir: Path) -> Iterator[str]:
    binary = locate_tool("prometheus")
    if binary is None:
        pytest.skip("prometheus is not built: run `make binaries`")
    port = free_port()
    log = workdir / "prometheus.log"
    argv = [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}"]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


def active_targets(url: str, wanted: int) -> list[dict[str, Any]]:
    """Prometheus' active targets once it has `wanted` of them (bounded wait)."""
    deadline = time.monotonic() + WAIT_SECONDS
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}/api/v1/targets?state=active", timeout=5) as answer:
                found = json.load(answer)["data"]["activeTargets"]
            if len(found) >= wanted:
                time.sleep(2)  # a further discovery round: nothing more may appear
                with urllib.request.urlopen(f"{url}/api/v1/targets?state=active", timeout=5) as answer:
                    return list(json.load(answer)["data"]["activeTargets"])
        time.sleep(1)
    return found


def test_prometheus_finds_each_collector_pod_on_its_metrics_port(cluster: Cluster, tmp_path: Path) -> None:
    objects = planned(tmp_path / "plan", "--configs", str(backend_tree(tmp_path)))
    by_name = {(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")): o for o in objects}
    rbac = [o for o in objects if o["kind"] in ("ServiceAccount", "Role", "RoleBinding") and o["metadata"]["name"]
            in ("prometheus", "prometheus-pods")]  # fmt: skip
    assert len(rbac) == 5, [(o["kind"], o["metadata"]["namespace"]) for o in rbac]
    agent = pod_from(by_name[("DaemonSet", "otel-agent", "observability-agent")], "otel-agent-x7k2p", "node-1")
    gateway = pod_from(by_name[("StatefulSet", "otel-gateway", "observability")], "otel-gateway-0", "node-2")
    # another component's pod with the gateway's ports, the metrics port included: not a target
    decoy = pod_from(by_name[("StatefulSet", "otel-gateway", "observability")], "decoy-0", "node-2")
    decoy["metadata"]["labels"] = {**decoy["metadata"]["labels"], "app.kubernetes.io/component": "opamp-server"}
    pods = (agent, gateway, decoy)
    for obj in [o for o in objects if o["kind"] == "Namespace"] + rbac:
        cluster.apply(obj)
    try:
        # the API server's own authorizer on the planned RBAC
        assert can(cluster, "list", "pods", "observability") and can(cluster, "watch", "pods", "observability-agent")
        assert not can(cluster, "list", "pods", "kube-system") and not can(cluster, "list", "pods", "default")
        assert not can(cluster, "get", "secrets", "observability") and not can(cluster, "list", "nodes", "")

        for pod in pods:
            cluster.apply(pod)
            running(cluster, pod)

        token = cluster.request(
            "POST", "/api/v1/namespaces/observability/serviceaccounts/prometheus/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}},
        )["status"]["token"]  # fmt: skip
        (tmp_path / "token").write_text(token)
        config_map = by_name[("ConfigMap", "prometheus-config", "observability")]
        rendered = yaml.safe_load(config_map["data"]["prometheus.yml"])
        jobs = [job for job in rendered["scrape_configs"] if job["job_name"] in JOBS]
        assert {j["job_name"] for j in jobs} == set(JOBS) and all("kubernetes_sd_configs" in j for j in jobs)
        for job in jobs:  # in the cluster: the pod's own API address, token and CA; here: the loopback server's
            for sd in job["kubernetes_sd_configs"]:
                sd |= {"api_server": cluster.url, "authorization": {"credentials_file": str(tmp_path / "token")},
                       "tls_config": {"ca_file": str(cluster.pki.ca)}}  # fmt: skip
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump({"global": {"scrape_interval": "5s"}, "scrape_configs": jobs}))

        with prometheus(config, tmp_path) as url:
            targets = active_targets(url, 2)
        log = (tmp_path / "prometheus.log").read_text(errors="replace")[-3000:]
        found = {t["labels"]["job"]: t for t in targets}
        assert sorted(found) == sorted(JOBS) and len(targets) == 2, (targets, log)
        assert {
            "instance": "otel-agent-x7k2p:8888", "namespace": "observability-agent", "pod": "otel-agent-x7k2p",
            "node": "node-1",
        }.items() <= found["otel-agent"]["labels"].items()  # fmt: skip
        assert found["otel-gateway"]["labels"]["instance"] == "otel-gateway-0:8888"
        assert {t["scrapeUrl"] for t in targets} == {"http://127.0.0.1:8888/metrics"}
        assert all(t["discoveredLabels"]["__meta_kubernetes_pod_container_port_name"] == "metrics" for t in targets)
    finally:  # no kubelet confirms a pod's end and no namespace controller empties a namespace: do both here
        for pod in pods:
            with contextlib.suppress(ApiError):
                cluster.request("DELETE", cluster.path(pod), params={"gracePeriodSeconds": "0"})
        for obj in rbac:
            cluster.delete(obj)
        for name in namespaces(objects):
            assert cluster.left_after_destroy(name) == [], name
            cluster.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
            cluster.finalize_namespace(name)
