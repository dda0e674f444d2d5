"""What every component of the platform does: create the objects otelstack rendered, as typed resources.

``otelstack.kubernetes`` renders each part of the platform to plain Kubernetes objects (the same objects
``otelstack plan`` exports); a component turns each object into the pulumi_kubernetes resource of its
kind (a ``CustomResource`` for kinds the SDK does not know, e.g. cert-manager's and the operator's), parents
them to itself and orders them:

- inside a component, an object waits for the objects of a lower rank (the Namespace and
  CustomResourceDefinitions first; then accounts, roles, configuration, claims; then bindings; then
  workloads and everything else), so the API server never sees an object before what it refers to;
- between components, ``depends_on`` names what must exist first (instrumentation after the operator,
  certificates after cert-manager); a dependency on a component waits for all its children.

Two things are added here and nowhere else, so the plan's export stays free of them: the values of Secrets
annotated ``otelstack.io/values-from: pulumi-config`` (from the stack's secret config, or generated once by
generated.py for the keys listed in ``otelstack.io/generated-keys`` that the config does not give), and, on a cluster
without nodes (an API server alone, as in the tests), the annotations that keep Pulumi from waiting for
what only nodes and controllers do: ``pulumi.com/skipAwait`` (no pod ever becomes ready) and
``pulumi.com/deletionPropagationPolicy: background`` (no garbage collector removes the foreground-deletion
finalizer, so a foreground delete would never finish).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from otelstack.kubernetes.objects import ThirdParty
from stacks.components import third_party
from stacks.components.generated import RandomValue

K8sObject = dict[str, Any]

VALUES_FROM = "otelstack.io/values-from"
VALUES_FROM_CONFIG = "pulumi-config"
GENERATED_KEYS = "otelstack.io/generated-keys"
WITHOUT_NODES = {"pulumi.com/skipAwait": "true", "pulumi.com/deletionPropagationPolicy": "background"}

# Lower ranks are created first inside a component.
_RANK = {
    "Namespace": 0,
    "CustomResourceDefinition": 0,
    "ServiceAccount": 1,
    "ClusterRole": 1,
    "Role": 1,
    "ConfigMap": 1,
    "Secret": 1,
    "PersistentVolumeClaim": 1,
    "Issuer": 1,
    "ClusterIssuer": 1,
    "ClusterRoleBinding": 2,
    "RoleBinding": 2,
    "Certificate": 2,
}
_WORKLOAD_RANK = 3
# pulumi_kubernetes module names of the API groups whose first label is not the module name.
_MODULES = {"": "core"}


class SecretValueMissing(ValueError):
    """A Secret needs a value the stack's secret config does not hold."""


@dataclass(frozen=True)
class ComponentArgs:
    """What a platform component creates: otelstack's rendered objects, and how."""

    objects: Sequence[K8sObject]
    depends_on: Sequence[pulumi.Resource] = ()
    source: ThirdParty | None = None  # a chart/kustomization installed after the objects (third_party.py)
    secret_values: pulumi.Input[Mapping[str, str]] = field(default_factory=dict)
    without_nodes: bool = False


def rank(obj: K8sObject) -> int:
    return _RANK.get(obj["kind"], _WORKLOAD_RANK)


def logical_name(obj: K8sObject) -> str:
    """The Pulumi name of an object: namespace/name (namespaced) or its name (cluster-scoped)."""
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def resource_class(api_version: str, kind: str) -> type[pulumi.CustomResource] | None:
    """The pulumi_kubernetes class of a built-in kind (apps/v1 DaemonSet → k8s.apps.v1.DaemonSet), else None."""
    group, _, version = api_version.rpartition("/")
    module = getattr(k8s, _MODULES.get(group, group.split(".")[0]), None)
    found = getattr(getattr(module, version, None), kind, None)
    return found if isinstance(found, type) and issubclass(found, pulumi.CustomResource) else None


def secret_keys(obj: K8sObject) -> list[str]:
    """The keys a Secret takes from the stack's secret config (none for any other object)."""
    annotations = obj["metadata"].get("annotations") or {}
    if obj["kind"] != "Secret" or annotations.get(VALUES_FROM) != VALUES_FROM_CONFIG:
        return []
    return sorted(obj.get("stringData") or {})


def pick(values: Mapping[str, str], keys: Sequence[str], secret: str) -> dict[str, str]:
    """The values of `keys`, or SecretValueMissing naming every absent one and how to set it."""
    lacking = [key for key in keys if not values.get(key)]
    if lacking:
        raise SecretValueMissing(
            f"Secret {secret} needs {', '.join(lacking)} from the stack's secret config; set each with "
            f"`pulumi config set --secret --path 'otelstack:secrets.{lacking[0]}' <value>`"
        )
    return {key: values[key] for key in keys}


def generated_keys(obj: K8sObject) -> list[str]:
    """The keys of a Secret the stack may generate (``otelstack.io/generated-keys``, comma-separated)."""
    annotations = obj["metadata"].get("annotations") or {}
    text = annotations.get(GENERATED_KEYS) if obj["kind"] == "Secret" else None
    return sorted(k for k in (text or "").split(",") if k)


def with_secret_values(
    obj: K8sObject, values: pulumi.Input[Mapping[str, str]], parent: pulumi.Resource | None = None
) -> K8sObject:
    """A Secret that takes its values from the stack config, with those values filled in (as secrets); a
    generated key (generated.py) the config does not give takes its generated value."""
    keys = secret_keys(obj)
    if not keys:
        return obj
    filled = copy.deepcopy(obj)
    name = logical_name(obj)
    generated = {
        key: RandomValue(f"{name}/{key}", opts=pulumi.ResourceOptions(parent=parent)).value
        for key in generated_keys(obj)
        if key in keys
    }

    def resolve(args: list[Any]) -> dict[str, str]:
        given: Mapping[str, str] = args[0]
        made = dict(zip(generated, args[1:], strict=True))
        return pick({**made, **{k: v for k, v in given.items() if v}}, keys, name)

    inputs = pulumi.Output.all(pulumi.Output.from_input(values), *generated.values())
    filled["stringData"] = pulumi.Output.secret(inputs.apply(resolve))
    return filled


def for_a_cluster_without_nodes(obj: K8sObject) -> K8sObject:
    marked = copy.deepcopy(obj)
    marked["metadata"].setdefault("annotations", {}).update(WITHOUT_NODES)
    return marked


def create(obj: K8sObject, opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    """The resource of one object: its typed class when the SDK has one, else a CustomResource."""
    name = logical_name(obj)
    cls = resource_class(obj["apiVersion"], obj["kind"])
    if cls is None:
        body = {key: value for key, value in obj.items() if key not in ("apiVersion", "kind", "metadata")}
        return k8s.apiextensions.CustomResource(
            name, api_version=obj["apiVersion"], kind=obj["kind"], metadata=obj["metadata"], opts=opts, **body
        )
    fields = {_snake(key): value for key, value in obj.items() if key not in ("apiVersion", "kind")}
    return cls(name, opts=opts, **fields)


def type_token(component: str) -> str:
    """The Pulumi type of a platform component: "opamp-server" → otelstack:platform:OpampServer."""
    return "otelstack:platform:" + "".join(part.capitalize() for part in component.split("-"))


class PlatformComponent(pulumi.ComponentResource):
    """A part of the platform: its rendered objects as children, ordered by rank (see the module's text)."""

    resources: dict[str, pulumi.CustomResource]

    def __init__(self, component: str, args: ComponentArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(type_token(component), component, None, opts)
        self.resources = {}
        objects = [for_a_cluster_without_nodes(obj) if args.without_nodes else obj for obj in args.objects]
        objects = [with_secret_values(obj, args.secret_values, self) for obj in objects]
        earlier: list[pulumi.Resource] = []
        for level in sorted({rank(obj) for obj in objects}):
            created: list[pulumi.Resource] = []
            for obj in (o for o in objects if rank(o) == level):
                resource = create(obj, pulumi.ResourceOptions(parent=self, depends_on=[*args.depends_on, *earlier]))
                self.resources[f"{obj['kind']}/{logical_name(obj)}"] = resource
                created.append(resource)
            earlier += created
        self.installed: pulumi.ComponentResource | None = None
        if args.source is not None:
            opts = pulumi.ResourceOptions(
                parent=self,
                depends_on=[*args.depends_on, *earlier],
                transforms=[without_nodes_transform] if args.without_nodes else None,
            )
            self.installed = third_party.create(args.source, opts, without_nodes=args.without_nodes)
        self.register_outputs({"objects": len(objects)})


def without_nodes_transform(args: pulumi.ResourceTransformArgs) -> pulumi.ResourceTransformResult | None:
    """The annotations of a cluster without nodes on every object a chart or kustomization renders (the
    engine applies a transform to the children the provider registers)."""
    metadata = args.props.get("metadata") if args.type_.startswith("kubernetes:") else None
    if not isinstance(metadata, dict):
        return None
    annotations = {**(metadata.get("annotations") or {}), **WITHOUT_NODES}
    props = {**args.props, "metadata": {**metadata, "annotations": annotations}}
    return pulumi.ResourceTransformResult(props=props, opts=args.opts)
