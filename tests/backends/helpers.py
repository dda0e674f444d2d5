"""Specs for the backend render tests: the repository's environments, and variants built from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from otelstack.layering import merge
from otelstack.model.loader import load_spec
from otelstack.model.spec import PlatformSpec

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ENVIRONMENTS = ("dev", "staging", "prod")


def env_spec(env: str) -> PlatformSpec:
    return load_spec(CONFIGS, env)


def variant(env: str, overrides: dict[str, Any]) -> PlatformSpec:
    """An environment's spec with overrides merged over it, validated like a user's file."""
    base = env_spec(env).model_dump(mode="json")
    return PlatformSpec.model_validate(merge(base, overrides, source="test"))
