"""The one rendering entry point. The CLI, the OpAMP server, the Ansible plugins and (later) the Pulumi
components call these functions; nothing below this module knows who is calling.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from otelstack import __version__
from otelstack.backends import NOTE_PREFIXES, check_backends, render_backends
from otelstack.catalog.components import catalog
from otelstack.collector.agent import DEFAULT_CLUSTER_DOMAIN, render_agent
from otelstack.collector.blocks import Config, Paths
from otelstack.collector.gateway import render_gateway
from otelstack.collector.overlays import apply_emergency, safe_minimal
from otelstack.collector.supervisor import render_supervisor
from otelstack.errors import ConfigValidationError, SpecError
from otelstack.kubernetes import clickhouse_altinity
from otelstack.kubernetes.objects import Component
from otelstack.kubernetes.prometheus import in_cluster_problems
from otelstack.kubernetes.settings import ClusterSettings, load_stack_settings, stack_file
from otelstack.kubernetes.stack import SOURCES_DIR, export_stack, render_stack
from otelstack.layering import merge
from otelstack.model.loader import AgentLevel, load_spec
from otelstack.model.spec import PlatformSpec, TlsMode
from otelstack.security.layout import K8S, VM
from otelstack.sizing import size_platform, sizing_markdown
from otelstack.validate.binary import run_otelcol_validate
from otelstack.validate.collector import (
    Finding,
    has_tail_sampling,
    trace_routing_findings,
    validate_collector_config,
    validate_supervisor_config,
)
from otelstack.validate.kubernetes import Report, validate_custom_resources, validate_objects
from otelstack.yamlout import dump

# The top directories of build/ENV/ that otelstack.backends.render_backends writes.
BACKEND_DIRS = ("clickhouse", "prometheus", "alertmanager", "tempo", "loki", "grafana")

Variant = Literal["normal", "emergency", "safe-minimal"]


@dataclass(frozen=True)
class Profile:
    name: str
    tier: Literal["agent", "gateway"]
    kubernetes: bool
    supervised: bool  # True: opampsupervisor injects the opamp extension; False: the config carries it
    description: str


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("agent-vm", "agent", False, True, "VM agent run by opampsupervisor (default VM mode)"),
        Profile("agent-vm-static", "agent", False, False, "VM agent run directly by systemd, reporting via opamp"),
        Profile("agent-k8s", "agent", True, False, "Kubernetes DaemonSet agent, reporting via opamp"),
        Profile("gateway", "gateway", False, True, "VM gateway run by opampsupervisor (default VM mode)"),
        Profile("gateway-static", "gateway", False, False, "VM gateway run directly by systemd"),
        Profile("gateway-k8s", "gateway", True, False, "Kubernetes StatefulSet gateway, reporting via opamp"),
    )
}
SUPERVISED_PROFILES = tuple(p.name for p in PROFILES.values() if p.supervised)
VARIANTS: tuple[Variant, ...] = ("normal", "emergency", "safe-minimal")


@dataclass(frozen=True)
class RenderedConfig:
    text: str
    sha256: str
    profile: str
    variant: str = "normal"
    warnings: tuple[str, ...] = ()

    @classmethod
    def of(cls, text: str, profile: str, variant: str = "normal", warnings: tuple[str, ...] = ()) -> RenderedConfig:
        return cls(text, hashlib.sha256(text.encode()).hexdigest(), profile, variant, warnings)


def profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigValidationError(f"unknown profile {name!r}; allowed: {', '.join(PROFILES)}") from None


def build_collector(
    spec: PlatformSpec, name: str, variant: Variant = "normal", *, cluster_domain: str = DEFAULT_CLUSTER_DOMAIN
) -> Config:
    """The collector config (as data) for one profile and variant, before validation. ``cluster_domain``:
    the Kubernetes cluster's DNS domain (a stack's ``clusterDomain``; Kubernetes profiles only)."""
    prof = profile(name)
    paths = Paths.for_vm(K8S if prof.kubernetes else VM)
    if prof.tier == "agent":
        config = render_agent(
            spec,
            paths,
            kubernetes=prof.kubernetes,
            opamp_extension_enabled=not prof.supervised,
            cluster_domain=cluster_domain,
        )
        overrides = spec.collector_overrides.agent
        memory = spec.tiers.agent.memory_limit_mib
    else:
        config = render_gateway(spec, paths, opamp_extension_enabled=not prof.supervised)
        overrides = spec.collector_overrides.gateway
        memory = size_platform(spec).gateway.memory_limit_mib
    if overrides:
        config = merge(config, overrides, source=f"collector_overrides.{prof.tier}")
    if variant == "emergency":
        config = apply_emergency(config, spec)
    elif variant == "safe-minimal":
        config = safe_minimal(config, spec, memory)
    elif variant != "normal":
        raise ConfigValidationError(f"unknown variant {variant!r}; allowed: {', '.join(VARIANTS)}")
    return config


def file_name(name: str, variant: str = "normal") -> str:
    return f"{name}.yaml" if variant == "normal" else f"{variant}-{name}.yaml"


def _header(spec: PlatformSpec, what: str) -> str:
    where = spec.environment + (f"/{spec.region}" if spec.region else "")
    release = catalog().release["otelcol_contrib"]
    return (
        f"{what} for {where} — rendered by otelstack {__version__} for otelcol-contrib {release}.\n"
        "Do not edit: change configs/ and re-render."
    )


def _finalise(spec: PlatformSpec, name: str, variant: Variant, config: Config) -> RenderedConfig:
    source = file_name(name, variant)
    prof = profile(name)
    node_local = prof.kubernetes and prof.tier == "agent" and spec.security.tls.apps_to_agent is TlsMode.INSECURE
    findings = validate_collector_config(
        config, source=source, insecure_allowed=spec.insecure_allowed, node_local_plaintext=node_local
    )
    errors = [str(f) for f in findings if f.severity == "error"]
    if errors:
        raise ConfigValidationError(f"rendered collector config {source} is invalid; nothing was written", errors)
    text = dump(
        config, _header(spec, f"Collector config, profile {name}" + ("" if variant == "normal" else f", {variant}"))
    )
    warnings = tuple(str(f) for f in findings if f.severity == "warning")
    return RenderedConfig.of(text, name, variant, warnings)


def render_collector(
    spec: PlatformSpec, name: str, variant: Variant = "normal", *, cluster_domain: str = DEFAULT_CLUSTER_DOMAIN
) -> RenderedConfig:
    return _finalise(spec, name, variant, build_collector(spec, name, variant, cluster_domain=cluster_domain))


def render_agent_config(
    configs_dir: Path,
    env: str,
    region: str | None = None,
    *,
    profile: str = "agent-vm",
    namespace: Mapping[str, Any] | None = None,
    agent: AgentLevel = None,
    variant: Variant = "normal",
) -> RenderedConfig:
    """Levels 1–5 for one managed collector ("agent" in OpAMP's sense: any tier), validated."""
    spec = load_spec(configs_dir, env, region, namespace=namespace, agent=agent)
    return render_collector(spec, profile, variant)


def render_emergency_config(configs_dir: Path, env: str, region: str | None = None, **kw: Any) -> RenderedConfig:
    return render_agent_config(configs_dir, env, region, variant="emergency", **kw)


def render_safe_minimal_config(configs_dir: Path, env: str, region: str | None = None, **kw: Any) -> RenderedConfig:
    return render_agent_config(configs_dir, env, region, variant="safe-minimal", **kw)


def render_supervisor_for(
    spec: PlatformSpec, name: str, agent_overrides: Mapping[str, Any] | None = None
) -> RenderedConfig:
    prof = profile(name)
    if not prof.supervised:
        raise ConfigValidationError(f"profile {name!r} is not supervised; supervised: {', '.join(SUPERVISED_PROFILES)}")
    config = render_supervisor(spec, VM, name, agent_overrides)
    errors = [str(f) for f in validate_supervisor_config(config, source=f"supervisor/{name}.yaml")]
    if errors:
        raise ConfigValidationError(f"rendered supervisor config for {name} is invalid; nothing was written", errors)
    text = dump(config, _header(spec, f"opampsupervisor config, profile {name}"))
    return RenderedConfig.of(text, name)


def render_supervisor_config(
    configs_dir: Path,
    env: str,
    region: str | None = None,
    *,
    profile: str = "agent-vm",
    agent: Mapping[str, Any] | None = None,
) -> RenderedConfig:
    """The supervisor config of one VM collector; its agent-level overrides (Ansible host_vars) apply to
    the supervisor's own settings and travel in its description, so the OpAMP server renders them too."""
    return render_supervisor_for(load_spec(configs_dir, env, region, agent=agent), profile, agent)


@dataclass(frozen=True)
class PlatformRender:
    spec: PlatformSpec
    files: dict[str, str]  # path relative to build/ENV → content
    warnings: tuple[str, ...]
    binary: str | None  # the otelcol-contrib whose `validate` passed every collector config; None: none found
    notes: tuple[str, ...] = ()  # validators that could not run (not installed), for the summary


def kubernetes_components(
    spec: PlatformSpec,
    cluster: ClusterSettings,
    collector_configs: Mapping[str, str] | None = None,
    backend_files: Mapping[str, str] | None = None,
) -> tuple[Component, ...]:
    """Every Kubernetes object of the stack, per component in creation order (what the Pulumi program
    creates and `plan` exports). ``collector_configs``: the rendered texts by profile (rendered if None);
    ``backend_files``: the backend renders by path under build/ENV/ (rendered if None and the stack runs a
    backend)."""
    if collector_configs is None:
        collector_configs = {
            n: render_collector(spec, n, cluster_domain=cluster.cluster_domain).text
            for n, p in PROFILES.items()
            if p.kubernetes
        }
    if backend_files is None:
        runs = cluster.clickhouse_schema.enabled or any(
            cluster.backends.enabled(name) for name in type(cluster.backends).model_fields
        )
        backend_files = render_backends(spec) if runs else {}
    return render_stack(spec, cluster, collector_configs, backend_files=backend_files)


def _kubernetes_files(
    spec: PlatformSpec, stack_path: Path, files: Mapping[str, str], note: Callable[[str], None], notes: list[str]
) -> dict[str, str]:
    """build/ENV/k8s/: the stack's objects when a stack file names this environment; validated."""
    stack = load_stack_settings(stack_path)
    if stack.env != spec.environment or stack.region != spec.region:
        raise SpecError(
            f"{stack_path}: `otelstack:environment`/`otelstack:region` name {stack.env}"
            f"{'/' + stack.region if stack.region else ''}, but the file is the stack of {spec.environment}"
            f"{'/' + spec.region if spec.region else ''}"
        )
    texts = {
        n: files[f"collector/{file_name(n)}"]
        for n, p in PROFILES.items()
        if p.kubernetes and p.tier in ("agent", "gateway")
    }
    note(f"kubernetes objects from {stack_path}")
    backend_files = {rel: text for rel, text in files.items() if rel.split("/", 1)[0] in BACKEND_DIRS}
    components = kubernetes_components(spec, stack.cluster, texts, backend_files)
    exported = export_stack(components, _header(spec, f"Kubernetes objects, stack {stack_path.name}"))
    note("kubernetes-validate, CRD schemas and checkov on k8s/")
    objects = {rel: text for rel, text in exported.items() if not rel.startswith(f"{SOURCES_DIR}/")}
    every = [o for c in components for o in c.objects]
    operator = clickhouse_altinity.operator_resources(every)
    report = validate_objects([o for o in every if o not in operator], objects, crd_paths=_crd_paths(notes))
    _check_operator_resources(operator, report)
    notes += report.notes
    if report.errors:
        raise ConfigValidationError(f"{stack_path.name}: the Kubernetes objects are invalid; nothing was written",
                                    report.errors)  # fmt: skip
    found = in_cluster_problems(every, backend_files)
    notes += [p for p in found if p.startswith(NOTE_PREFIXES)]
    problems = [p for p in found if not p.startswith(NOTE_PREFIXES)]
    if problems:
        raise ConfigValidationError(f"{stack_path.name}: the in-cluster prometheus.yml is invalid; nothing was written",
                                    problems)  # fmt: skip
    return exported


def _check_operator_resources(objects: list[Mapping[str, Any]], report: Report) -> None:
    """The Altinity operator's resources against its bundle when one is given (clickhouse_altinity.py), else a
    note: its CRDs cannot be fetched like the pinned ones."""
    if not objects:
        return
    bundle = clickhouse_altinity.crd_bundle()
    if bundle is None:
        report.notes.append(
            f"{len(objects)} Altinity operator resources not checked against its CRDs: set "
            f"{clickhouse_altinity.BUNDLE_ENV} to its install bundle at release {clickhouse_altinity.ALTINITY_OPERATOR}"
        )
        return
    validate_custom_resources(objects, [bundle], report)


def _crd_paths(notes: list[str]) -> list[Path] | None:
    """The pinned CRD files (from the Go module cache; fetched once), or None with a note why not."""
    try:
        from otelstack.dist.kubetools import crd_files

        return crd_files()
    except Exception as exc:  # no Go, no network, no cache: say so, as for a missing validator
        notes.append(f"pinned CRD files unavailable ({str(exc).splitlines()[0][:200]}): custom resources not checked")
        return None


def render_platform(
    configs_dir: Path,
    env: str,
    region: str | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    stacks_root: Path | None = None,
) -> PlatformRender:
    """Every artefact that exists so far, validated as a whole. Raises on any error; returns files.

    ``stacks_root``: where ``stacks/platform/Pulumi.<env>.yaml`` is looked for (default: the directory
    holding ``configs_dir``); when that stack file exists, the Kubernetes objects go to ``k8s/``."""
    spec = load_spec(configs_dir, env, region)
    note = progress or (lambda _msg: None)
    files: dict[str, str] = {}
    warnings: list[str] = []
    errors: list[str] = []
    data: dict[str, Config] = {}
    stack_path = stack_file(configs_dir.parent if stacks_root is None else stacks_root, env, region)
    # The Kubernetes profiles name Services in the stack's cluster DNS domain (its clusterDomain).
    domain = load_stack_settings(stack_path).cluster.cluster_domain if stack_path.is_file() else DEFAULT_CLUSTER_DOMAIN
    for name in PROFILES:
        for variant in VARIANTS:
            note(f"collector {file_name(name, variant)}")
            try:
                config = build_collector(spec, name, variant, cluster_domain=domain)
                rendered = _finalise(spec, name, variant, config)
            except ConfigValidationError as exc:
                errors += exc.issues or [exc.summary]
                continue
            data[file_name(name, variant)] = config
            files[f"collector/{file_name(name, variant)}"] = rendered.text
            warnings += rendered.warnings
    gateways = [c for n, c in data.items() if n.startswith(("gateway", "emergency-gateway"))]
    agents = {n: c for n, c in data.items() if "agent" in n}
    routing: list[Finding] = trace_routing_findings(agents, any(has_tail_sampling(c) for c in gateways))
    errors += [str(f) for f in routing]
    binary: str | None = None
    for rel, text in files.items():
        checked = run_otelcol_validate(text, binary)
        if checked is None:
            break
        binary = checked.binary
        note(f"otelcol-contrib validate {rel}" + "".join(f"; {n}" for n in checked.adjusted))
        if not checked.ok:
            errors.append(f"{rel}: otelcol-contrib validate failed: {checked.output}")
    if errors:
        raise ConfigValidationError(f"environment {env}{'/' + region if region else ''}: validation failed", errors)
    for name in SUPERVISED_PROFILES:
        note(f"supervisor {name}.yaml")
        files[f"supervisor/{name}.yaml"] = render_supervisor_for(spec, name).text
    sizing = size_platform(spec)
    files["sizing.md"] = sizing_markdown(sizing)
    files["sizing.json"] = json.dumps(sizing.to_dict(), indent=2, sort_keys=True) + "\n"
    notes: list[str] = []
    note("backends: ClickHouse, Prometheus, Alertmanager, Tempo, Loki, Grafana")
    backend_files = render_backends(spec)
    note("promtool, amtool and chDB on the backend files")
    backend_problems, backend_notes = check_backends(spec, backend_files)
    if backend_problems:
        raise ConfigValidationError(f"environment {env}: the backend files are invalid; nothing was written",
                                    backend_problems)  # fmt: skip
    files.update(backend_files)
    notes += backend_notes
    if stack_path.is_file():
        files.update(_kubernetes_files(spec, stack_path, files, note, notes))
    return PlatformRender(spec=spec, files=files, warnings=tuple(warnings), binary=binary, notes=tuple(notes))
