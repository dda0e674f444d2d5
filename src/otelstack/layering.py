"""The configuration hierarchy: global → environment → region → namespace → agent.

Merge semantics (documented in docs/hierarchy.md and proven by tests/unit/test_layering_properties.py):

* Maps merge deeply: a key present in a higher level replaces or merges into the same key below.
* Scalars and lists in a higher level **replace** the lower value wholesale.
* ``key+: [..]`` **appends** the given items to the list that lower levels built for ``key``
  (``key`` need not exist below; appending to a non-list is an error).
* ``key: null`` **deletes** ``key`` (and everything under it) from the merged result.

Every leaf remembers the file (level) that last set it, so errors can name the file and the key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from otelstack.errors import SpecError

APPEND_SUFFIX = "+"
LEVEL_FILE = "platform.yaml"
ENVIRONMENTS = ("dev", "staging", "prod")

Path_ = tuple[str, ...]


@dataclass
class Layer:
    """One level of the hierarchy: its name (for messages) and its document."""

    source: str
    data: Mapping[str, Any]


@dataclass
class Merged:
    """The merged document and, for every path that a level set, the level that set it last."""

    data: dict[str, Any] = field(default_factory=dict)
    provenance: dict[Path_, str] = field(default_factory=dict)

    def source_of(self, path: Sequence[str | int]) -> str:
        """The level that set ``path`` or its nearest ancestor."""
        keys = tuple(str(p) for p in path)
        while keys:
            if keys in self.provenance:
                return self.provenance[keys]
            keys = keys[:-1]
        return self.provenance.get((), "<defaults>")


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``override`` onto ``base`` with the semantics above (no provenance)."""
    result = Merged(data=_deep_copy(base))
    _merge_into(result, result.data, override, (), "<override>")
    return result.data


def merge_layers(layers: Sequence[Layer]) -> Merged:
    """Merge levels in order, lowest first, recording provenance."""
    result = Merged()
    for layer in layers:
        if not isinstance(layer.data, Mapping):
            raise SpecError(f"{layer.source}: the document must be a mapping of keys to values")
        _merge_into(result, result.data, layer.data, (), layer.source)
    return result


def _merge_into(result: Merged, target: dict[str, Any], override: Mapping[str, Any], path: Path_, source: str) -> None:
    for raw_key, value in override.items():
        if not isinstance(raw_key, str):
            raise SpecError(f"{source}: key {raw_key!r} at {_dotted(path) or 'top level'} must be a string")
        append = raw_key.endswith(APPEND_SUFFIX) and len(raw_key) > 1
        key = raw_key[: -len(APPEND_SUFFIX)] if append else raw_key
        here = (*path, key)
        if append:
            if not isinstance(value, list):
                raise SpecError(f"{source}: {_dotted(here)}+ appends to a list, so its value must be a list")
            existing = target.get(key, [])
            if not isinstance(existing, list):
                raise SpecError(
                    f"{source}: {_dotted(here)}+ appends to a list, but lower levels set "
                    f"{_dotted(here)} to a {type(existing).__name__}"
                )
            start = len(existing)
            target[key] = [*existing, *_deep_copy(value)]
            for offset in range(len(value)):
                _record(result, (*here, str(start + offset)), value[offset], source)
            result.provenance[here] = source
            continue
        if value is None:
            target.pop(key, None)
            _forget(result, here)
            continue
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            result.provenance.setdefault(here, source)
            _merge_into(result, target[key], value, here, source)
            continue
        _forget(result, here)
        target[key] = _strip_markers(value, here, source)
        _record(result, here, target[key], source)


def _strip_markers(value: Any, path: Path_, source: str) -> Any:
    """A replaced subtree has nothing below it to delete or append to: apply markers to nothing."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        holder = Merged(data=out)
        _merge_into(holder, out, value, path, source)
        return out
    if isinstance(value, list):
        return [_strip_markers(v, path, source) for v in value]
    return value


def _record(result: Merged, path: Path_, value: Any, source: str) -> None:
    result.provenance[path] = source
    if isinstance(value, Mapping):
        for k, v in value.items():
            _record(result, (*path, str(k)), v, source)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _record(result, (*path, str(i)), v, source)


def _forget(result: Merged, path: Path_) -> None:
    n = len(path)
    for key in [k for k in result.provenance if k[:n] == path]:
        del result.provenance[key]


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _dotted(path: Sequence[str | int]) -> str:
    return ".".join(str(p) for p in path)


def load_yaml_file(path: Path) -> Mapping[str, Any]:
    """Read one level file; empty files are empty levels.

    Parsed documents are cached by path, size and modification time (the OpAMP server renders one
    config per agent from the same few files); merging never mutates them.
    """
    try:
        stat = path.stat()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror}") from exc
    return _parse_cached(str(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=256)
def _parse_cached(path_str: str, _size: int, _mtime_ns: int) -> Mapping[str, Any]:
    path = Path(path_str)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from exc
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror}") from exc
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise SpecError(f"{path}: the document must be a mapping of keys to values, not {type(data).__name__}")
    return data


def hierarchy_layers(configs_dir: Path, env: str, region: str | None = None) -> list[Layer]:
    """The files of levels 1–3 for ``env`` (and ``region``), lowest first."""
    configs_dir = Path(configs_dir)
    if not configs_dir.is_dir():
        raise SpecError(f"{configs_dir}: configs directory not found")
    envs = available_environments(configs_dir)
    if env not in envs:
        raise SpecError(
            f"environment {env!r} not found under {configs_dir}: "
            f"allowed: {', '.join(envs) or '(none: create configs/<env>/platform.yaml)'}"
        )
    files = [configs_dir / "global" / LEVEL_FILE, configs_dir / env / LEVEL_FILE]
    if region is not None:
        regions = available_regions(configs_dir, env)
        if region not in regions:
            raise SpecError(
                f"region {region!r} not found for environment {env!r}: allowed: {', '.join(regions) or '(none)'}"
            )
        files.append(configs_dir / env / region / LEVEL_FILE)
    layers = []
    for path in files:
        if path.is_file():
            layers.append(Layer(source=str(path), data=load_yaml_file(path)))
        elif path.parent.name == "global":
            raise SpecError(f"{path}: the global level is required")
    return layers


def available_environments(configs_dir: Path) -> list[str]:
    return sorted(
        p.name for p in Path(configs_dir).iterdir() if p.is_dir() and (p / LEVEL_FILE).is_file() and p.name != "global"
    )


def available_regions(configs_dir: Path, env: str) -> list[str]:
    base = Path(configs_dir) / env
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if p.is_dir() and (p / LEVEL_FILE).is_file())
