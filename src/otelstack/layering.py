"""The configuration hierarchy: global → environment → region → namespace → agent.

Merge semantics (documented in docs/hierarchy.md and proven by tests/unit/test_layering_properties.py):

* Maps merge deeply: a key present in a higher level replaces or merges into the same key below.
* Scalars and lists in a higher level **replace** the lower value wholesale.
* ``key+: [..]`` (a key ending in ``+`` whose value is a **list**) **appends** the given items to the list
  that lower levels built for ``key`` (``key`` need not exist below; appending to a non-list is an
  error). A key ending in ``+`` whose value is not a list is an ordinary key (``"/a+": "/a"``).
* ``key: null`` **deletes** ``key`` (and everything under it) from the merged result.
* Inside a *deferred* map (``collector_overrides.agent``/``.gateway``: documents merged later over a
  rendered collector config), the levels are combined without applying the markers: ``key+`` lists and
  ``null`` stay in the result, so they append to / delete from the rendered config.

Every leaf remembers the file (level) that last set it, so errors can name the file and the key.

Level files are read strictly: UTF-8, at most :data:`MAX_LEVEL_BYTES`, nested at most :data:`MAX_DEPTH`
levels, one YAML document, no anchors or aliases, no merge keys, no key given twice, string keys only.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from otelstack.errors import SpecError

APPEND_SUFFIX = "+"
LEVEL_FILE = "platform.yaml"
ENVIRONMENTS = ("dev", "staging", "prod")
MAX_LEVEL_BYTES = 1024 * 1024  # a level file is a few KiB; 1 MiB bounds the work one file can cause
MAX_DEPTH = 64  # maps and lists nested in a level; the spec nests about 6, collector overrides about 15
MAX_VALUES = 100_000  # values in one level; a real level holds hundreds

Path_ = tuple[str, ...]


@dataclass
class Layer:
    """One level of the hierarchy: its name (for messages), its document and its kind.

    ``level`` is ``global``, ``environment`` or ``region`` for the files of levels 1–3; empty for levels
    given as data (namespace, agent)."""

    source: str
    data: Mapping[str, Any]
    level: str = ""


@dataclass
class Merged:
    """The merged document and, for every path that a level set, the level that set it last."""

    data: dict[str, Any] = field(default_factory=dict)
    provenance: dict[Path_, str] = field(default_factory=dict)
    deleted: dict[Path_, str] = field(default_factory=dict)  # path → level whose `null` deleted it

    def source_of(self, path: Sequence[str | int]) -> str:
        """The level that set ``path`` or its nearest ancestor."""
        keys = tuple(str(p) for p in path)
        while keys:
            if keys in self.provenance:
                return self.provenance[keys]
            keys = keys[:-1]
        return self.provenance.get((), "<defaults>")

    def set_by(self, path: Sequence[str | int]) -> str | None:
        """The level that set exactly ``path``; None when its value comes from the model's defaults."""
        return self.provenance.get(tuple(str(p) for p in path))

    def deleted_by(self, path: Sequence[str | int]) -> str | None:
        """The level whose ``null`` deleted ``path`` (or an ancestor), if that is why it is absent."""
        keys = tuple(str(p) for p in path)
        while keys:
            if keys in self.deleted:
                return self.deleted[keys]
            keys = keys[:-1]
        return None


def merge(base: Mapping[str, Any], override: Mapping[str, Any], *, source: str = "<override>") -> dict[str, Any]:
    """Merge ``override`` onto ``base`` with the semantics above (no provenance, no deferred maps)."""
    merger = _Merger(Merged(data=_deep_copy(base)), frozenset())
    merger.merge(merger.result.data, override, (), source)
    return merger.result.data


def merge_layers(layers: Sequence[Layer], *, deferred: Collection[Path_] = ()) -> Merged:
    """Merge levels in order, lowest first, recording provenance.

    ``deferred``: paths of free-form maps that are merged later over something else (collector overrides
    over the rendered config); inside them the levels are combined with their markers kept."""
    merger = _Merger(Merged(), frozenset(tuple(p) for p in deferred))
    for layer in layers:
        if not isinstance(layer.data, Mapping):
            raise SpecError(f"{layer.source}: the document must be a mapping of keys to values")
        check_depth(layer.data, layer.source)
        merger.merge(merger.result.data, layer.data, (), layer.source)
    return merger.result


def check_depth(data: Any, source: str, limit: int = MAX_DEPTH, max_values: int = MAX_VALUES) -> None:
    """Refuse documents nested deeper than ``limit`` (or cyclic) or holding more than ``max_values``
    values (shared sub-documents count each time they appear), without recursion."""
    stack: list[tuple[Any, int, Path_]] = [(data, 0, ())]
    seen = 0
    while stack:
        node, depth, path = stack.pop()
        seen += 1
        if seen > max_values:
            raise SpecError(
                f"{source}: more than {max_values} values; a level holds settings, not data "
                f"(allowed: at most {max_values})"
            )
        if isinstance(node, Mapping):
            children: list[tuple[str, Any]] = [(str(k), v) for k, v in node.items()]
        elif isinstance(node, list):
            children = [(str(i), v) for i, v in enumerate(node)]
        else:
            continue
        if depth >= limit:
            raise SpecError(
                f"{source}: {_dotted(path) or 'the document'} is nested more than {limit} levels deep; "
                f"allowed: at most {limit} levels of maps and lists"
            )
        stack.extend((v, depth + 1, (*path, k)) for k, v in children)


class _Merger:
    def __init__(self, result: Merged, deferred: frozenset[Path_]) -> None:
        self.result = result
        self.deferred = deferred

    def merge(self, target: dict[str, Any], override: Mapping[str, Any], path: Path_, source: str) -> None:
        result = self.result
        for raw_key, value in override.items():
            if not isinstance(raw_key, str):
                raise SpecError(f"{source}: key {raw_key!r} at {_dotted(path) or 'top level'} must be a string")
            here = (*path, raw_key)
            if here in self.deferred and isinstance(value, Mapping):
                existing = target.get(raw_key)
                if not isinstance(existing, dict):
                    _forget(result, here)
                    existing = target[raw_key] = {}
                result.provenance.setdefault(here, source)
                self.compose(existing, value, here, source)
                continue
            if _is_append(raw_key, value):
                key = raw_key[: -len(APPEND_SUFFIX)]
                here = (*path, key)
                existing_list = target.get(key, [])
                if not isinstance(existing_list, list):
                    raise SpecError(_not_a_list(result, source, here, existing_list))
                start = len(existing_list)
                target[key] = [*existing_list, *_deep_copy(value)]
                for offset, item in enumerate(target[key][start:]):
                    _record(result, (*here, str(start + offset)), item, source)
                result.provenance[here] = source
                continue
            if value is None:
                target.pop(raw_key, None)
                _forget(result, here)
                _forget_deleted(result, here)
                result.deleted[here] = source
                continue
            if isinstance(value, Mapping) and isinstance(target.get(raw_key), dict):
                result.provenance.setdefault(here, source)
                self.merge(target[raw_key], value, here, source)
                continue
            _forget(result, here)
            target[raw_key] = self.strip(value, here, source)
            _record(result, here, target[raw_key], source)

    def strip(self, value: Any, path: Path_, source: str) -> Any:
        """A replaced subtree has nothing below it to delete or append to: apply markers to nothing
        (deferred maps inside it keep theirs)."""
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            _Merger(Merged(data=out), self.deferred).merge(out, value, path, source)
            return out
        if isinstance(value, list):
            return [self.strip(v, path, source) for v in value]
        return value

    def compose(self, target: dict[str, Any], override: Mapping[str, Any], path: Path_, source: str) -> None:
        """Combine a deferred map of a higher level into the lower levels' one, keeping the markers, so
        that applying the result equals applying the levels one after another (docs/hierarchy.md)."""
        result = self.result
        for raw_key, value in override.items():
            if not isinstance(raw_key, str):
                raise SpecError(f"{source}: key {raw_key!r} at {_dotted(path)} must be a string")
            if _is_append(raw_key, value):
                key = raw_key[: -len(APPEND_SUFFIX)]
                pending, plain = (*path, raw_key), (*path, key)
                if isinstance(target.get(raw_key), list):  # lower levels appended too: keep appending
                    start = len(target[raw_key])
                    target[raw_key] = [*target[raw_key], *_deep_copy(value)]
                    for offset, item in enumerate(target[raw_key][start:]):
                        _record(result, (*pending, str(start + offset)), item, source)
                elif isinstance(target.get(key), list):  # a lower level wrote the list: extend it
                    start = len(target[key])
                    target[key] = [*target[key], *_deep_copy(value)]
                    for offset, item in enumerate(target[key][start:]):
                        _record(result, (*plain, str(start + offset)), item, source)
                elif key in target and target[key] is not None:
                    raise SpecError(_not_a_list(result, source, plain, target[key]))
                elif key in target:  # deleted below, then appended to: the list replaces the rendered value
                    _forget(result, plain)
                    target[key] = _deep_copy(value)
                    _record(result, plain, target[key], source)
                else:  # nothing below: the append stays pending for the rendered config
                    target[raw_key] = _deep_copy(value)
                    _record(result, pending, target[raw_key], source)
                continue
            here = (*path, raw_key)
            pending_key = raw_key + APPEND_SUFFIX
            if isinstance(target.get(pending_key), list):  # this level sets the key: drop appends below
                del target[pending_key]
                _forget(result, (*path, pending_key))
            if isinstance(value, Mapping) and isinstance(target.get(raw_key), dict):
                result.provenance.setdefault(here, source)
                self.compose(target[raw_key], value, here, source)
                continue
            _forget(result, here)
            target[raw_key] = _deep_copy(value)
            _record(result, here, target[raw_key], source)


def _is_append(raw_key: str, value: Any) -> bool:
    return raw_key.endswith(APPEND_SUFFIX) and len(raw_key) > len(APPEND_SUFFIX) and isinstance(value, list)


def _not_a_list(result: Merged, source: str, path: Path_, value: Any) -> str:
    setter = result.source_of(path)
    who = "a lower level" if setter == "<defaults>" else setter
    return (
        f"{source}: {_dotted(path)}+ appends to a list, but {who} set {_dotted(path)} to {_kind(value)}; "
        f"write {path[-1]}: (without +) to replace it"
    )


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a map"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


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


def _forget_deleted(result: Merged, path: Path_) -> None:
    n = len(path)
    for key in [k for k in result.deleted if k[:n] == path]:
        del result.deleted[key]


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _dotted(path: Sequence[str | int]) -> str:
    return ".".join(str(p) for p in path)


# --- reading level files ------------------------------------------------------------------------

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available
_MERGE_TAG = "tag:yaml.org,2002:merge"


class LevelLoader(_BaseLoader):  # type: ignore[misc]
    """SafeLoader for level files: a key given twice, a merge key (``<<``) or a non-string key is an
    error naming the file, line and key; a bad scalar (``2024-13-45``, ``!!int x``) is a YAML error at
    its line. Anchors and aliases are refused before composing (:func:`parse_level`)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                mark = key_node.start_mark
                where = f"{mark.name}:{mark.line + 1}:{mark.column + 1}"
                if key_node.tag == _MERGE_TAG:
                    raise SpecError(
                        f"{where}: YAML merge keys (<<) are not allowed in level files; write the keys out "
                        "(levels share settings through the hierarchy)"
                    )
                key = self.construct_object(key_node, deep=deep)
                if not isinstance(key, Hashable):
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark, "found unhashable key", mark
                    )
                if not isinstance(key, str):
                    raise SpecError(
                        f"{where}: key {key!r} ({type(key).__name__}) is not a string; keys must be strings: "
                        f"quote it ('{key_node.value}':)"
                    )
                if key in seen:
                    raise SpecError(
                        f"{where}: key {key!r} is given twice in the same map (first at line {seen[key]}); "
                        "a level may set a key once: remove one of them"
                    )
                seen[key] = mark.line + 1
        return super().construct_mapping(node, deep=deep)

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (SpecError, yaml.YAMLError):
            raise
        except Exception as exc:  # explicit tags (!!int '', !!timestamp x) fail inside PyYAML in many ways
            kind = str(node.tag).rsplit(":", 1)[-1]
            raise yaml.constructor.ConstructorError(
                None, None, f"{node.value!r} is not a valid {kind} ({exc}); quote it if it is text", node.start_mark
            ) from None


def parse_level(raw: bytes, source: str) -> Mapping[str, Any]:
    """One level document from the bytes of a file named ``source`` (for messages)."""
    if len(raw) > MAX_LEVEL_BYTES:
        raise SpecError(
            f"{source}: {len(raw)} bytes is larger than the limit for a level file "
            f"({MAX_LEVEL_BYTES} bytes, 1 MiB); a level holds settings, not data"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError(
            f"{source}: byte 0x{raw[exc.start]:02x} at offset {exc.start} (line {line}, column {column}) "
            "is not UTF-8; level files are UTF-8 text: re-save the file as UTF-8"
        ) from None
    text = text.removeprefix("\ufeff")
    try:
        _prescan(text, source)
        loader = LevelLoader(_named(text, source))
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        raise SpecError(_yaml_problem(exc, source)) from None
    except yaml.reader.ReaderError as exc:
        character = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise SpecError(
            f"{source}: not valid YAML: character #x{character:04x} at position {exc.position} is not allowed "
            f"({exc.reason}); remove it"
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: not valid YAML: {exc}") from None
    except RecursionError:
        raise SpecError(f"{source}: nested too deeply; allowed: at most {MAX_DEPTH} levels") from None
    except SpecError:
        raise
    except Exception as exc:  # anything PyYAML lets through is still this file's fault, not a traceback
        raise SpecError(f"{source}: not valid YAML: {type(exc).__name__}: {exc}") from None
    if data is None:
        raise SpecError(
            f"{source}: empty level file (no keys: nothing, only comments or null); add keys or delete it "
            "(write {} for a level that deliberately changes nothing)"
        )
    if not isinstance(data, Mapping):
        raise SpecError(f"{source}: the document must be a mapping of keys to values, not {type(data).__name__}")
    return data


def _named(text: str, source: str) -> io.StringIO:
    stream = io.StringIO(text)
    stream.name = source  # PyYAML and libyaml name the stream in their marks
    return stream


def _prescan(text: str, source: str) -> None:
    """Walk the event stream (no document is built): refuse anchors, aliases and deep nesting."""
    loader = LevelLoader(_named(text, source))
    depth = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            mark = event.start_mark
            where = f"{source}:{mark.line + 1}:{mark.column + 1}"
            if isinstance(event, yaml.AliasEvent):
                raise SpecError(
                    f"{where}: YAML alias *{event.anchor}: anchors and aliases are not allowed in level files "
                    "(a few bytes of aliases can expand to gigabytes); write the value out"
                )
            anchor = getattr(event, "anchor", None)
            if anchor is not None:
                raise SpecError(
                    f"{where}: YAML anchor &{anchor}: anchors and aliases are not allowed in level files; "
                    "write the value out where it is used"
                )
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise SpecError(
                        f"{where}: nested more than {MAX_DEPTH} levels deep; allowed: at most {MAX_DEPTH} "
                        "levels of maps and lists"
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    finally:
        loader.dispose()


def _yaml_problem(exc: yaml.MarkedYAMLError, source: str) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
    text = f"{where}: not valid YAML: {exc.problem or 'syntax error'}"
    if exc.context:
        context_mark = exc.context_mark
        text += f" ({exc.context}" + (f" at line {context_mark.line + 1}" if context_mark is not None else "") + ")"
    return text


_CACHE: dict[tuple[str, bytes], Mapping[str, Any]] = {}
_CACHE_SIZE = 256


def load_yaml_file(path: Path) -> Mapping[str, Any]:
    """Read and parse one level file (see :func:`parse_level` for what is refused).

    Parsed documents are cached by path and content digest (the OpAMP server renders one config per
    agent from the same few files); merging never mutates them."""
    try:
        size = path.stat().st_size
        if size > MAX_LEVEL_BYTES:
            raise SpecError(
                f"{path}: {size} bytes is larger than the limit for a level file "
                f"({MAX_LEVEL_BYTES} bytes, 1 MiB); a level holds settings, not data"
            )
        with path.open("rb") as fh:
            raw = fh.read(MAX_LEVEL_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror or exc}") from None
    key = (str(path), hashlib.sha256(raw).digest())
    cached = _CACHE.get(key)
    if cached is None:
        cached = parse_level(raw, str(path))
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.clear()
        _CACHE[key] = cached
    return cached


def hierarchy_layers(configs_dir: Path, env: str, region: str | None = None) -> list[Layer]:
    """The files of levels 1–3 for ``env`` (and ``region``), lowest first."""
    configs_dir = Path(configs_dir)
    if not configs_dir.is_dir():
        raise SpecError(
            f"{configs_dir}: configs directory not found; pass --configs DIR (the hierarchy with "
            f"global/{LEVEL_FILE}), or run from the repository root"
        )
    envs = available_environments(configs_dir)
    if env not in envs:
        raise SpecError(
            f"environment {env!r} not found under {configs_dir}: "
            f"allowed: {', '.join(envs) or '(none: create configs/<env>/platform.yaml)'}"
        )
    files = [
        (configs_dir / "global" / LEVEL_FILE, "global"),
        (configs_dir / env / LEVEL_FILE, "environment"),
    ]
    if region is not None:
        regions = available_regions(configs_dir, env)
        if region not in regions:
            raise SpecError(
                f"region {region!r} not found for environment {env!r}: allowed: {', '.join(regions) or '(none)'}"
            )
        files.append((configs_dir / env / region / LEVEL_FILE, "region"))
    layers = []
    for path, level in files:
        if path.is_file():
            layers.append(Layer(source=str(path), data=load_yaml_file(path), level=level))
        elif level == "global":
            raise SpecError(
                f"{path}: the global level is required; is {configs_dir} the hierarchy? "
                f"(pass --configs DIR, the directory with global/{LEVEL_FILE})"
            )
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
