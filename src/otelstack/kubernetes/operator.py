"""The OpenTelemetry Operator and its ``Instrumentation`` CR (opentelemetry.io/v1alpha1).

With ``installOperator: true`` the stack installs the operator from its own kustomization,
``config/default`` inside the Go module github.com/open-telemetry/opentelemetry-operator at the version the
catalog pins for its CRDs (:data:`OPERATOR_VERSION`); the Pulumi program hands it to the provider's
``kustomize.v2.Directory`` through an overlay of ours (:func:`overlay`): the operator's namespace, its
image pinned, the manager's requests, limits and hardened security context, Pod Security labels on its
namespace (ours: created with the NetworkPolicies before the kustomization, whose own Namespace the overlay
deletes). The kustomization brings the CRDs, RBAC, the manager Deployment, the webhook Service and
configurations, and a cert-manager ``Issuer``/``Certificate`` for the webhook's serving certificate
(cert-manager's cainjector puts its CA into the webhook configurations) — so the operator needs
cert-manager, installed by the stack or present. Nothing of the kustomization is copied here.

The ``instrumentation`` component is one ``Instrumentation`` CR in the platform's namespace: every SDK it
injects sends OTLP/HTTP (http/protobuf, port 4318, the protocol all the operator's auto-instrumentation
images support) to the node-local agent Service ``otel-agent.<agents' namespace>.svc`` (the agents run in
a namespace of their own: agent.py), with the sampler and propagators of ``sampling.head``.
Applications opt in with the annotation ``instrumentation.opentelemetry.io/inject-<language>:
"<namespace>/<name>"``. It depends on the ``operator`` component: the CRD and the operator's mutating
webhook must be ready before the CR is created and before any annotated pod starts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from otelstack.errors import SpecError
from otelstack.kubernetes import network
from otelstack.kubernetes.beyla import agent_otlp_url
from otelstack.kubernetes.namespace import namespace_object
from otelstack.kubernetes.objects import (
    Component,
    K8sObject,
    ThirdParty,
    container_security_context,
    metadata,
    obj,
    pinned_module,
    pod_security_context,
    resources,
)
from otelstack.security import layout
from otelstack.yamlout import dump

if TYPE_CHECKING:
    from otelstack.kubernetes.stack import StackContext

# The operator release whose CRDs are pinned in src/otelstack/catalog/kubernetes_tools.yaml (crds:
# opentelemetry-operator); a test keeps the two equal and the images below equal to its versions.txt.
OPERATOR_VERSION = "0.153.0"
API_VERSION = "opentelemetry.io/v1alpha1"
IMAGE_PREFIX = "ghcr.io/open-telemetry/opentelemetry-operator"

# The auto-instrumentation images the operator v0.153.0 injects by default (its versions.txt and
# internal/config/config.go), pinned here so an operator upgrade does not change them unseen.
IMAGES: dict[str, str] = {
    "java": f"{IMAGE_PREFIX}/autoinstrumentation-java:2.28.1",
    "nodejs": f"{IMAGE_PREFIX}/autoinstrumentation-nodejs:0.76.0",
    "python": f"{IMAGE_PREFIX}/autoinstrumentation-python:0.63b1",
    "dotnet": f"{IMAGE_PREFIX}/autoinstrumentation-dotnet:1.15.0",
    "go": "ghcr.io/open-telemetry/opentelemetry-go-instrumentation/autoinstrumentation-go:v0.24.0",
}

# The languages' names as fields of the CR's spec.
SPEC_FIELDS = {"java": "java", "nodejs": "nodejs", "python": "python", "dotnet": "dotnet", "go": "go"}


# The operator's image (its Makefile: IMG_PREFIX/IMG_REPO:VERSION, as the release workflow publishes it).
OPERATOR_IMAGE = "ghcr.io/open-telemetry/opentelemetry-operator/opentelemetry-operator"
KUSTOMIZATION_PATH = "config/default"
# config/default names every object opentelemetry-operator-<name> (namePrefix) and the manager `controller`
# in its image field (config/manager/manager.yaml), which the overlay's `images` replaces.
NAME_PREFIX = "opentelemetry-operator-"
MANAGER = f"{NAME_PREFIX}controller-manager"
MANAGER_UID = 65532  # the operator image's nonroot user
MANAGER_RESOURCES = resources(0.1, 0.5, 128, 256)


def overlay(ctx: StackContext) -> dict[str, Any]:
    """Our kustomization over the operator's ``config/default`` (the program adds it as ``resources``)."""
    _, version = pinned_module("opentelemetry-operator")
    pod: dict[str, Any] = {"securityContext": {**pod_security_context(MANAGER_UID, fs_group=False)}}
    if ctx.cluster.node_selector:
        pod["nodeSelector"] = dict(ctx.cluster.node_selector)
    if ctx.cluster.tolerations:
        pod["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in ctx.cluster.tolerations]
    manager = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": MANAGER},
        "spec": {
            "template": {
                "spec": {
                    **pod,
                    "containers": [
                        {
                            "name": "manager",
                            "resources": MANAGER_RESOURCES,
                            "securityContext": container_security_context(),
                        }
                    ],
                }
            }
        },
    }
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": ctx.cluster.operator_namespace,
        "images": [{"name": "controller", "newName": OPERATOR_IMAGE, "newTag": version.removeprefix("v")}],
        "patches": [
            # the namespace is ours (component(): Pod Security labels, NetworkPolicies before the install)
            {
                "target": {"kind": "Namespace"},
                "patch": _patch(
                    {"$patch": "delete", "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}
                ),
            },
            {"target": {"kind": "Deployment", "name": MANAGER}, "patch": _patch(manager)},
        ],
    }


def _patch(value: Any) -> str:
    """A patch as kustomize reads it: YAML text, keys in our order."""
    return dump(value)


def component(ctx: StackContext) -> Component | None:
    """The operator's kustomization, when the stack installs it (None: the operator is present already).
    It needs cert-manager (its webhook certificate); that dependency is dropped when cert-manager is
    present already."""
    if not ctx.cluster.install_operator:
        return None
    module, version = pinned_module("opentelemetry-operator")
    if version.removeprefix("v") != OPERATOR_VERSION:
        raise SpecError(
            f"catalog/kubernetes_tools.yaml pins the operator {version}, but its Instrumentation images are those "
            f"of v{OPERATOR_VERSION} (otelstack.kubernetes.operator.IMAGES); update both together"
        )
    source = ThirdParty(
        kind="kustomize",
        name="opentelemetry-operator",
        module=module,
        version=version,
        path=KUSTOMIZATION_PATH,
        namespace=ctx.cluster.operator_namespace,
        values=overlay(ctx),
    )
    objects = [namespace_object(ctx.cluster.operator_namespace, ctx.spec.environment)]
    if ctx.cluster.network_policies.enabled:
        objects += network.operator_policies(ctx)
    return Component("operator", tuple(objects), depends_on=("cert-manager",), source=source)


def _sampler(ctx: StackContext) -> dict[str, str]:
    head = ctx.spec.sampling.head
    sampler: dict[str, str] = {"type": head.sampler}
    if head.sampler.endswith("traceidratio"):
        sampler["argument"] = f"{head.ratio:g}"
    return sampler


def _resource(ctx: StackContext) -> dict[str, Any]:
    attributes = {"deployment.environment.name": ctx.spec.environment}
    if ctx.spec.cluster_name:
        attributes["k8s.cluster.name"] = ctx.spec.cluster_name
    return {"resourceAttributes": attributes}


def instrumentation(ctx: StackContext) -> K8sObject:
    settings = ctx.cluster.instrumentation
    spec: dict[str, Any] = {
        "exporter": {"endpoint": agent_otlp_url(ctx, layout.OTLP_HTTP_PORT)},
        # One protocol for every language: the Python, .NET, Node.js and Go images speak http/protobuf only
        # or by default, the Java agent 2.x by default.
        "env": [{"name": "OTEL_EXPORTER_OTLP_PROTOCOL", "value": "http/protobuf"}],
        "propagators": list(ctx.spec.sampling.head.propagators),
        "sampler": _sampler(ctx),
        "resource": _resource(ctx),
    }
    for language in sorted(settings.languages):
        spec[SPEC_FIELDS[language]] = {"image": IMAGES[language]}
    return obj(
        API_VERSION,
        "Instrumentation",
        metadata(settings.name, "instrumentation", namespace=ctx.namespace, environment=ctx.spec.environment),
        spec=spec,
    )


def instrumentation_component(ctx: StackContext) -> Component | None:
    """The Instrumentation CR, after the operator (its CRD and webhook) and the agents it points at."""
    if not ctx.cluster.instrumentation.enabled:
        return None
    return Component("instrumentation", (instrumentation(ctx),), depends_on=("namespace", "operator", "agent"))


def injection_annotation(ctx: StackContext, language: str) -> dict[str, str]:
    """The pod annotation that makes the operator inject `language` with this stack's CR."""
    if language not in SPEC_FIELDS:
        raise ValueError(f"unknown language {language!r}; allowed: {', '.join(SPEC_FIELDS)}")
    key = f"instrumentation.opentelemetry.io/inject-{language}"
    return {key: f"{ctx.namespace}/{ctx.cluster.instrumentation.name}"}
