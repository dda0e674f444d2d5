"""cert-manager and the OpenTelemetry Operator installed by the stack (installCertManager/installOperator
true), with the real Pulumi CLI and Kubernetes provider on a loopback API server of their own — one where
nothing is installed yet, not even the CRDs (the other stack tests' cluster has them applied beforehand).

What runs for real: the provider renders cert-manager's chart (deploy/charts/cert-manager of the pinned Go
module) and the operator's kustomization (config/default, under our overlay), the policy pack judges
every object they render, and `pulumi up` sends them to the API server.

What cannot happen here, and what the test proves instead: the cluster has no kubelet, so no pod runs,
the cert-manager and operator webhooks never answer, and no readiness can be awaited (withoutNodes: every
object carries pulumi.com/skipAwait). The API server still registers both projects' webhook configurations
and calls them: every object they guard — the platform's Issuer and ClusterIssuer, the operator's own
Issuer and serving Certificate — is refused with "failed calling webhook", and so everything that depends
on them (the leaf Certificates, the agent and gateway, the operator's readiness, the Instrumentation CR) is
never attempted. The test asserts exactly that outcome: the installs' own objects are in the cluster with
our values, the guarded objects were sent only once the webhooks were registered (they were refused by
them, not accepted unchecked), and the Instrumentation CR was not created. Then `pulumi destroy` removes
everything but cert-manager's CRDs, which its chart marks to be kept. On a cluster with nodes the same
ordering waits for the webhooks' Deployments to be ready (docs/kubernetes/testing.md).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from otelstack.kubernetes import cert_manager, operator
from otelstack.kubernetes.objects import pinned_module
from tests.stacks.cluster import CLUSTER_PROGRAMS, PULUMI_PROGRAMS, ApiError, Cluster, skip_reason, start_cluster
from tests.stacks.test_real_stack import POLICY, Pulumi, planned

pytestmark = pytest.mark.cluster
OPERATOR_NS = "opentelemetry-operator-system"
NAMESPACES = ("cert-manager", OPERATOR_NS, "observability", "observability-agent")


@pytest.fixture(scope="module")
def bare_cluster() -> Iterator[Cluster]:
    reason = skip_reason((*CLUSTER_PROGRAMS, *PULUMI_PROGRAMS))
    if reason:
        pytest.skip(reason)
    with start_cluster(crds=()) as running:  # nothing installed: the stack brings the CRDs
        yield running


def installing_stack(cluster: Cluster, tmp_path: Path) -> Pulumi:
    objects = planned(tmp_path / "plan")
    pulumi = Pulumi(cluster, tmp_path)
    pulumi("stack", "init", "dev")
    for key in sorted({key for o in objects if o["kind"] == "Secret" for key in o.get("stringData") or {}}):
        pulumi("config", "set", "--secret", "--path", f"otelstack:secrets.{key}", f"test-value-of-{key}")
    pulumi("config", "set", "otelstack:withoutNodes", "true")
    pulumi("config", "set", "--path", "otelstack:cluster.installCertManager", "true")
    pulumi("config", "set", "--path", "otelstack:cluster.installOperator", "true")
    return pulumi


def steps(preview_json: str) -> dict[str, dict[str, Any]]:
    """urn → the step's new state inputs, from `pulumi preview --json`."""
    data = json.loads(preview_json)
    return {s["urn"]: (s.get("newState") or {}).get("inputs") or {} for s in data.get("steps") or []}


def by_name(found: dict[str, dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    hits = [inputs for urn, inputs in found.items() if urn.rsplit("::", 1)[-1].endswith(name) and f":{kind}::" in urn]
    assert len(hits) == 1, (kind, name, [u for u in found if f":{kind}::" in u])
    return hits[0]


def test_preview_renders_the_pinned_chart_and_kustomization_and_passes_the_policy_pack(
    bare_cluster: Cluster, tmp_path: Path
) -> None:
    pulumi = installing_stack(bare_cluster, tmp_path)
    run = pulumi("preview", "--json", "--policy-pack", str(POLICY))  # fails the test on any policy violation
    found = steps(run.stdout)
    _, cm_version = pinned_module("cert-manager")
    for name, part in (("cert-manager", "controller"), ("cert-manager-webhook", "webhook"),
                       ("cert-manager-cainjector", "cainjector")):  # fmt: skip
        (container,) = by_name(found, "Deployment", f"cert-manager/{name}")["spec"]["template"]["spec"]["containers"]
        assert container["image"] == f"quay.io/jetstack/cert-manager-{part}:{cm_version}", container["image"]
        assert container["resources"] == cert_manager.RESOURCES[part]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
    crds = [u for u in found if ":CustomResourceDefinition::" in u]
    assert sum("cert-manager.io" in u for u in crds) == 6 and sum("opentelemetry.io" in u for u in crds) == 4, crds
    assert by_name(found, "ValidatingWebhookConfiguration", "cert-manager-webhook")
    manager = by_name(found, "Deployment", f"{OPERATOR_NS}/{operator.MANAGER}")
    (container,) = manager["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"{operator.OPERATOR_IMAGE}:{operator.OPERATOR_VERSION}"
    assert container["resources"] == operator.MANAGER_RESOURCES
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert manager["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"  # the transform reached it
    certificate = by_name(found, "Certificate", f"{OPERATOR_NS}/opentelemetry-operator-serving-cert")
    assert f"opentelemetry-operator-webhook-service.{OPERATOR_NS}.svc" in certificate["spec"]["dnsNames"]
    # one operator namespace, ours (Pod Security labels); the kustomization's own was deleted by the overlay
    namespaces = [u for u in found if u.endswith(f"Namespace::{OPERATOR_NS}")]
    assert len(namespaces) == 1 and "otelstack:platform:Operator$" in namespaces[0], namespaces
    assert by_name(found, "Instrumentation", "observability/otelstack")


def test_up_installs_both_and_the_webhooks_guard_what_comes_after(bare_cluster: Cluster, tmp_path: Path) -> None:
    pulumi = installing_stack(bare_cluster, tmp_path)
    up = pulumi("up", "--yes", "--skip-preview", "--continue-on-error", ok=False)
    out = up.stdout + up.stderr
    assert up.returncode != 0, out[-4000:]  # on this cluster the webhooks cannot answer (module docstring)

    # the installs' own objects are there, with our values
    for crd in ("certificates.cert-manager.io", "instrumentations.opentelemetry.io"):
        assert bare_cluster.crd_established(crd), crd
    stored = bare_cluster.get("/apis/apps/v1/namespaces/cert-manager/deployments/cert-manager-webhook")
    assert stored["spec"]["template"]["spec"]["containers"][0]["resources"] == cert_manager.RESOURCES["webhook"]
    manager = bare_cluster.get(f"/apis/apps/v1/namespaces/{OPERATOR_NS}/deployments/{operator.MANAGER}")
    assert manager["spec"]["template"]["spec"]["containers"][0]["image"].endswith(f":{operator.OPERATOR_VERSION}")
    webhooks = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
    names = {w["metadata"]["name"] for w in bare_cluster.get(webhooks)["items"]}
    assert {"cert-manager-webhook", "opentelemetry-operator-mutating-webhook-configuration"} <= names

    # what the webhooks guard was sent after they were registered, and refused by them
    refused = [line for line in out.splitlines() if 'failed calling webhook "webhook.cert-manager.io"' in line]
    for guarded in (
        "cert-manager.io/v1:ClusterIssuer::otelstack-observability-ca",
        "cert-manager.io/v1:Issuer::cert-manager/otelstack-observability-selfsigned",
        f"cert-manager.io/v1:Issuer::opentelemetry-operator:{OPERATOR_NS}/opentelemetry-operator-selfsigned-issuer",
    ):
        assert any(guarded in line for line in refused), (guarded, out[-4000:])
    with pytest.raises(ApiError) as absent:
        bare_cluster.get("/apis/cert-manager.io/v1/clusterissuers/otelstack-observability-ca")
    assert absent.value.code == 404
    # and what depends on them never reached the API server: no leaf Certificate, no Instrumentation CR
    assert "Certificate/otel-agent-client" not in bare_cluster.list_namespace("observability-agent")
    with pytest.raises(ApiError) as never:
        bare_cluster.get("/apis/opentelemetry.io/v1alpha1/namespaces/observability/instrumentations/otelstack")
    assert never.value.code == 404

    pulumi("destroy", "--yes", "--skip-preview")
    for name in NAMESPACES:
        assert bare_cluster.left_after_destroy(name) == [], name
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    for path in (f"{crds}/instrumentations.opentelemetry.io", f"{webhooks}/cert-manager-webhook"):
        assert gone(bare_cluster, path), path
    # cert-manager's CRDs stay: the chart marks them helm.sh/resource-policy: keep (crds.keep), which the
    # provider honours, so a destroy never takes every Certificate of the cluster with it
    kept = bare_cluster.get(f"{crds}/certificates.cert-manager.io")
    assert kept["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert "deletionTimestamp" not in kept["metadata"]


def gone(cluster: Cluster, path: str, timeout: float = 60) -> bool:
    """True once `path` answers 404 (a CRD's deletion finishes when the API server has removed its custom
    resources: its own finalizer, run inside kube-apiserver, takes a moment)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            cluster.get(path)
        except ApiError as answer:
            if answer.code == 404:
                return True
            raise
        time.sleep(0.5)
    return False
