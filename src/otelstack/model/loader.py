"""Build a PlatformSpec from the hierarchy, with errors that name the file and the key."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from otelstack.errors import SpecError
from otelstack.layering import Layer, Merged, hierarchy_layers, merge_layers
from otelstack.model.spec import PlatformSpec

KEY_IN_MESSAGE = re.compile(r"^([a-z_]+(?:\.[a-z_]+)+) ")


def load_spec(
    configs_dir: Path,
    env: str,
    region: str | None = None,
    *,
    namespace: Mapping[str, Any] | None = None,
    agent: AgentLevel = None,
) -> PlatformSpec:
    """Merge global → env → region (→ namespace → agent) and validate the result.

    ``agent`` is the agent level: one document, or named layers stacked in order (the OpAMP server puts
    the host's own overrides first and its per-agent overrides on top)."""
    layers = hierarchy_layers(configs_dir, env, region)
    if namespace:
        layers.append(Layer(source="<namespace level>", data=namespace))
    layers += agent_layers(agent)
    return spec_from_layers(layers, env=env, region=region)


AgentLevel = Mapping[str, Any] | Sequence[Layer] | None


def agent_layers(agent: AgentLevel) -> list[Layer]:
    if not agent:
        return []
    if isinstance(agent, Mapping):
        return [Layer(source="<agent level>", data=agent)]
    return [layer for layer in agent if layer.data]


def spec_from_layers(layers: Sequence[Layer], *, env: str, region: str | None) -> PlatformSpec:
    merged = merge_layers(layers)
    data = dict(merged.data)
    for key, value in (("environment", env), ("region", region)):
        if key in data and data[key] != value:
            raise SpecError(
                f"{merged.source_of([key])}: {key} is {data[key]!r} but the file sits in the "
                f"hierarchy for {value!r}; remove the key or move the file"
            )
        data[key] = value
    try:
        return PlatformSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(
            f"invalid platform spec for environment {env!r}" + (f", region {region!r}" if region else ""),
            explain(exc, merged),
        ) from None


def explain(exc: ValidationError, merged: Merged) -> list[str]:
    """One line per pydantic error: file, dotted key, what is wrong and what is allowed."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        kind = err["type"]
        message = str(err["msg"]).removeprefix("Value error, ")
        if kind == "value_error" and (named := KEY_IN_MESSAGE.match(message)):
            # Cross-field checks name the key they are about at the start of their message.
            lines.append(f"{merged.source_of([*loc, *named.group(1).split('.')])}: {message}")
            continue
        key = ".".join(loc) or "(top level)"
        source = merged.source_of(loc)
        if kind == "extra_forbidden":
            parent = loc[:-1]
            allowed = _allowed_keys(parent)
            message = f"unknown key {loc[-1]!r}" + (f"; allowed here: {', '.join(allowed)}" if allowed else "")
        elif kind == "value_error":
            pass
        else:
            message = f"{err['msg']} (got {err.get('input')!r})"
        lines.append(f"{source}: {key}: {message}")
    return lines


def _allowed_keys(path: Sequence[str]) -> list[str]:
    """Field names accepted at ``path`` of PlatformSpec, for 'unknown key' messages."""
    model: Any = PlatformSpec
    for part in path:
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return []
        annotation = fields[part].annotation
        model = _model_in(annotation)
        if model is None:
            return []
    return sorted(getattr(model, "model_fields", {}))


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
