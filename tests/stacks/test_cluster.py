"""The loopback cluster itself (real kube-apiserver and etcd built from their Go modules) and a Pulumi smoke
test against it (real Pulumi CLI, Python language host and pulumi-kubernetes provider, local backend).

No kubelet runs, so nothing becomes ready: the Pulumi program turns readiness waits off per object with
`pulumi.com/skipAwait: "true"`, and a deleted namespace stays Terminating (no namespace controller), so
the destroy check looks at what is left *in* the namespace, then finalizes it as the controller would.
"""

from __future__ import annotations

import subprocess
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from otelstack.dist.kubetools import program, tools_catalog
from tests.stacks.cluster import PULUMI_PROGRAMS, ApiError, Cluster, pulumi_plugins, skip_reason

pytestmark = pytest.mark.cluster


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def namespace_and_configmap(ns: str) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": ns},
            "data": {"level": "info"},
        },
    ]


def test_the_api_server_reports_the_pinned_release(cluster: Cluster) -> None:
    version = cluster.get("/version")
    pinned = program("kube-apiserver").version_string
    assert version["gitVersion"] == pinned
    assert (version["major"], version["minor"]) == ("1", pinned.split(".")[1])


def test_the_pinned_crds_are_established_and_served(cluster: Cluster) -> None:
    for name in ("certificates.cert-manager.io", "instrumentations.opentelemetry.io"):
        assert cluster.crd_established(name), name
    assert cluster.resource("cert-manager.io/v1", "Certificate") == ("certificates", True)
    assert cluster.resource("opentelemetry.io/v1alpha1", "Instrumentation") == ("instrumentations", True)
    assert cluster.resource("opentelemetry.io/v1beta1", "OpenTelemetryCollector") == ("opentelemetrycollectors", True)
    assert set(tools_catalog()["crds"]) == {"cert-manager", "opentelemetry-operator"}


def test_server_side_apply_dry_run_accepts_good_objects_and_refuses_an_unknown_field(cluster: Cluster) -> None:
    ns = unique("dryrun")
    answers = cluster.apply_dry_run(namespace_and_configmap(ns))
    assert [a["kind"] for a in answers] == ["Namespace", "ConfigMap"]
    assert answers[1]["data"] == {"level": "info"}
    with pytest.raises(ApiError):  # dry-run: nothing was stored
        cluster.get(f"/api/v1/namespaces/{ns}/configmaps/settings")

    bad = namespace_and_configmap(ns)[1] | {"dataa": {"level": "info"}}
    with pytest.raises(ApiError) as refused:
        cluster.apply_dry_run([bad])
    # Server-side apply reports a field outside the schema while building the typed patch; 1.37 answers
    # that with a 500 Status whose message names the field.
    assert refused.value.code in (400, 422, 500)
    assert ".dataa: field not declared in schema" in refused.value.status["message"], refused.value.status

    # A custom resource of a pinned CRD is checked against its schema as well.
    certificate: dict[str, Any] = {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": "otlp", "namespace": ns},
        "spec": {"secretName": "otlp-tls", "dnsNames": ["otlp"], "issuerRef": {"name": "ca"}},
    }
    assert cluster.apply_dry_run([certificate])[0]["spec"]["secretName"] == "otlp-tls"
    with pytest.raises(ApiError) as refused:
        cluster.apply_dry_run([certificate | {"spec": {**certificate["spec"], "secretNam": "x"}}])
    assert "secretNam" in refused.value.status["message"], refused.value.status
    cluster.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})


PROGRAM = textwrap.dedent(
    """\
    import pulumi
    import pulumi_kubernetes as k8s

    NS = pulumi.Config().require("namespace")
    # No kubelet and no controllers in the test cluster: nothing becomes ready, and the garbage collector
    # that would clear a foreground deletion's finalizer is absent, so deletes propagate in the background.
    SKIP = {"pulumi.com/skipAwait": "true", "pulumi.com/deletionPropagationPolicy": "background"}

    ns = k8s.core.v1.Namespace("ns", metadata={"name": NS, "annotations": SKIP})
    k8s.core.v1.ConfigMap(
        "settings",
        metadata={"name": "settings", "namespace": ns.metadata["name"], "annotations": SKIP},
        data={"level": "info"},
    )
    """
)


def pulumi(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["pulumi", *args, "--non-interactive", "--color=never"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"pulumi {' '.join(args)} exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done.stdout


def test_pulumi_up_preview_destroy_against_the_loopback_cluster(cluster: Cluster, tmp_path: Path) -> None:
    if reason := skip_reason(PULUMI_PROGRAMS):
        pytest.skip(reason)
    ns = unique("smoke")
    project = tmp_path / "project"
    project.mkdir()
    (project / "__main__.py").write_text(PROGRAM)
    (project / "Pulumi.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "otelstack-smoke",
                "runtime": {"name": "python", "options": {"virtualenv": str(Path(__file__).parents[2] / ".venv")}},
                "plugins": pulumi_plugins(),
            }
        )
    )
    env = cluster.pulumi_env(tmp_path)
    pulumi(["stack", "init", "dev"], project, env)
    pulumi(["config", "set", "namespace", ns], project, env)

    pulumi(["up", "--yes", "--skip-preview"], project, env)
    assert cluster.get(f"/api/v1/namespaces/{ns}/configmaps/settings")["data"] == {"level": "info"}
    assert cluster.list_namespace(ns) == ["ConfigMap/settings"]

    pulumi(["preview", "--expect-no-changes"], project, env)

    pulumi(["destroy", "--yes", "--skip-preview"], project, env)
    assert cluster.list_namespace(ns) == []
    # No namespace controller: the namespace waits in Terminating for its finalizer; do the controller's part.
    namespace = cluster.get(f"/api/v1/namespaces/{ns}")
    assert namespace["status"]["phase"] == "Terminating"
    cluster.finalize_namespace(ns)
    with pytest.raises(ApiError) as gone:
        cluster.get(f"/api/v1/namespaces/{ns}")
    assert gone.value.code == 404
