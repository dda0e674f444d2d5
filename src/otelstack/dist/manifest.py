"""The Collector Builder manifest, generated from the component catalog.

Every catalog component that names a Go module goes into the manifest, at the pinned release (or the
module version the catalog gives with its reason). The catalog is also what the renderer writes and
what the validator accepts, so catalog, renderer and binary cannot drift: a component the renderer
writes that is not in the manifest fails ``tests/unit/test_distribution.py``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from otelstack.catalog.components import Catalog, Component, catalog

CORE_PREFIX = "go.opentelemetry.io/collector/"
# builder manifest section per catalog kind
SECTIONS = {
    "receiver": "receivers",
    "processor": "processors",
    "exporter": "exporters",
    "extension": "extensions",
    "connector": "connectors",
}


@dataclass(frozen=True)
class ModulePin:
    kind: str
    type: str
    module: str
    version: str
    note: str = ""

    @property
    def gomod(self) -> str:
        return f"{self.module} {self.version}"


def pinned_release(cat: Catalog | None = None) -> str:
    return str((cat or catalog()).release["otelcol_contrib"])


def module_version(cat: Catalog, comp: Component, release: str | None = None) -> str:
    """Contrib and core (beta) modules share the release number; a catalog override wins.

    ``release`` builds another collector release than the pinned one (the release before it, for upgrade
    tests): every module at that release, except a catalog override older than it."""
    if release and release != pinned_release(cat):
        if comp.module_version and _semver(comp.module_version) < _semver(f"v{release}"):
            return comp.module_version
        return f"v{release}"
    if comp.module_version:
        return comp.module_version
    number = cat.release["core"] if (comp.module or "").startswith(CORE_PREFIX) else cat.release["otelcol_contrib"]
    return f"v{number}"


def _semver(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.lstrip("v").split("."))


def pins(cat: Catalog | None = None, release: str | None = None) -> list[ModulePin]:
    """The modules of otelstack's collector distribution, in catalog order (at ``release``, default pinned)."""
    cat = cat or catalog()
    return [
        ModulePin(comp.kind, comp.type, comp.module, module_version(cat, comp, release), comp.module_note)
        for comp in cat.components
        if comp.module
    ]


def excluded(cat: Catalog | None = None) -> list[Component]:
    """Catalog components left out of the distribution (each says why in ``module_note``)."""
    cat = cat or catalog()
    return [comp for comp in cat.components if not comp.module]


def builder_version(cat: Catalog | None = None, release: str | None = None) -> str:
    """The Collector Builder of the release being built (the catalog's for the pinned one)."""
    cat = cat or catalog()
    if release and release != pinned_release(cat):
        return f"v{release}"
    return str(cat.build["builder_version"])


def builder_manifest(
    output_path: str,
    cat: Catalog | None = None,
    release: str | None = None,
    leave_out: Collection[str] = (),
) -> dict[str, Any]:
    """The builder's config (``internal/builder/config.go`` keys of builder v0.159.0).

    ``leave_out``: modules not built (another release whose module the Go proxy does not serve)."""
    cat = cat or catalog()
    build = cat.build
    manifest: dict[str, Any] = {
        "dist": {
            "module": "otelstack.local/otelcol-contrib",
            "name": "otelcol-contrib",
            "description": "OpenTelemetry Collector: otelstack distribution (the components otelstack renders)",
            "version": release or pinned_release(cat),
            "output_path": output_path,
            "build_tags": str(build.get("build_tags", "")),
        }
    }
    for pin in pins(cat, release):
        if pin.module not in leave_out:
            manifest.setdefault(SECTIONS[pin.kind], []).append({"gomod": pin.gomod})
    return manifest


def manifest_digest(cat: Catalog | None = None, release: str | None = None) -> str:
    """A short digest of what the build depends on (modules, versions, builder), for the cache key."""
    cat = cat or catalog()
    payload = json.dumps(
        {
            "manifest": builder_manifest("", cat, release),
            "build": cat.build | {"builder_version": builder_version(cat, release)},
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def component_types(cat: Catalog | None = None) -> set[tuple[str, str]]:
    """(kind, type) of every component compiled in, canonical names (aliases resolve to these)."""
    return {(pin.kind, pin.type) for pin in pins(cat)}
