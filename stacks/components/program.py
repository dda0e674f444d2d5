"""The program of every stack: read the stack's config, render the platform with otelstack, create it.

Config of a stack (``stacks/platform/Pulumi.<stack>.yaml``, namespace ``otelstack``):

- ``environment`` (required) and ``region``: which otelstack environment to render (``configs/<env>/``);
- ``cluster``: the cluster settings (``otelstack.kubernetes.settings.ClusterSettings``, camelCase keys);
- ``secrets``: a secret map, one value per key of the ``otelstack-secrets`` Secret
  (``pulumi config set --secret --path 'otelstack:secrets.OTELSTACK_OPAMP_TOKEN' …``);
- ``configs``: the configs directory (default: the repository's ``configs/``);
- ``withoutNodes``: true only on a cluster without nodes or controllers (the API-server-only test
  cluster): Pulumi then neither waits for readiness nor deletes in the foreground (platform_component.py).

``otelstack plan --env ENV`` renders the same objects from the same stack file, with no cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pulumi

from otelstack.kubernetes.objects import Component
from otelstack.kubernetes.settings import parse_cluster
from otelstack.model.loader import load_spec
from otelstack.render import kubernetes_components
from stacks.components.platform_component import ComponentArgs, PlatformComponent

ROOT = Path(__file__).resolve().parents[2]
FOUNDATION = "namespace"  # every other component's objects live in (or refer to) its namespaces


class DependencyMissing(ValueError):
    """A component depends on one that was not created before it."""


def create_platform(
    components: Sequence[Component],
    *,
    secret_values: pulumi.Input[Mapping[str, str]],
    without_nodes: bool = False,
) -> dict[str, PlatformComponent]:
    """One Pulumi component per rendered component, each depending on the foundation and its `depends_on`."""
    created: dict[str, PlatformComponent] = {}
    for component in components:
        lacking = [name for name in component.depends_on if name not in created]
        if lacking:
            raise DependencyMissing(f"component {component.name} needs {', '.join(lacking)} created before it")
        names = [*([FOUNDATION] if FOUNDATION in created else []), *component.depends_on]
        args = ComponentArgs(
            objects=component.objects,
            depends_on=[created[name] for name in dict.fromkeys(names)],
            secret_values=secret_values,
            without_nodes=without_nodes,
            source=component.source,
        )
        created[component.name] = PlatformComponent(component.name, args)
    return created


def run() -> dict[str, PlatformComponent]:
    """The stack's program: render from the stack config, create every component, export a summary."""
    config = pulumi.Config("otelstack")
    source = f"Pulumi.{pulumi.get_stack()}.yaml"
    cluster = parse_cluster(config.get_object("cluster"), source=source)
    configs = Path(config.get("configs") or ROOT / "configs")
    spec = load_spec(configs, config.require("environment"), config.get("region"))
    components = kubernetes_components(spec, cluster)
    created = create_platform(
        components,
        secret_values=config.get_secret_object("secrets") or {},
        without_nodes=config.get_bool("withoutNodes") or False,
    )
    pulumi.export("namespace", cluster.namespace)
    pulumi.export("components", [component.name for component in components])
    return created
