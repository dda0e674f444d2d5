"""The backends on a real Kubernetes API server (loopback, tests/stacks/cluster.py): a dev tree whose spec
names the in-cluster Services and whose stack runs every backend; the objects `otelstack plan` exports are
accepted (server-side apply, dry run, strict field validation) and each backend pod is admitted by its
namespace's Pod Security level (restricted) without a warning."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.stacks.cluster import Cluster
from tests.stacks.test_mocks_backends import BACKENDS, DOMAIN
from tests.stacks.test_real_stack import PROJECT, ROOT, namespaces, planned

pytestmark = pytest.mark.cluster


def backend_tree(tmp_path: Path) -> Path:
    """configs/ with the dev backends on the stack's Services, and a dev stack file running them all."""
    configs = tmp_path / "tree" / "configs"
    shutil.copytree(ROOT / "configs", configs)
    platform = configs / "dev" / "platform.yaml"
    data = yaml.safe_load(platform.read_text())
    data["backends"]["tempo"]["endpoint"] = f"tempo.{DOMAIN}:4317"
    data["backends"]["loki"]["endpoint"] = f"http://loki.{DOMAIN}:3100/otlp"
    data["backends"]["prometheus"]["endpoint"] = f"http://prometheus.{DOMAIN}:9090/api/v1/write"
    platform.write_text(yaml.safe_dump(data))
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
