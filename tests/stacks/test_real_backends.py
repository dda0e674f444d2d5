"""The backends on a real Kubernetes API server (loopback, tests/stacks/cluster.py): a dev tree whose spec
names the in-cluster Services and whose stack runs every backend; the objects `otelstack plan` exports are
accepted (server-side apply, dry run, strict field validation), each backend pod is admitted by its
namespace's Pod Security level (restricted) without a warning, and the real `pulumi up` (policy pack in the
engine) creates them, a preview then shows no change and `pulumi destroy` removes them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.stacks.cluster import PULUMI_PROGRAMS, Cluster, skip_reason
from tests.stacks.test_mocks_backends import BACKENDS, in_cluster_configs
from tests.stacks.test_real_stack import PROJECT, dev_stack, namespaces, planned, up_and_find_planned

pytestmark = pytest.mark.cluster


def backend_tree(tmp_path: Path) -> Path:
    """configs/ with the dev backends on the stack's Services, and a dev stack file running them all."""
    configs = in_cluster_configs(tmp_path / "tree" / "configs")
    stack = tmp_path / "tree" / "stacks" / "platform" / "Pulumi.dev.yaml"
    stack.parent.mkdir(parents=True)
    config = yaml.safe_load((PROJECT / "Pulumi.dev.yaml").read_text())
    config["config"].setdefault("otelstack:cluster", {})["backends"] = {name: {"enabled": True} for name in BACKENDS}
    stack.write_text(yaml.safe_dump(config))
    return configs


def test_the_api_server_accepts_the_backends_and_admits_their_pods(cluster: Cluster, tmp_path: Path) -> None:
    objects = planned(tmp_path / "plan", "--configs", str(backend_tree(tmp_path)))
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert {("StatefulSet", n) for n in ("prometheus", "alertmanager", "tempo", "loki")} <= names
    assert ("Deployment", "grafana") in names
    cluster.warnings.clear()
    answers = cluster.apply_dry_run(objects, create_namespaces=["cert-manager"])
    assert len(answers) == len(objects)
    warned = {path.rsplit("/", 1)[-1]: text for path, text in cluster.warnings if "PodSecurity" in text}
    assert not set(warned) & set(BACKENDS), warned
    for workload in (
        o for o in objects if o["metadata"]["name"] in BACKENDS and o["kind"] in ("StatefulSet", "Deployment")
    ):
        meta, spec = workload["metadata"], dict(workload["spec"]["template"]["spec"])
        claims = workload["spec"].get("volumeClaimTemplates") or []
        spec["volumes"] = [
            *spec["volumes"],
            *(
                {"name": c["metadata"]["name"], "persistentVolumeClaim": {"claimName": c["metadata"]["name"]}}
                for c in claims
            ),
        ]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"{meta['name']}-0", "namespace": meta["namespace"]},
        }
        cluster.apply({**pod, "spec": spec}, dry_run=True)  # ApiError 403 if Pod Security refuses it
    for name in namespaces(objects):
        cluster.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        cluster.finalize_namespace(name)


def test_pulumi_up_creates_the_backends_then_no_changes_then_destroy(cluster: Cluster, tmp_path: Path) -> None:
    reason = skip_reason(PULUMI_PROGRAMS)
    if reason:
        pytest.skip(reason)
    configs = backend_tree(tmp_path)
    objects = planned(tmp_path / "plan", "--configs", str(configs))
    pulumi = dev_stack(cluster, tmp_path, objects)
    pulumi("config", "set", "otelstack:configs", str(configs))
    for name in BACKENDS:
        pulumi("config", "set", "--path", f"otelstack:cluster.backends.{name}.enabled", "true")

    present = up_and_find_planned(pulumi, cluster, objects)["observability"]
    assert {"StatefulSet/prometheus", "Deployment/grafana", "Secret/grafana-admin"} <= present
    admin = cluster.get("/api/v1/namespaces/observability/secrets/grafana-admin")
    assert sorted(admin["data"]) == ["GRAFANA_ADMIN_PASSWORD", "GRAFANA_SECRET_KEY"]

    pulumi("preview", "--expect-no-changes", "--diff")
    # What the pvc-protection controller (absent here: no controller manager) does once no pod uses a claim:
    # drop the finalizer the API server's admission added, or the claim's delete never finishes.
    for claim in (o for o in objects if o["kind"] == "PersistentVolumeClaim"):
        cluster.request("PATCH", cluster.path(claim), {"metadata": {"finalizers": None}},
                        content_type="application/merge-patch+json")  # fmt: skip
    pulumi("destroy", "--yes", "--skip-preview")
    for name in namespaces(objects):
        assert cluster.left_after_destroy(name) == [], name
        cluster.finalize_namespace(name)
