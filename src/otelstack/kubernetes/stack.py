"""The whole stack: one builder per module, called in order, and the stack's YAML export.

Each module of this package that renders a part of the platform has ``component(ctx) -> Component | None``
(None: the part is off in these settings). :data:`BUILDERS` lists them; :func:`render_stack` calls them
and orders the components so that every component comes after the ones it depends on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from otelstack.kubernetes import (
    agent,
    beyla,
    cert_manager,
    certificates,
    clickhouse,
    clickhouse_server,
    gateway,
    grafana,
    namespace,
    network,
    opamp,
    operator,
    prometheus,
    stores,
)
from otelstack.kubernetes.objects import Component
from otelstack.kubernetes.settings import ClusterSettings
from otelstack.model.spec import PlatformSpec
from otelstack.sizing import Sizing, size_platform
from otelstack.yamlout import dump


@dataclass(frozen=True)
class StackContext:
    spec: PlatformSpec
    cluster: ClusterSettings
    sizing: Sizing
    # The rendered collector config texts keyed by profile name (e.g. "agent-k8s", "gateway-k8s"), exactly
    # as `otelstack plan` writes them to build/ENV/collector/.
    collector_configs: Mapping[str, str] = field(default_factory=dict)
    # The rendered backend files by path relative to build/ENV/ (prometheus/prometheus.yml, …), exactly as
    # `otelstack plan` writes them (otelstack.backends.render_backends).
    backend_files: Mapping[str, str] = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return self.cluster.namespace

    @property
    def agent_namespace(self) -> str:
        """The agent DaemonSet's own namespace (Pod Security privileged; everything else stays restricted)."""
        return self.cluster.agent_namespace_name

    def collector_config(self, profile: str) -> str:
        try:
            return self.collector_configs[profile]
        except KeyError:
            raise KeyError(f"no rendered collector config for profile {profile!r}") from None

    def backend_file(self, path: str) -> str:
        try:
            return self.backend_files[path]
        except KeyError:
            raise KeyError(f"no rendered backend file {path!r}") from None

    def backend_dir(self, directory: str) -> dict[str, str]:
        """The rendered files under `directory`/ by their path relative to it, sorted."""
        prefix = directory.rstrip("/") + "/"
        return {p.removeprefix(prefix): t for p, t in sorted(self.backend_files.items()) if p.startswith(prefix)}


Builder = Callable[[StackContext], Component | None]

# One builder per module. Builders of other modules are added here; the order is the creation order
# wherever dependencies leave a choice.
BUILDERS: tuple[Builder, ...] = (
    namespace.component,
    cert_manager.component,
    certificates.component,
    agent.component,
    gateway.component,
    opamp.component,
    operator.component,
    operator.instrumentation_component,
    beyla.component,
    prometheus.prometheus_component,
    prometheus.alertmanager_component,
    stores.tempo_component,
    stores.loki_component,
    grafana.component,
    clickhouse_server.component,
    clickhouse.component,
    network.component,
)


def render_stack(
    spec: PlatformSpec,
    cluster: ClusterSettings,
    collector_configs: Mapping[str, str],
    builders: tuple[Builder, ...] | None = None,
    backend_files: Mapping[str, str] | None = None,
) -> tuple[Component, ...]:
    """Every component of the stack, each after the components it depends on.

    A dependency on a component that these settings leave out (e.g. the operator when it is already
    present in the cluster) is dropped: the part exists already.
    """
    ctx = StackContext(spec, cluster, size_platform(spec), dict(collector_configs), dict(backend_files or {}))
    built = [c for c in (b(ctx) for b in (BUILDERS if builders is None else builders)) if c is not None]
    names = [c.name for c in built]
    if len(set(names)) != len(names):
        raise ValueError(f"two builders return the same component: {names}")
    present = set(names)
    pending = [replace(c, depends_on=tuple(d for d in c.depends_on if d in present)) for c in built]
    ordered: list[Component] = []
    done: set[str] = set()
    while pending:
        ready = next((c for c in pending if set(c.depends_on) <= done), None)
        if ready is None:
            cycle = ", ".join(f"{c.name} → {'/'.join(c.depends_on)}" for c in pending)
            raise ValueError(f"components depend on each other in a cycle: {cycle}")
        ordered.append(ready)
        done.add(ready.name)
        pending.remove(ready)
    return tuple(ordered)


def stack_components(spec: PlatformSpec, cluster: ClusterSettings) -> tuple[Component, ...]:
    """The stack's components with the collector configs rendered as `plan` renders them — the Pulumi
    program's call. It is :func:`otelstack.render.kubernetes_components` (the rendering entry point, which
    renders the collector profiles this package puts into ConfigMaps)."""
    from otelstack.render import kubernetes_components  # the entry point sits above this package

    return kubernetes_components(spec, cluster)


SOURCES_DIR = "k8s/sources"  # what plan exports of a third-party installation (not Kubernetes objects)


def export_stack(components: tuple[Component, ...], header: str | None = None) -> dict[str, str]:
    """The components as files ``k8s/<NN>-<component>.yaml``: multi-document YAML in creation order. A
    component installed from a third-party chart or kustomization adds ``k8s/sources/<NN>-<component>.yaml``:
    its source (module@version, path) and the values or overlay passed, which is what is deterministic
    without a cluster (the provider renders the chart/kustomization itself, with the cluster at hand)."""
    files: dict[str, str] = {}
    comment = "".join(f"# {line}\n" for line in header.splitlines()) if header else ""
    for index, comp in enumerate(components, start=1):
        docs = [dump(o) for o in comp.objects]
        text = "---\n" + "---\n".join(docs) if docs else ""
        if comp.objects or comp.source is None:
            files[f"k8s/{index:02d}-{comp.name}.yaml"] = comment + text
        if comp.source is not None:
            renderer = "helm.v4.Chart" if comp.source.kind == "helm-chart" else "kustomize.v2.Directory"
            note = (
                f"Installed by the Pulumi program ({renderer}) from the pinned module below; the provider renders it.\n"
            )
            files[f"{SOURCES_DIR}/{index:02d}-{comp.name}.yaml"] = (
                comment + "".join(f"# {line}\n" for line in note.splitlines()) + dump(comp.source.record())
            )
    return files
