"""Validation of the exported Kubernetes objects: schemas of the pinned Kubernetes release
(kubernetes-validate, strict), custom resources against the pinned CRDs' openAPIV3Schema (jsonschema), and
checkov with the repository's ``.checkov.yaml``.

Each validator is optional at run time: when its package (or the checkov program) is absent, the check
returns a note saying so and ``plan`` prints it, as it does for a missing otelcol-contrib. When a validator
runs and an object fails, the findings are errors and ``plan`` writes nothing.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

KUBERNETES_VERSION = "1.37.0"  # kubernetes-validate's schema set for the pinned v1.37.2 (one per minor)
ROOT = Path(__file__).resolve().parents[3]
CHECKOV_CONFIG = ROOT / ".checkov.yaml"
CHECKOV_ENV = "OTELSTACK_CHECKOV"  # path of the checkov program, when it is not on PATH


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    where = f"{meta.get('namespace')}/" if meta.get("namespace") else ""
    return f"{obj.get('kind')} {where}{meta.get('name')}"


def _path(parts: Iterable[Any]) -> str:
    return ".".join(str(p) for p in parts) or "(top)"


# --- built-in kinds: kubernetes-validate ------------------------------------------------------------


def validate_schemas(objects: Sequence[Mapping[str, Any]], report: Report) -> list[Mapping[str, Any]]:
    """Strict schema check of every built-in kind; returns the objects it has no schema for (custom)."""
    try:
        import kubernetes_validate
    except ImportError:
        report.notes.append(
            "kubernetes-validate is not installed (pip install -e '.[test]'): Kubernetes objects not checked "
            f"against the {KUBERNETES_VERSION} schemas"
        )
        return [o for o in objects if "." in str(o.get("apiVersion", "")).split("/")[0]]
    custom: list[Mapping[str, Any]] = []
    for obj in objects:
        try:
            kubernetes_validate.validate(dict(obj), KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            custom.append(obj)
        except kubernetes_validate.ValidationError as exc:
            report.errors.append(f"{_name(obj)}: {_path(exc.absolute_path)}: {exc.message}")
    return custom


# --- custom resources: the pinned CRDs' schemas ------------------------------------------------------


def _strict(schema: Any) -> Any:
    """The API server's strict field validation: objects with declared properties refuse unknown ones."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        if schema.get("nullable") and isinstance(schema.get("type"), str):
            schema["type"] = [schema["type"], "null"]
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def load_crd_schemas(paths: Iterable[Path]) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) → the strict openAPIV3Schema, from CRD files (several documents each)."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc["spec"]
            for version in spec.get("versions", ()):
                schema = (version.get("schema") or {}).get("openAPIV3Schema")
                if schema is not None:
                    key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                    schema = copy.deepcopy(schema)
                    # Every object has these, whether the CRD's schema declares them or not.
                    props = schema.setdefault("properties", {})
                    props.setdefault("apiVersion", {"type": "string"})
                    props.setdefault("kind", {"type": "string"})
                    props.setdefault("metadata", {"type": "object"})
                    schemas[key] = _strict(schema)
    return schemas


def validate_custom_resources(
    objects: Sequence[Mapping[str, Any]], crd_paths: Sequence[Path] | None, report: Report
) -> None:
    if not objects:
        return
    if not crd_paths:
        report.notes.append(
            f"no CRD files (`otelstack dist kubetools --crds` fetches the pinned ones): {len(objects)} custom "
            "resources not checked against their CRDs"
        )
        return
    import jsonschema

    schemas = load_crd_schemas(crd_paths)
    for obj in objects:
        key = (str(obj.get("apiVersion")), str(obj.get("kind")))
        schema = schemas.get(key)
        if schema is None:
            report.errors.append(f"{_name(obj)}: no CRD among the pinned ones defines {key[1]} in {key[0]}")
            continue
        for err in sorted(jsonschema.Draft7Validator(schema).iter_errors(dict(obj)), key=lambda e: list(e.path)):
            report.errors.append(f"{_name(obj)}: {_path(err.absolute_path)}: {err.message}")


# --- checkov -----------------------------------------------------------------------------------------


def checkov_program() -> str | None:
    given = os.environ.get(CHECKOV_ENV)
    if given:
        return given
    for candidate in (shutil.which("checkov"), ROOT / ".cache" / "checkov-venv" / "bin" / "checkov"):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    return None


def run_checkov(files: Mapping[str, str], report: Report, config: Path = CHECKOV_CONFIG) -> None:
    """checkov on the exported files (relative path → text) with the repository's config."""
    program = checkov_program()
    if program is None:
        report.notes.append(
            "checkov is not installed (it needs its own environment: python -m venv .cache/checkov-venv && "
            ".cache/checkov-venv/bin/pip install checkov==3.3.30): Kubernetes objects not checked by checkov"
        )
        return
    with tempfile.TemporaryDirectory(prefix="otelstack-checkov-") as tmp:
        for rel, text in files.items():
            (Path(tmp) / Path(rel).name).write_text(text, encoding="utf-8")
        env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
        proc = subprocess.run(
            [program, "-d", tmp, "--config-file", str(config), "--quiet", "--compact", "-o", "json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=False,
        )
    try:
        data = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except json.JSONDecodeError:
        report.errors.append(f"checkov failed (exit {proc.returncode}): {(proc.stderr or proc.stdout)[-500:]}")
        return
    results = data if isinstance(data, list) else [data]
    for result in results:
        for check in (result.get("results") or {}).get("failed_checks", ()):
            report.errors.append(
                f"checkov {check['check_id']} ({check['check_name']}): {check['resource']} in "
                f"{Path(check['file_path']).name}"
            )
    if proc.returncode not in (0, 1):
        report.errors.append(f"checkov failed (exit {proc.returncode}): {proc.stderr[-500:]}")


def validate_objects(
    objects: Sequence[Mapping[str, Any]],
    files: Mapping[str, str],
    *,
    crd_paths: Sequence[Path] | None = None,
    checkov: bool = True,
) -> Report:
    """Every check on the stack's objects (and their exported files, for checkov)."""
    report = Report()
    custom = validate_schemas(objects, report)
    validate_custom_resources(custom, crd_paths, report)
    if checkov:
        run_checkov(files, report)
    return report
