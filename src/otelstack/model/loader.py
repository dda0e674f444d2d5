"""Build a PlatformSpec from the hierarchy, with errors that name the file and the key.

Message convention for the model's own checks (``ValueError`` in validators): a message names the keys
it is about in backticks, relative to the model that raises it (```min_replicas` = 30 is above
`max_replicas` = 20``); :func:`explain` turns each into its full dotted key and the file that set it.
A validator with several problems puts one per line. (A message that starts with a full dotted key
followed by a space — the older convention — is still attributed to that key's file.)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from otelstack.catalog.components import KINDS, catalog
from otelstack.errors import SpecError
from otelstack.layering import Layer, Merged, Path_, hierarchy_layers, merge_layers
from otelstack.model.spec import PATTERN_HELP, SECRET_REF, Backends, PlatformSpec

KEY_IN_MESSAGE = re.compile(r"^([a-z_]+(?:\.[a-z_]+)+) ")
KEY_REFERENCE = re.compile(r"`([a-z_][a-z0-9_]*(?:\.[a-z0-9_]+)*)`")

# Free-form maps merged later over the rendered collector configs: the hierarchy keeps their markers.
DEFERRED: tuple[Path_, ...] = (("collector_overrides", "agent"), ("collector_overrides", "gateway"))
DEFAULTS_ALLOWED = ("dev",)  # environments whose backends may use the model's placeholder endpoints
COLLECTOR_SECTIONS = (*KINDS, "service")
_FALSE = ("false", "0", "off", "f", "n", "no")  # what the model reads as false


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
    merged = merge_layers(layers, deferred=DEFERRED)
    data = dict(merged.data)
    for key, value in (("environment", env), ("region", region)):
        if key in data and data[key] != value:
            raise SpecError(
                f"{merged.source_of([key])}: {key} is {data[key]!r} but the file sits in the "
                f"hierarchy for {value!r}; remove the key or move the file"
            )
        data[key] = value
    issues: list[str] = []
    spec: PlatformSpec | None = None
    try:
        spec = PlatformSpec.model_validate(data)
    except ValidationError as exc:
        issues += explain(exc, merged)
    issues += explicit_endpoint_issues(merged, layers, env, spec)
    issues += override_component_issues(merged)
    if issues or spec is None:
        raise SpecError(
            f"invalid platform spec for environment {env!r}" + (f", region {region!r}" if region else ""),
            issues,
        )
    return spec


# --- rules that need the hierarchy, not only the merged values ------------------------------------


def explicit_endpoint_issues(
    merged: Merged, layers: Sequence[Layer], env: str, spec: PlatformSpec | None = None
) -> list[str]:
    """Outside dev, every enabled backend's endpoint is named by the environment or region level (or a
    namespace/agent level): never the model's placeholder, and not inherited from the global level, so
    deleting or forgetting it in an environment cannot silently send telemetry elsewhere."""
    if env in DEFAULTS_ALLOWED:
        return []
    global_sources = {layer.source for layer in layers if layer.level == "global"}
    env_file = next((layer.source for layer in layers if layer.level == "environment"), f"configs/{env}/platform.yaml")
    backends = merged.data.get("backends")
    issues = []
    for name, field in Backends.model_fields.items():
        backend = backends.get(name) if isinstance(backends, Mapping) else None
        settings = backend if isinstance(backend, Mapping) else {}
        enabled = getattr(spec.backends, name).enabled if spec else settings.get("enabled", True)
        if str(enabled).lower() in _FALSE:
            continue
        factory: Any = field.default_factory
        model = factory()
        key = f"backends.{name}.endpoint"
        fix = f"set it, e.g. {key}: {model.EXAMPLE}, or set backends.{name}.enabled: false"
        path = ("backends", name, "endpoint")
        if "endpoint" in settings:
            source = merged.set_by(path)
            if source in global_sources:
                issues.append(
                    f"{source}: {key} is set only in the global level; outside dev each environment names its "
                    f"own backends: set it in {env_file} or a region level"
                )
            continue
        deleted = merged.deleted_by(path)
        if deleted is not None:
            issues.append(
                f"{deleted}: {key}: null deletes the endpoint, and outside dev a backend never falls back to "
                f"the built-in placeholder ({model.endpoint}); {fix}"
            )
        else:
            issues.append(
                f"{env_file}: {key} is not set for environment {env!r}; outside dev every enabled backend "
                f"names its endpoint in the environment or region level (the built-in {model.endpoint} is a "
                f"placeholder); {fix}"
            )
    return issues


def override_component_issues(merged: Merged) -> list[str]:
    """Component types in collector_overrides exist in the pinned release: reported once, at load time,
    with the file that wrote them (the validator would report them once per rendered config)."""
    overrides = merged.data.get("collector_overrides")
    if not isinstance(overrides, Mapping):
        return []
    cat = catalog()
    release = cat.release.get("otelcol_contrib", "")
    issues = []
    for tier in ("agent", "gateway"):
        doc = overrides.get(tier)
        if not isinstance(doc, Mapping):
            continue
        for section, components in doc.items():
            where = ("collector_overrides", tier, str(section))
            if section not in COLLECTOR_SECTIONS:
                issues.append(
                    f"{merged.source_of(where)}: {_dotted(where)}: unknown collector-config section; "
                    f"allowed: {', '.join(COLLECTOR_SECTIONS)}"
                )
                continue
            if section not in KINDS or not isinstance(components, Mapping):
                continue
            for comp_id in components:
                type_ = str(comp_id).split("/", 1)[0].removesuffix("+")
                if cat.find(section, type_) is not None:
                    continue
                removed = cat.removed_message(section, type_)
                issues.append(
                    f"{merged.source_of((*where, str(comp_id)))}: {_dotted((*where, str(comp_id)))}: "
                    f"{section[:-1]} type {type_!r} does not exist in otelcol-contrib {release}"
                    + (f": {removed}" if removed else "; see docs/reference/upstream-components.md")
                )
    return issues


# --- pydantic errors → lines naming file, key and what is allowed -------------------------------------


def explain(exc: ValidationError, merged: Merged) -> list[str]:
    """One line per problem: file, dotted key, what is wrong and what is allowed."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        kind = err["type"]
        dict_key = bool(loc) and loc[-1] == "[key]"  # the error is about a map's key, not its value
        if dict_key:
            loc = loc[:-1]
        key = f"{'.'.join(loc[:-1])}: key {loc[-1]!r}" if dict_key else ".".join(loc) or "(top level)"
        message = str(err["msg"]).removeprefix("Value error, ")
        if kind == "value_error":
            lines += [_value_error_line(part, loc, key, merged) for part in message.split("\n") if part.strip()]
            continue
        field = _field_at(loc)
        secret = _is_secret(field) or (kind == "string_pattern_mismatch" and _pattern(err) == SECRET_REF.pattern)
        got = "value not shown: it may be a secret" if secret else f"got {_short(err.get('input'))}"
        if kind == "extra_forbidden":
            message = _unknown_key(loc)
        elif kind == "string_pattern_mismatch":
            message = f"expected {_pattern_help(_pattern(err), field)} ({got})"
        else:
            message = f"{err['msg']} ({got})"
        lines.append(f"{merged.source_of(loc)}: {key}: {message}")
    return lines


def _value_error_line(message: str, loc: list[str], key: str, merged: Merged) -> str:
    refs: list[tuple[str, tuple[str, ...]]] = []
    for token in dict.fromkeys(KEY_REFERENCE.findall(message)):
        path = _resolve(token, loc)
        if path is not None:
            refs.append((token, path))
    if refs:
        sources = [merged.set_by(path) for _, path in refs]
        single = len(set(sources)) == 1
        text = message
        for (token, path), source in zip(refs, sources, strict=True):
            shown = ".".join(path) if single else f"{'.'.join(path)} ({source or 'default'})"
            text = text.replace(f"`{token}`", shown)
        if single:
            return f"{sources[0] or merged.source_of(loc)}: {text}"
        return text
    if named := KEY_IN_MESSAGE.match(message):
        return f"{merged.source_of([*loc, *named.group(1).split('.')])}: {message}"
    return f"{merged.source_of(loc)}: {key}: {message}"


def _resolve(token: str, loc: list[str]) -> tuple[str, ...] | None:
    """The full path of a key a validator names: relative to its model (or its field's model)."""
    parts = token.split(".")
    for base in (loc, loc[:-1], []):
        path = (*base, *parts)
        if _walk(path) is not None:
            return path
    return None


def _unknown_key(loc: list[str]) -> str:
    name = loc[-1]
    allowed = _allowed_keys(loc[:-1])
    if name.endswith("+") and name[:-1] in allowed:
        return (
            f"unknown key {name!r}: a key ending in + appends to the list {name[:-1]} and needs a list value, "
            f"e.g. {name}: [item]"
        )
    return f"unknown key {name!r}" + (f"; allowed here: {', '.join(allowed)}" if allowed else "")


def _pattern(err: Any) -> str:
    return str((err.get("ctx") or {}).get("pattern", ""))


def _pattern_help(pattern: str, field: FieldInfo | None) -> str:
    if pattern in PATTERN_HELP:
        return PATTERN_HELP[pattern]
    if field is not None and field.description:
        return field.description
    return f"text matching the regular expression {pattern}"


def _is_secret(field: FieldInfo | None) -> bool:
    return field is not None and any(getattr(m, "pattern", None) == SECRET_REF.pattern for m in field.metadata)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _dotted(path: Sequence[str]) -> str:
    return ".".join(path)


# --- walking the model --------------------------------------------------------------------------


def _walk(path: Sequence[str]) -> tuple[Any, FieldInfo | None] | None:
    """(annotation, field) at ``path`` of PlatformSpec (list indices and map keys included), or None."""
    annotation: Any = PlatformSpec
    field: FieldInfo | None = None
    for part in path:
        model = _model_in(annotation)
        if model is not None and part in model.model_fields:
            field = model.model_fields[part]
            annotation = field.annotation
            continue
        item = _container_item(annotation, part)
        if item is None:
            return None
        annotation = item
    return annotation, field


def _field_at(path: Sequence[str]) -> FieldInfo | None:
    found = _walk(path)
    return found[1] if found is not None and path else None


def _container_item(annotation: Any, part: str) -> Any:
    for candidate in (annotation, *get_args(annotation)):
        origin = get_origin(candidate)
        if origin is list and part.isdigit():
            return get_args(candidate)[0]
        if origin is dict:
            return get_args(candidate)[1]
    return None


def _allowed_keys(path: Sequence[str]) -> list[str]:
    """Field names accepted at ``path`` of PlatformSpec, for 'unknown key' messages."""
    found = _walk(path)
    if found is None:
        return []
    model = _model_in(found[0])
    return sorted(model.model_fields) if model is not None else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (list, dict):
        return None
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
