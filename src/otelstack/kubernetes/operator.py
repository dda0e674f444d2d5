"""The OpenTelemetry Operator and its ``Instrumentation`` CR (opentelemetry.io/v1alpha1).

The operator itself is not rendered: its manifests (manager, RBAC, webhooks, CRDs as templates) come from
its Helm chart or release bundle, neither of which a pinned Go module carries in a form this renderer can
read offline. ``installOperator: true`` is therefore refused with a clear error; install the operator
(:data:`OPERATOR_VERSION`, with cert-manager for its webhook certificate) and keep ``installOperator:
false`` (docs/kubernetes/operator.md).

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
from otelstack.kubernetes.beyla import agent_otlp_url
from otelstack.kubernetes.objects import Component, K8sObject, metadata, obj
from otelstack.security import layout

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


def component(ctx: StackContext) -> Component | None:
    """The operator's own objects: refused (not rendered offline) when the stack should install it."""
    if not ctx.cluster.install_operator:
        return None
    raise SpecError(
        "otelstack:cluster.installOperator is true: installing the OpenTelemetry Operator from the stack is not "
        f"supported yet; install the operator v{OPERATOR_VERSION} (Helm chart or release manifest, with "
        "cert-manager for its webhook certificate) and set installOperator: false"
    )


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
