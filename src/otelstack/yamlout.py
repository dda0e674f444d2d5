"""Deterministic YAML: the same inputs give byte-identical files on every delivery path.

libyaml's emitter is used when PyYAML has it (it is ~10× faster; the OpAMP server renders one config per
agent); tests/unit/test_yamlout.py proves it writes the same bytes as the pure-Python emitter for every
golden artefact, so output never depends on which one a machine has.
"""

from __future__ import annotations

from typing import Any

import yaml

_Base: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _make(base: Any) -> Any:
    class Dumper(base):  # type: ignore[misc]
        """Never emits anchors/aliases: configs are read by people and by tools that may not follow them."""

        def ignore_aliases(self, data: Any) -> bool:
            return True

    def represent_str(dumper: Any, data: str) -> Any:
        style = "|" if "\n" in data else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    Dumper.add_representer(str, represent_str)
    return Dumper


FAST_DUMPER = _make(_Base)
PURE_DUMPER = _make(yaml.SafeDumper)


def dump(data: Any, header: str | None = None, *, dumper: Any = FAST_DUMPER) -> str:
    body = yaml.dump(data, Dumper=dumper, sort_keys=False, default_flow_style=False, width=120, allow_unicode=True)
    if header:
        return "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines()) + body
    return body
