"""Stand-in for `loki -verify-config` and `tempo -config.verify` (never shipped; tests only).

Loki's and Tempo's own programs cannot be built or run here, so this verifier checks a rendered config
against a key schema kept as data (schema/<program>.yaml, each block with the upstream reference it was
read from): unknown keys are rejected (the programs unmarshal strictly), every value must have its type,
and the combinations the programs refuse at start-up are refused. It only knows the keys otelstack
renders, so it is at least as strict as the real program for them. It says on every run that it is a
stand-in; a platform team runs the real commands (docs/backends/loki.md, tempo.md).
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

SCHEMA_DIR = Path(__file__).parent / "schema"
BANNER = (
    "STAND-IN for `{verify}` ({program} {release} key schema, tests/backends/schema/{program}.yaml): "
    "not the real program"
)

_GO_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
_MODEL_DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def load_schema(program: str) -> dict[str, Any]:
    data = yaml.safe_load((SCHEMA_DIR / f"{program}.yaml").read_text())
    assert isinstance(data, dict)
    return data


def _kind(value: Any) -> str:
    return "a mapping" if isinstance(value, Mapping) else "a list" if isinstance(value, list) else type(value).__name__


def _check_scalar(spec: Any, value: Any, where: str) -> str | None:
    if isinstance(spec, Mapping) and "enum" in spec:
        allowed = [str(v) for v in spec["enum"]]
        if not isinstance(value, str) or value not in allowed:
            return f"{where}: {value!r} is not one of {allowed}"
        return None
    if isinstance(spec, Mapping) and "list_enum" in spec:
        allowed = [str(v) for v in spec["list_enum"]]
        if not isinstance(value, list):
            return f"{where}: expected a list of {allowed}, got {_kind(value)}"
        bad = [v for v in value if v not in allowed]
        return f"{where}: {bad} not in {allowed}" if bad else None
    ok: dict[str, Callable[[Any], bool]] = {
        "bool": lambda v: isinstance(v, bool),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "string": lambda v: isinstance(v, str),
        "duration": lambda v: isinstance(v, str) and bool(_GO_DURATION.match(v)),
        "model_duration": lambda v: isinstance(v, str) and bool(_MODEL_DURATION.match(v)),
        "date": lambda v: (isinstance(v, str) and bool(_DATE.match(v))) or isinstance(v, dt.date),
        "list[string]": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        "map[string]string": lambda v: (
            isinstance(v, Mapping) and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items())
        ),
    }
    if spec not in ok:
        raise ValueError(f"schema error at {where}: unknown type {spec!r}")
    if not ok[spec](value):
        return f"{where}: expected {spec}, got {_kind(value)} {value!r}"
    return None


def _walk(spec: Any, value: Any, where: str, problems: list[str]) -> None:
    if isinstance(spec, Mapping) and "list" in spec and len([k for k in spec if not k.startswith("_")]) == 1:
        if not isinstance(value, list):
            problems.append(f"{where}: expected a list, got {_kind(value)}")
            return
        for i, item in enumerate(value):
            _walk(spec["list"], item, f"{where}[{i}]", problems)
        return
    is_block = isinstance(spec, Mapping) and not ({"enum", "list_enum"} & set(spec))
    if not is_block:
        problem = _check_scalar(spec, value, where)
        if problem:
            problems.append(problem)
        return
    if not isinstance(value, Mapping):
        problems.append(f"{where or 'file'}: expected a mapping, got {_kind(value)}")
        return
    known = {k: v for k, v in spec.items() if not str(k).startswith("_")}
    for key, item in value.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in known:
            source = spec.get("_source", {})
            problems.append(
                f"{path}: field {key} not found (unknown key; the program unmarshals strictly; known here: "
                f"{', '.join(sorted(known))}; reference {source.get('url', '?')} {source.get('release', '')})"
            )
            continue
        _walk(known[key], item, path, problems)


def _get(config: Any, path: str, default: Any = None) -> Any:
    node = config
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def _loki_rules(config: Mapping[str, Any]) -> dict[str, str | None]:
    periods = [p for p in _get(config, "schema_config.configs", []) or [] if isinstance(p, Mapping)]
    out: dict[str, str | None] = {}
    newest = periods[-1] if periods else None
    structured = _get(config, "limits_config.allow_structured_metadata", True)
    out["structured-metadata-needs-tsdb-v13"] = None
    if structured is not False and (newest is None or newest.get("store") != "tsdb" or newest.get("schema") != "v13"):
        got = "no period" if newest is None else f"store {newest.get('store')!r}, schema {newest.get('schema')!r}"
        out["structured-metadata-needs-tsdb-v13"] = (
            f"schema_config.configs: the newest period has {got}; structured metadata (native OTLP) needs "
            "store tsdb with schema v13, or limits_config.allow_structured_metadata: false"
        )
    bad = [
        f"[{i}] index.period {_get(p, 'index.period')!r}"
        for i, p in enumerate(periods)
        if p.get("store") in ("tsdb", "boltdb-shipper") and _get(p, "index.period") != "24h"
    ]
    out["tsdb-index-period-24h"] = (
        f"schema_config.configs{', '.join(bad)}: tsdb needs index.period 24h" if bad else None
    )
    froms = [str(p.get("from")) for p in periods]
    out["periods-ascending"] = (
        None if froms == sorted(froms) else f"schema_config.configs: `from` not ascending: {froms}"
    )
    out["retention-needs-delete-request-store"] = (
        "compactor.retention_enabled is true but compactor.delete_request_store is not set"
        if _get(config, "compactor.retention_enabled") is True and not _get(config, "compactor.delete_request_store")
        else None
    )
    return out


def _tempo_rules(config: Mapping[str, Any]) -> dict[str, str | None]:
    backend = _get(config, "storage.trace.backend")
    out: dict[str, str | None] = {
        "storage-backend-required": None if backend else "storage.trace.backend: not set",
        "wal-path-required": None if _get(config, "storage.trace.wal.path") else "storage.trace.wal.path: not set",
    }
    missing = None
    if backend == "local" and not _get(config, "storage.trace.local.path"):
        missing = "storage.trace.local.path: not set (backend local)"
    if backend == "s3" and not (_get(config, "storage.trace.s3.bucket") and _get(config, "storage.trace.s3.endpoint")):
        missing = "storage.trace.s3: bucket and endpoint are required (backend s3)"
    out["backend-settings-required"] = missing
    processors = _get(config, "overrides.defaults.metrics_generator.processors") or []
    out["generator-storage-path"] = (
        "metrics_generator.storage.path: not set, but metrics-generator processors are enabled"
        if processors and not _get(config, "metrics_generator.storage.path")
        else None
    )
    return out


RULES: dict[str, Callable[[Mapping[str, Any]], dict[str, str | None]]] = {"loki": _loki_rules, "tempo": _tempo_rules}


def verify(program: str, text: str, *, quiet: bool = False) -> list[str]:
    """Problems in one rendered config (empty: accepted). Prints the stand-in banner unless quiet."""
    schema = load_schema(program)
    if not quiet:
        print(BANNER.format(**schema), file=sys.stderr)
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return [f"not YAML: {exc}"]
    problems: list[str] = []
    _walk(schema["root"], config, "", problems)
    if not isinstance(config, Mapping):
        return problems
    results = RULES[program](config)
    declared = {rule["id"] for rule in schema["rules"]}
    if declared != set(results):
        raise ValueError(f"schema rules {sorted(declared)} and implemented rules {sorted(results)} differ")
    for rule in schema["rules"]:
        message = results[rule["id"]]
        if message:
            problems.append(f"{message} (rule {rule['id']}: {rule['text']}; {rule['source']['url']})")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in RULES:
        print("usage: python -m tests.backends.standin loki|tempo FILE", file=sys.stderr)
        return 2
    problems = verify(argv[0], Path(argv[1]).read_text())
    for problem in problems:
        print(f"{argv[1]}: {problem}", file=sys.stderr)
    print(f"stand-in {argv[0]} check: {'FAILED' if problems else 'ok'} ({argv[1]})", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
