"""otelstack's policy pack: the rules every object of the platform's stacks must keep.

Each rule is a plain function over one resource's type and inputs (or, for the NetworkPolicy rule, over all
of them) that returns its violations as messages; ``__main__`` wraps them into CrossGuard policies, all
mandatory. Kubernetes resources arrive with the API's camelCase keys (``kubernetes:apps/v1:DaemonSet``).

- ``no-privileged-pods``: no container is privileged, adds a capability beyond NET_BIND_SERVICE, or
  shares the node's PID, network or IPC namespace — unless its workload (namespace/name) is on the
  allow-list (config ``allowList``; by default Beyla, which needs host PID and eBPF capabilities);
- ``requests-and-limits``: every container (init containers too) requests and limits CPU and memory;
- ``no-insecure-tls``: outside dev (label ``otelstack.io/environment``; an object without it is held to
  the rule), no collector configuration in a ConfigMap turns TLS off (``insecure: true``) or skips
  verification (``insecure_skip_verify: true``);
- ``network-policy-for-every-workload``: every workload's pods are selected by a NetworkPolicy of their
  namespace with a non-empty pod selector (the namespace's default deny alone does not count);
- ``no-latest-images``: every image names a tag other than ``latest`` or a digest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import yaml

Props = Mapping[str, Any]

ENVIRONMENT_LABEL = "otelstack.io/environment"
RELAXED_ENVIRONMENTS = ("dev",)
ALLOWED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
HOST_NAMESPACES = ("hostPID", "hostNetwork", "hostIPC")
DEFAULT_ALLOW_LIST = ("observability-beyla/beyla",)

_WORKLOADS = {
    "kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template", "spec"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template", "spec"),
    "kubernetes:batch/v1:Job": ("spec", "template", "spec"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
    "kubernetes:core/v1:Pod": ("spec",),
}
_LABELS = {kind: (*path[:-1], "metadata", "labels") for kind, path in _WORKLOADS.items()}
_LABELS["kubernetes:core/v1:Pod"] = ("metadata", "labels")


def _at(props: Props, path: Sequence[str]) -> Any:
    value: Any = props
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def workload_name(props: Props) -> str:
    meta = props.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name', '?')}"


def pod_spec(resource_type: str, props: Props) -> Mapping[str, Any] | None:
    """The pod spec of a workload or pod (None for any other resource)."""
    path = _WORKLOADS.get(resource_type)
    spec = _at(props, path) if path else None
    return spec if isinstance(spec, Mapping) else None


def pod_labels(resource_type: str, props: Props) -> Mapping[str, str]:
    labels = _at(props, _LABELS[resource_type]) if resource_type in _LABELS else None
    return labels if isinstance(labels, Mapping) else {}


def containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or ()


def privileged(resource_type: str, props: Props, allow_list: Iterable[str] = DEFAULT_ALLOW_LIST) -> list[str]:
    spec = pod_spec(resource_type, props)
    if spec is None or workload_name(props) in set(allow_list):
        return []
    where = workload_name(props)
    found = [f"{where}: {key} is set" for key in HOST_NAMESPACES if spec.get(key)]
    for container in containers(spec):
        context = container.get("securityContext") or {}
        name = f"{where} container {container.get('name')}"
        if context.get("privileged"):
            found.append(f"{name} is privileged")
        added = set((context.get("capabilities") or {}).get("add") or ()) - ALLOWED_CAPABILITIES
        if added:
            found.append(f"{name} adds the capabilities {', '.join(sorted(added))}")
    return found


def requests_and_limits(resource_type: str, props: Props) -> list[str]:
    spec = pod_spec(resource_type, props)
    if spec is None:
        return []
    found = []
    for container in containers(spec):
        resources = container.get("resources") or {}
        lacking = [
            f"{part}.{resource}"
            for part in ("requests", "limits")
            for resource in ("cpu", "memory")
            if not (resources.get(part) or {}).get(resource)
        ]
        if lacking:
            found.append(f"{workload_name(props)} container {container.get('name')} lacks {', '.join(lacking)}")
    return found


def _turned_off(node: Any, path: str = "") -> Iterator[str]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            if key in ("insecure", "insecure_skip_verify") and value is True:
                yield here
            else:
                yield from _turned_off(value, here)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _turned_off(item, f"{path}[{index}]")


def insecure_tls(resource_type: str, props: Props) -> list[str]:
    if resource_type != "kubernetes:core/v1:ConfigMap":
        return []
    labels = (props.get("metadata") or {}).get("labels") or {}
    if labels.get(ENVIRONMENT_LABEL) in RELAXED_ENVIRONMENTS:
        return []
    found = []
    for key, text in sorted((props.get("data") or {}).items()):
        try:
            document = yaml.safe_load(text) if isinstance(text, str) else None
        except yaml.YAMLError:
            continue
        if isinstance(document, Mapping) and ("exporters" in document or "receivers" in document):
            found += [f"{workload_name(props)} {key}: {setting}: true" for setting in _turned_off(document)]
    return found


def pinned(image: str) -> bool:
    """True for an image named by digest, or by a tag other than latest (a registry port is no tag)."""
    if "@sha256:" in image:
        return True
    _, separator, tag = image.rsplit("/", 1)[-1].partition(":")
    return bool(separator) and tag not in ("", "latest")


def latest_images(resource_type: str, props: Props) -> list[str]:
    spec = pod_spec(resource_type, props)
    if spec is None:
        return []
    return [
        f"{workload_name(props)} container {container.get('name')} image {container.get('image')!r} is not pinned"
        for container in containers(spec)
        if not pinned(str(container.get("image") or ""))
    ]


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    match = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not match and not expressions:
        return False  # an empty selector is the namespace's default policy, not the workload's own
    if any(labels.get(key) != value for key, value in match.items()):
        return False
    for expression in expressions:
        present = expression.get("key") in labels
        value = labels.get(expression.get("key"))
        operator = expression.get("operator")
        if operator == "In" and value not in (expression.get("values") or ()):
            return False
        if operator == "NotIn" and value in (expression.get("values") or ()):
            return False
        if (operator == "Exists" and not present) or (operator == "DoesNotExist" and present):
            return False
    return True


def workloads_without_policy(resources: Iterable[tuple[str, Props]]) -> list[str]:
    items = list(resources)
    selectors: dict[str, list[Mapping[str, Any]]] = {}
    for resource_type, props in items:
        if resource_type == "kubernetes:networking.k8s.io/v1:NetworkPolicy":
            namespace = workload_name(props).split("/")[0]
            selectors.setdefault(namespace, []).append((props.get("spec") or {}).get("podSelector") or {})
    found = []
    for resource_type, props in items:
        if resource_type in _WORKLOADS:
            namespace = workload_name(props).split("/")[0]
            labels = pod_labels(resource_type, props)
            if not any(_selects(selector, labels) for selector in selectors.get(namespace, ())):
                found.append(f"{workload_name(props)} ({resource_type.rsplit(':', 1)[-1]}) has no NetworkPolicy")
    return found
