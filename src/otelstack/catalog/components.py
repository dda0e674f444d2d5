"""Components of the pinned otelcol-contrib release: canonical type names, aliases, accepted keys.

The facts live in ``components.yaml`` beside this module (each with the upstream source it was
checked against); this module only reads them. Shared structures are declared once under ``shared:``
and referenced with ``{$ref: name}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml

KINDS = ("receivers", "processors", "exporters", "extensions", "connectors")
_KIND_SINGULAR = {k: k[:-1] for k in KINDS}


@dataclass(frozen=True)
class Component:
    kind: str  # singular: receiver, processor, exporter, extension, connector
    type: str
    aliases: tuple[str, ...]
    signals: dict[str, str]
    keys: Any  # dict tree of accepted keys; "*" means free-form
    source: str = ""
    in_contrib: bool = True
    module: str | None = None  # Go module that provides it; None: not in otelstack's distribution
    module_version: str | None = None  # when it differs from the release (see module_note)
    module_note: str = ""
    deprecated_keys: dict[str, str] = field(default_factory=dict)  # key → what to use instead


@dataclass(frozen=True)
class Catalog:
    release: dict[str, Any]
    artifacts: dict[str, Any]
    components: tuple[Component, ...]
    removed: dict[tuple[str, str], str]
    shared: dict[str, Any]
    supervisor: dict[str, Any] = field(default_factory=dict)
    build: dict[str, Any] = field(default_factory=dict)

    def find(self, kind: str, type_: str) -> Component | None:
        kind = _singular(kind)
        for comp in self.components:
            if comp.kind == kind and (comp.type == type_ or type_ in comp.aliases):
                return comp
        return None

    def removed_message(self, kind: str, type_: str) -> str | None:
        return self.removed.get((_singular(kind), type_))

    def resolve(self, keys: Any) -> Any:
        """Expand ``$ref`` entries in a key tree (one level at a time, on demand)."""
        if isinstance(keys, dict) and "$ref" in keys:
            target = self.shared[keys["$ref"]]
            extra = {k: v for k, v in keys.items() if k != "$ref"}
            if not isinstance(target, dict):
                return target  # a list or leaf structure; extra keys only make sense on maps
            return {**target, **extra}
        return keys


def _singular(kind: str) -> str:
    return _KIND_SINGULAR.get(kind, kind)


@cache
def catalog() -> Catalog:
    text = resources.files("otelstack.catalog").joinpath("components.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    comps = tuple(
        Component(
            kind=_singular(str(c["kind"])),
            type=str(c["type"]),
            aliases=tuple(c.get("aliases") or ()),
            signals=dict(c.get("signals") or {}),
            keys=c.get("keys", "*"),
            source=str(c.get("source", "")),
            in_contrib=bool(c.get("in_contrib", True)),
            module=c.get("module"),
            module_version=c.get("module_version"),
            module_note=str(c.get("module_note", "")),
            deprecated_keys={str(k): str(v) for k, v in (c.get("deprecated_keys") or {}).items()},
        )
        for c in data["components"]
    )
    removed = {(_singular(str(r["kind"])), str(r["type"])): str(r["message"]) for r in data.get("removed") or ()}
    return Catalog(
        release=dict(data["release"]),
        artifacts=dict(data.get("artifacts") or {}),
        components=comps,
        removed=removed,
        shared=dict(data.get("shared") or {}),
        supervisor=dict(data.get("supervisor") or {}),
        build=dict(data.get("build") or {}),
    )


def canonical(kind: str, type_: str) -> str:
    """The canonical type name in the pinned release for ``type_`` (itself or a deprecated alias)."""
    comp = catalog().find(kind, type_)
    if comp is None:
        raise KeyError(f"{_singular(kind)} {type_!r} is not in the pinned release's catalog")
    return comp.type
