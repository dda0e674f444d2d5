"""What the REST API accepts. Every admin input is checked here, at the boundary: a body that is not
the JSON it should be is refused with a 400 naming the field and what is allowed, and nothing reaches
the fleet or the rollout engine (whose push loop serves every agent) unchecked.
"""

from __future__ import annotations

import itertools
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from otelstack.render import VARIANTS

# Deepest nesting of objects and arrays a request body may have (an agent-level override is a configs/
# level document: a few levels suffice).
MAX_DEPTH = 32
MAX_SELECTOR_KEYS = 32
MAX_WAVES = 100
MAX_CANARY = 1_000_000
MAX_WAVE_TIMEOUT_S = 7 * 24 * 3600.0


class ApiError(ValueError):
    """A request the API refuses (400); the message says what to change."""


def _constant(name: str) -> Any:
    raise ApiError(f"the request body is not JSON: {name} is not a JSON number")


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            if depth > MAX_DEPTH:
                break
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def parse_json(raw: bytes) -> Any:
    """A request body as JSON: UTF-8, standard JSON (no NaN or Infinity), nested at most MAX_DEPTH deep."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError("the request body is not UTF-8 text; send JSON") from None
    if not text.strip():
        raise ApiError("the request body is empty; send a JSON object")
    try:
        value = json.loads(text, parse_constant=_constant)
    except RecursionError:
        raise ApiError(f"the request body nests deeper than {MAX_DEPTH} levels") from None
    except ApiError:
        raise
    except ValueError as exc:
        raise ApiError(f"the request body is not JSON: {exc}") from None
    if _depth(value) > MAX_DEPTH:
        raise ApiError(f"the request body nests deeper than {MAX_DEPTH} levels")
    return value


def is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ConfigTarget(_Body):
    """A configs/ revision (absolute directory on the server's host; none: each agent keeps its own) and a
    variant."""

    configs_dir: str | None = Field(None, min_length=1, max_length=4096)
    variant: str = "normal"

    @field_validator("variant")
    @classmethod
    def known(cls, variant: str) -> str:
        if variant not in VARIANTS:
            raise ValueError(f"must be one of {', '.join(VARIANTS)}, got {variant[:80]!r}")
        return variant


class PackageTarget(_Body):
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
    version: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._+~-]*$")
    url: str = Field(min_length=1, max_length=4096, pattern=r"^(https?|file)://\S+$")
    sha256: str

    @field_validator("sha256")
    @classmethod
    def hexadecimal(cls, value: str) -> str:
        if not is_sha256(value):
            raise ValueError(f"must be 64 hexadecimal digits, got {value[:80]!r}")
        return value.lower()


class RolloutRequest(_Body):
    """POST /api/rollouts. The selector is checked against the agents separately (server.py)."""

    kind: Literal["config", "package"] = "config"
    selector: dict[str, str] = Field(default_factory=dict, max_length=MAX_SELECTOR_KEYS)
    target: dict[str, Any] = Field(default_factory=dict)
    canary: int = Field(1, ge=1, le=MAX_CANARY)
    waves: list[int] = Field(default_factory=lambda: [25, 50, 100], min_length=1, max_length=MAX_WAVES)
    wave_timeout_s: float | None = Field(None, gt=0, le=MAX_WAVE_TIMEOUT_S, allow_inf_nan=False)

    @field_validator("selector")
    @classmethod
    def bounded(cls, selector: dict[str, str]) -> dict[str, str]:
        for key, value in selector.items():
            if not key or len(key) > 256 or len(value) > 1024:
                raise ValueError("keys must have 1 to 256 characters and values at most 1024")
        return selector

    @field_validator("waves")
    @classmethod
    def percentages(cls, waves: list[int]) -> list[int]:
        if any(p < 1 or p > 100 for p in waves) or any(a >= b for a, b in itertools.pairwise(waves)):
            raise ValueError(f"must be increasing percentages in 1..100 (each above the one before), got {waves[:20]}")
        return waves


def problems(exc: ValidationError, prefix: str = "") -> str:
    """A pydantic error as one line per problem: the field, what is wrong and what was given."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in (prefix, *error["loc"]) if part != "")
        message = str(error["msg"])
        if message.startswith("Value error, "):
            lines.append(f"{where} {message.removeprefix('Value error, ')}")
            continue
        if message.startswith("Assertion failed, ") or error["type"] == "assertion_error":
            lines.append(f"{where}: {message}")
            continue
        given = "" if error["type"] in ("missing", "extra_forbidden") else f" (got {_short(error.get('input'))})"
        allowed = " (not allowed here)" if error["type"] == "extra_forbidden" else ""
        lines.append(f"{where}: {message}{given}{allowed}" if where else f"{message}{given}")
    return "; ".join(lines)


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def rollout_request(body: Any) -> RolloutRequest:
    """The checked rollout request (its target checked for its kind), or ApiError naming every problem."""
    if not isinstance(body, dict):
        raise ApiError("the request body must be a JSON object")
    try:
        request = RolloutRequest.model_validate(body)
    except ValidationError as exc:
        raise ApiError(problems(exc)) from None
    model: type[_Body] = ConfigTarget if request.kind == "config" else PackageTarget
    try:
        target = model.model_validate(request.target)
    except ValidationError as exc:
        raise ApiError(problems(exc, prefix="target")) from None
    return request.model_copy(update={"target": target.model_dump(exclude_none=True)})


def overrides_request(body: Any) -> dict[str, Any]:
    """PUT /api/agents/<uid>/overrides: a configs/ level document (a JSON object)."""
    if not isinstance(body, dict):
        raise ApiError(f"the request body must be a JSON object (a configs/ level document), got {type(body).__name__}")
    return body
