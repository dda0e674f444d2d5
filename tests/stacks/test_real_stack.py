"""The dev stack on a real Kubernetes API server (loopback, tests/stacks/cluster.py), with the real Pulumi
CLI, Python language host and Kubernetes provider built from their Go modules.

- every object `otelstack plan` exports is accepted by the API server (server-side apply, dry run, strict
  field validation), custom resources against the pinned CRDs the fixture applied;
- `pulumi up --stack dev` creates the platform, `pulumi preview` then shows no change, and `pulumi destroy`
  leaves the namespaces empty. The cluster has no kubelet, so no pod ever runs: this run sets the stack's
  `otelstack:skipAwait` (every object carries `pulumi.com/skipAwait`), which a real cluster never needs;
- the policy pack runs in the engine (`--policy-pack stacks/policy`): it passes the dev stack.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.stacks.cluster import BIN, PULUMI_PROGRAMS, ApiError, Cluster, skip_reason

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "stacks" / "platform"
# The pack as an analyzer executable: the language host built here (v3.79, see docs/kubernetes/testing.md)
# cannot start a policy-pack directory, so the engine starts the pack directly.
POLICY = ROOT / "stacks" / "policy" / "analyzer"

pytestmark = pytest.mark.cluster
CERT_MANAGER_NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cert-manager"}}


def planned(out: Path, *options: str) -> list[dict[str, Any]]:
    """The objects `otelstack plan --env dev` exports (run as its own process), in creation order."""
    subprocess.run(
        [sys.executable, "-m", "otelstack.cli", "plan", "--env", "dev", "--out", str(out), "--quiet", *options],
        cwd=ROOT,
        check=True,
    )
    return [doc for path in sorted((out / "k8s").glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


def namespaces(objects: list[dict[str, Any]]) -> list[str]:
    return [o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"]


class Pulumi:
    """The real `pulumi` against the test cluster, on a local backend, in a copy of the project: the stack
    file and Pulumi.yaml are copied (the virtualenv made absolute), the program is a link to the real one."""

    def __init__(self, cluster: Cluster, workdir: Path) -> None:
        self.env = cluster.pulumi_env(workdir)
        self.project = workdir / "platform"
        self.project.mkdir()
        project = yaml.safe_load((PROJECT / "Pulumi.yaml").read_text())
        project["runtime"]["options"]["virtualenv"] = str(ROOT / ".venv")
        (self.project / "Pulumi.yaml").write_text(yaml.safe_dump(project))
        (self.project / "__main__.py").symlink_to(PROJECT / "__main__.py")
        shutil.copy(PROJECT / "Pulumi.dev.yaml", self.project / "Pulumi.dev.yaml")

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(BIN / "pulumi"), *args, "--non-interactive", "--cwd", str(self.project)]
        if args[0] in ("up", "preview", "destroy", "config", "refresh"):
            argv += ["--stack", "dev"]
        run = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=900)
        if ok and run.returncode != 0:
            pytest.fail(
                f"`pulumi {' '.join(args)}` failed ({run.returncode}):\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}"
            )
        return run


def test_plan_exports_only_objects_the_api_server_accepts(cluster: Cluster, tmp_path: Path) -> None:
    objects = planned(tmp_path / "plan")
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "Secret"} <= kinds
    answers = cluster.apply_dry_run(objects, create_namespaces=["cert-manager"])  # where the CA lives
    assert [(a["kind"], a["metadata"]["name"]) for a in answers] == [
        (o["kind"], o["metadata"]["name"]) for o in objects
    ]
    for name in namespaces(objects):  # the fixture created them for real to dry-run their content
        cluster.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        cluster.finalize_namespace(name)


def test_pod_security_admits_every_workload_and_warns_only_for_the_explained_exceptions(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Pod Security on the real API server: every workload's pod is admitted by its namespace's enforced
    level (a dry-run Pod from each template), and the only `restricted` warnings are the agents' explained
    exception (hostPath, uid 0; docs/kubernetes/collectors.md) — Beyla's namespace is privileged."""
    # plan reads <configs>/../stacks/platform/Pulumi.dev.yaml: a copy of the tree whose dev stack runs Beyla
    shutil.copytree(ROOT / "configs", tmp_path / "tree" / "configs")
    stack = tmp_path / "tree" / "stacks" / "platform" / "Pulumi.dev.yaml"
    stack.parent.mkdir(parents=True)
    config = yaml.safe_load((PROJECT / "Pulumi.dev.yaml").read_text())
    config["config"].setdefault("otelstack:cluster", {})["beyla"] = {"enabled": True}
    stack.write_text(yaml.safe_dump(config))
    objects = planned(tmp_path / "plan", "--configs", str(tmp_path / "tree" / "configs"))
    workloads = [o for o in objects if o["kind"] in ("DaemonSet", "StatefulSet", "Deployment")]
    assert {o["metadata"]["name"] for o in workloads} >= {"otel-agent", "otel-gateway", "beyla"}
    cluster.warnings.clear()
    cluster.apply_dry_run(objects, create_namespaces=["cert-manager"])
    warned = {path.rsplit("/", 1)[-1]: text for path, text in cluster.warnings if "PodSecurity" in text}
    # the agents' namespace warns at restricted on purpose (its exception is visible); Beyla's is privileged
    assert set(warned) == {"otel-agent"}, warned
    assert "restricted volume types" in warned["otel-agent"] and "runAsUser=0" in warned["otel-agent"]
    for workload in workloads:  # enforce applies to pods: each workload's pod, as its controller would make it
        meta, spec = workload["metadata"], dict(workload["spec"]["template"]["spec"])
        claims = workload["spec"].get("volumeClaimTemplates") or []  # a StatefulSet's controller adds these
        spec["volumes"] = [
            *(spec.get("volumes") or []),
            *(
                {"name": c["metadata"]["name"], "persistentVolumeClaim": {"claimName": c["metadata"]["name"]}}
                for c in claims
            ),
        ]
        name = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"{meta['name']}-0", "namespace": meta["namespace"]},
        }
        pod = {**name, "spec": spec}
        cluster.apply(pod, dry_run=True)  # ApiError 403 "violates PodSecurity" if the namespace refuses it
    for name in namespaces(objects):
        cluster.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        cluster.finalize_namespace(name)


def test_a_wrong_field_in_an_object_is_refused_by_the_api_server(cluster: Cluster, tmp_path: Path) -> None:
    objects = planned(tmp_path / "plan")
    secret = next(o for o in objects if o["kind"] == "Secret")
    secret["metadata"]["namespace"] = "default"
    secret["stringDatas"] = secret.pop("stringData")
    with pytest.raises(ApiError) as refused:
        cluster.apply_dry_run([secret])
    # 1.37 answers a strict-validation refusal of server-side apply with 500, naming the field
    assert refused.value.code >= 400 and "stringDatas" in str(refused.value), refused.value


def dev_stack(cluster: Cluster, tmp_path: Path, objects: list[dict[str, Any]]) -> Pulumi:
    """The dev stack initialised on the local backend, with a value for every secret key the plan lists."""
    cluster.apply(CERT_MANAGER_NAMESPACE)  # cert-manager is installed already: its CRDs and its namespace
    pulumi = Pulumi(cluster, tmp_path)
    pulumi("stack", "init", "dev")
    keys = {key for o in objects if o["kind"] == "Secret" for key in o.get("stringData") or {}}
    for key in sorted(keys):
        pulumi("config", "set", "--secret", "--path", f"otelstack:secrets.{key}", f"test-value-of-{key}")
    pulumi("config", "set", "otelstack:withoutNodes", "true")
    return pulumi


def test_the_policy_pack_in_the_engine_stops_a_stack_that_breaks_it(cluster: Cluster, tmp_path: Path) -> None:
    """Beyla switched on, and the pack's allow-list emptied by policy config: the mandatory
    no-privileged-pods policy fails the preview naming Beyla's DaemonSet; nothing reaches the cluster."""
    reason = skip_reason(PULUMI_PROGRAMS)
    if reason:
        pytest.skip(reason)
    pulumi = dev_stack(cluster, tmp_path, planned(tmp_path / "plan"))
    pulumi("config", "set", "--path", "otelstack:cluster.beyla.enabled", "true")
    policy_config = tmp_path / "policy-config.json"
    policy_config.write_text('{"no-privileged-pods": {"allowList": []}}')
    run = pulumi("preview", "--policy-pack", str(POLICY), "--policy-pack-config", str(policy_config), ok=False)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out[-4000:]
    assert "no-privileged-pods" in out and "mandatory" in out and "/beyla: hostPID is set" in out, out[-4000:]
    assert cluster.left_after_destroy("observability-beyla") == []


def up_and_find_planned(pulumi: Pulumi, cluster: Cluster, objects: list[dict[str, Any]]) -> dict[str, set[str]]:
    """`pulumi up` with the policy pack; every planned namespaced object is then stored by the API server.
    Returns what each of those namespaces holds (``Kind/name``)."""
    up = pulumi("up", "--yes", "--skip-preview", "--policy-pack", str(POLICY))
    assert "error" not in up.stderr.lower(), up.stderr
    present: dict[str, set[str]] = {}
    for name in sorted({o["metadata"].get("namespace") for o in objects} - {None}):
        present[name] = set(cluster.list_namespace(name))
        wanted = {f"{o['kind']}/{o['metadata']['name']}" for o in objects if o["metadata"].get("namespace") == name}
        assert wanted <= present[name], sorted(wanted - present[name])
    return present


def test_pulumi_up_then_no_changes_then_destroy_leaves_nothing(cluster: Cluster, tmp_path: Path) -> None:
    reason = skip_reason(PULUMI_PROGRAMS)
    if reason:
        pytest.skip(reason)
    objects = planned(tmp_path / "plan")
    secret = next(o for o in objects if o["kind"] == "Secret")
    pulumi = dev_stack(cluster, tmp_path, objects)

    up_and_find_planned(pulumi, cluster, objects)
    stored = cluster.get(f"/api/v1/namespaces/{secret['metadata']['namespace']}/secrets/{secret['metadata']['name']}")
    assert sorted(stored["data"]) == sorted(secret.get("stringData") or {})

    pulumi("preview", "--expect-no-changes", "--diff")  # exits non-zero on any change

    pulumi("destroy", "--yes", "--skip-preview")
    assert cluster.left_after_destroy("cert-manager") == []
    for name in namespaces(objects):
        assert cluster.left_after_destroy(name) == [], name
        cluster.finalize_namespace(name)
    cluster_scoped = [o for o in objects if "namespace" not in o["metadata"] and o["kind"] != "Namespace"]
    for obj in cluster_scoped:
        with pytest.raises(ApiError) as gone:
            cluster.get(cluster.path(obj))
        assert gone.value.code == 404, obj["metadata"]["name"]
