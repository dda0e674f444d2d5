"""Third-party parts the stack installs from their own pinned sources: cert-manager's Helm chart and the
OpenTelemetry Operator's kustomization, rendered by the Kubernetes provider itself (``helm.v4.Chart``,
``kustomize.v2.Directory``), never copied into the repository.

otelstack renders *which* source and *which* values (``otelstack.kubernetes.objects.ThirdParty``); here the
source is found on disk — the Go module ``module@version`` in the Go module cache, fetched through the
module proxy with ``go mod download`` when absent, exactly as the pinned CRDs are
(``otelstack.dist.kubetools``) — and handed to the provider. A kustomization gets our overlay, written to
``~/.cache/otelstack/kustomize/<name>-<digest>/kustomization.yaml`` (``$OTELSTACK_CACHE``): its only
resource is the module's directory, by relative path (kustomize refuses absolute ones).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from otelstack.kubernetes.objects import ThirdParty
from otelstack.yamlout import dump

MODULE_DIR_ENV = "OTELSTACK_THIRD_PARTY_MODULES"  # a directory holding <module>@<version>/ trees (offline use)


class SourceMissing(ValueError):
    """A third-party source (module, chart, kustomization) is not where the pin says."""


def module_dir(source: ThirdParty) -> Path:
    """The directory of ``source.module@source.version``: under $OTELSTACK_THIRD_PARTY_MODULES when set
    (``<module>@<version>/``, for a machine without the Go module proxy), else the Go module cache, found
    as the pinned CRDs are (``otelstack.dist.kubetools.crd_files``: ``go mod download``, fetched once)."""
    key = f"{source.module}@{source.version}"
    local = os.environ.get(MODULE_DIR_ENV)
    if local:
        found = Path(local) / key
        if not found.is_dir():
            raise SourceMissing(f"{source.name}: {key} is not under ${MODULE_DIR_ENV} ({local})")
        return found
    from otelstack.dist.kubetools import crd_files, tools_catalog

    pins = tools_catalog().get("crds") or {}
    pin = next((p for p in pins.values() if (p["module"], p["version"]) == (source.module, source.version)), None)
    if pin is None:
        pinned = ", ".join(f"{p['module']}@{p['version']}" for p in pins.values())
        raise SourceMissing(
            f"{source.name}: {key} is not pinned in catalog/kubernetes_tools.yaml (crds:); pinned: {pinned}"
        )
    try:
        files = crd_files()
    except Exception as exc:  # BuildError, or no `go` at all: say what was wanted and why it failed
        raise SourceMissing(f"{source.name}: the pinned module {key} could not be fetched: {exc}") from None
    marker = f"/{pin['dir'].strip('/')}/"
    for path in files:
        text = str(path)
        if f"@{source.version}/" in text and marker in text:
            return Path(text[: text.index(marker)])
    raise SourceMissing(f"{source.name}: no file of {key} under {pin['dir']} in the Go module cache")


def source_dir(source: ThirdParty) -> Path:
    """The chart or kustomization directory of `source`, checked: a chart has Chart.yaml, a kustomization
    kustomization.yaml."""
    directory = module_dir(source) / source.path
    marker = "Chart.yaml" if source.kind == "helm-chart" else "kustomization.yaml"
    if not (directory / marker).is_file():
        raise SourceMissing(
            f"{source.name}: {source.module}@{source.version} has no {marker} under {source.path} ({directory}); "
            f"the catalog's pin (catalog/kubernetes_tools.yaml) and the path must name a {source.kind}"
        )
    return directory


def overlay_dir(source: ThirdParty, upstream: Path, root: Path | None = None) -> Path:
    """Our overlay kustomization over ``upstream`` (a kustomization directory), written once per content."""
    overlay: dict[str, Any] = dict(source.values)
    text_key = json.dumps({"overlay": overlay, "upstream": str(upstream)}, sort_keys=True)
    digest = hashlib.sha256(text_key.encode()).hexdigest()[:12]
    if root is None:
        from otelstack.dist.build import cache_root

        root = cache_root()
    directory = root / "kustomize" / f"{source.name}-{digest}"
    directory.mkdir(parents=True, exist_ok=True)
    resources = [os.path.relpath(upstream, directory)]
    ordered = {"apiVersion": overlay.pop("apiVersion"), "kind": overlay.pop("kind"), "resources": resources, **overlay}
    target = directory / "kustomization.yaml"
    text = dump(ordered)
    if not target.is_file() or target.read_text(encoding="utf-8") != text:
        target.write_text(text, encoding="utf-8")
    return directory


class Directory(k8s.kustomize.v2.Directory):
    """``kustomize.v2.Directory`` with its ``resources`` output typed as the list the provider returns: the
    pulumi-kubernetes 4.25.0 Python SDK declares it a string, and resolving the list against that type fails
    the program (``AssertionError: Unexpected type. Expected 'list' got '<class 'str'>'``)."""

    @property
    @pulumi.getter
    def resources(self) -> pulumi.Output[Sequence[Any] | None]:  # type: ignore[override]
        value: pulumi.Output[Sequence[Any] | None] = pulumi.get(self, "resources")
        return value


def create(
    source: ThirdParty, opts: pulumi.ResourceOptions, *, without_nodes: bool = False
) -> pulumi.ComponentResource:
    """The provider's component for `source`: a Chart or a Directory. ``without_nodes``: no readiness waits
    (skipAwait) — on such a cluster no pod, and so no webhook, ever becomes ready."""
    directory = source_dir(source)
    if source.kind == "helm-chart":
        return k8s.helm.v4.Chart(
            source.name,
            chart=str(directory),
            namespace=source.namespace,
            values=dict(source.values),
            skip_await=without_nodes or None,
            opts=opts,
        )
    return Directory(
        source.name,
        directory=str(overlay_dir(source, directory)),
        namespace=source.namespace,
        skip_await=without_nodes or None,
        opts=opts,
    )
