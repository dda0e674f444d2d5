"""Generate docs/reference/spec.md from the model, so every field a user writes is documented.

Regenerate with ``python -m otelstack.model.reference > docs/reference/spec.md``; a test fails when the
committed page and the model disagree.
"""

from __future__ import annotations

import enum
import json
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from otelstack.model.spec import PlatformSpec


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " \\| ".join(f"`{m.value}`" for m in annotation)
    if get_origin(annotation) is Literal:
        return " \\| ".join(f"`{v}`" for v in get_args(annotation))
    if get_origin(annotation) is Annotated:
        return _type_name(get_args(annotation)[0])
    if get_origin(annotation) in (list, dict):
        return f"{get_origin(annotation).__name__} of " + ", ".join(_type_name(a) for a in get_args(annotation))
    if get_origin(annotation) in (Union, UnionType) and any(get_origin(a) is Annotated for a in get_args(annotation)):
        return " \\| ".join("None" if a is type(None) else _type_name(a) for a in get_args(annotation))
    text = str(annotation) if get_origin(annotation) is not None else getattr(annotation, "__name__", str(annotation))
    return str(text).replace("typing.", "").replace("otelstack.model.spec.", "").replace("|", "\\|")


def _default(field: Any) -> str:
    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        value = field.default_factory()
    else:
        return "required"
    if isinstance(value, BaseModel):
        return "(see below)"
    if isinstance(value, enum.Enum):
        value = value.value
    return f"`{json.dumps(value, default=str)}`"


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows: list[str] = []
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        sub = _model_of(field.annotation)
        if sub is not None and not (isinstance(field.annotation, type) and issubclass(field.annotation, list)):
            origin = str(field.annotation)
            if origin.startswith("list"):
                rows.append(f"| `{path}[]` | list of objects | {_default(field)} | {field.description or ''} |")
                nested.append((f"{path}[].", sub))
                continue
            if _default(field) == "(see below)" or field.default is None:
                nested.append((f"{path}.", sub))
                if field.default is None:
                    rows.append(f"| `{path}` | object or null | `null` | {field.description or ''} |")
                continue
        rows.append(f"| `{path}` | {_type_name(field.annotation)} | {_default(field)} | {field.description or ''} |")
    for sub_prefix, sub in nested:
        rows.extend(_rows(sub, sub_prefix))
    return rows


def markdown() -> str:
    header = [
        "# Platform spec reference",
        "",
        "Generated from `src/otelstack/model/spec.py` by `python -m otelstack.model.reference`. Every level of",
        "the hierarchy (see [../hierarchy.md](../hierarchy.md)) accepts any subset of these keys; unknown keys",
        "are errors. Secrets are references only: `env:NAME` or `file:/path`.",
        "",
        "| key | type | default | description |",
        "|---|---|---|---|",
    ]
    return "\n".join([*header, *_rows(PlatformSpec, ""), ""])


if __name__ == "__main__":
    print(markdown(), end="")
