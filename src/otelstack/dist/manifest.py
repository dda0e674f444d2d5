"""The Collector Builder manifest, generated from the component catalog.

Every catalog component that names a Go module goes into the manifest, at the pinned release (or the
module version the catalog gives with its reason). The catalog is also what the renderer writes and
what the validator accepts, so catalog, renderer and binary cannot drift: a component the renderer
writes that is not in the manifest fails ``tests/unit/test_distribution.py``.
"""

from __future__ import annotations

import hashlib
import json
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


def module_version(cat: Catalog, comp: Component) -> str:
    """Contrib and core (beta) modules share the release number; a catalog override wins."""
    if comp.module_version:
        return comp.module_version
    release = cat.release["core"] if (comp.module or "").startswith(CORE_PREFIX) else cat.release["otelcol_contrib"]
    return f"v{release}"


def pins(cat: Catalog | None = None) -> list[ModulePin]:
    """The modules of otelstack's collector distribution, in catalog order."""
    cat = cat or catalog()
    return [
        ModulePin(comp.kind, comp.type, comp.module, module_version(cat, comp), comp.module_note)
        for comp in cat.components
        if comp.module
    ]


def excluded(cat: Catalog | None = None) -> list[Component]:
    """Catalog components left out of the distribution (each says why in ``module_note``)."""
    cat = cat or catalog()
    return [comp for comp in cat.components if not comp.module]


def builder_manifest(output_path: str, cat: Catalog | None = None) -> dict[str, Any]:
    """The builder's config (``internal/builder/config.go`` keys of builder v0.159.0)."""
    cat = cat or catalog()
    build = cat.build
    manifest: dict[str, Any] = {
        "dist": {
            "module": "otelstack.local/otelcol-contrib",
            "name": "otelcol-contrib",
            "description": "OpenTelemetry Collector: otelstack distribution (the components otelstack renders)",
            "version": str(cat.release["otelcol_contrib"]),
            "output_path": output_path,
            "build_tags": str(build.get("build_tags", "")),
        }
    }
    for pin in pins(cat):
        manifest.setdefault(SECTIONS[pin.kind], []).append({"gomod": pin.gomod})
    return manifest


def manifest_digest(cat: Catalog | None = None) -> str:
    """A short digest of what the build depends on (modules, versions, builder), for the cache key."""
    cat = cat or catalog()
    payload = json.dumps(
        {"manifest": builder_manifest("", cat), "build": cat.build}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def component_types(cat: Catalog | None = None) -> set[tuple[str, str]]:
    """(kind, type) of every component compiled in, canonical names (aliases resolve to these)."""
    return {(pin.kind, pin.type) for pin in pins(cat)}
