"""Shared fixtures of the Kubernetes renderer tests: the stack of an environment, objects by kind/name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from otelstack.kubernetes.objects import Component
from otelstack.kubernetes.settings import ClusterSettings, parse_cluster
from otelstack.model.loader import load_spec
from otelstack.model.spec import PlatformSpec
from otelstack.render import kubernetes_components

ROOT = Path(__file__).parents[2]
CONFIGS = ROOT / "configs"
OPAMP_IMAGE = {"repository": "registry.example.com/otelstack/opamp-server", "tag": "1.0.0"}


def stack(
    env: str = "prod", cluster: dict[str, Any] | None = None, spec: PlatformSpec | None = None
) -> tuple[Component, ...]:
    return kubernetes_components(spec or load_spec(CONFIGS, env), parse_cluster(cluster or {}))


def find(
    components: tuple[Component, ...], kind: str, name: str | None = None, namespace: str | None = None
) -> dict[str, Any]:
    hits = [
        o
        for c in components
        for o in c.objects
        if o["kind"] == kind
        and name in (None, o["metadata"]["name"])
        and namespace in (None, o["metadata"].get("namespace"))
    ]
    assert len(hits) == 1, f"{kind} {name} {namespace or ''}: {len(hits)} objects"
    return hits[0]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def default_cluster() -> ClusterSettings:
    return ClusterSettings()
