"""cert-manager installed by the stack (``cluster.installCertManager: true``): its own Helm chart, pinned.

The chart is ``deploy/charts/cert-manager`` inside the Go module github.com/cert-manager/cert-manager at
the version the catalog pins for its CRDs (catalog/kubernetes_tools.yaml, ``crds: cert-manager``); the
Pulumi program hands that directory to the provider's ``helm.v4.Chart``, which renders it (nothing of the
chart is copied here). This module only says which chart and with which values:

- ``crds.enabled``: the chart installs the CRDs of the same release (the ones the tests apply); ``crds.keep``
  (the chart's default, explicit here) marks them ``helm.sh/resource-policy: keep``, which the provider
  honours: `pulumi destroy` leaves the CRDs, so removing the stack never deletes every Certificate in the
  cluster with them;
- every image pinned to the release tag (the module's Chart.yaml carries ``appVersion: v0.0.0``, which
  the release tool replaces, so the chart's default tag would be wrong), with requests and limits;
- leader election in cert-manager's own namespace (the chart's default is kube-system);
- ``startupapicheck`` off: it is a Helm post-install hook, and ``helm.v4.Chart`` renders no hooks; the
  program's ordering does its work (certificates depend on this component, docs/kubernetes/certificates.md);
- the namespace (``certManagerNamespace``) is created here, Pod Security ``restricted`` (cert-manager's
  pods run as non-root with a read-only root file system and no capability).

``--cluster-resource-namespace`` stays the release namespace, where certificates.py puts the platform CA.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from otelstack.kubernetes.namespace import namespace_object
from otelstack.kubernetes.objects import Component, K8sObject, ThirdParty, pinned_module, resources

if TYPE_CHECKING:
    from otelstack.kubernetes.stack import StackContext

CHART_PATH = "deploy/charts/cert-manager"
RELEASE = "cert-manager"  # the release name: the chart names its objects cert-manager, cert-manager-webhook, …

# Requests and limits per cert-manager Deployment (the chart's default is none). cainjector holds every
# Secret and webhook configuration it injects into in memory: raise its memory on very large clusters.
RESOURCES: dict[str, K8sObject] = {
    "controller": resources(0.05, 0.5, 128, 512),
    "webhook": resources(0.02, 0.2, 64, 128),
    "cainjector": resources(0.02, 0.2, 128, 512),
}


def values(ctx: StackContext) -> dict[str, Any]:
    """The values passed to the chart."""
    _, version = pinned_module("cert-manager")
    cluster = ctx.cluster
    scheduling: dict[str, Any] = {}
    if cluster.node_selector:
        scheduling["nodeSelector"] = dict(cluster.node_selector)
    if cluster.tolerations:
        scheduling["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in cluster.tolerations]
    # the chart's own NetworkPolicies (each Deployment's pods selected; ingress on its ports, egress to DNS
    # and HTTPS) when the stack renders NetworkPolicies
    policies = {"networkPolicy": {"enabled": True}} if cluster.network_policies.enabled else {}
    return {
        "crds": {"enabled": True, "keep": True},
        "global": {"leaderElection": {"namespace": cluster.cert_manager_namespace}},
        "image": {"tag": version},
        "resources": RESOURCES["controller"],
        **scheduling,
        **policies,
        "webhook": {"image": {"tag": version}, "resources": RESOURCES["webhook"], **scheduling, **policies},
        "cainjector": {"image": {"tag": version}, "resources": RESOURCES["cainjector"], **scheduling, **policies},
        "acmesolver": {"image": {"tag": version}},
        "startupapicheck": {"enabled": False},
    }


def component(ctx: StackContext) -> Component | None:
    """cert-manager's namespace and chart, when the stack installs it; None when it is present already."""
    if not ctx.cluster.install_cert_manager:
        return None
    module, version = pinned_module("cert-manager")
    chart = ThirdParty(
        kind="helm-chart",
        name=RELEASE,
        module=module,
        version=version,
        path=CHART_PATH,
        namespace=ctx.cluster.cert_manager_namespace,
        values=values(ctx),
    )
    namespace = namespace_object(ctx.cluster.cert_manager_namespace, ctx.spec.environment)
    return Component("cert-manager", (namespace,), source=chart)
