"""Every role documents its variables: meta/argument_specs.yml matches defaults/main.yml key for key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from otelstack.security.layout import VM

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if (p / "defaults" / "main.yml").exists())
ANSIBLE_TYPES = {"str", "int", "bool", "list", "dict", "path", "raw", "float"}


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def test_there_are_roles_to_check() -> None:
    assert {p.name for p in ROLES} >= {"common", "otel_collector"}


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_argument_specs_match_defaults_key_for_key(role: Path) -> None:
    defaults = _load(role / "defaults" / "main.yml")
    specs = _load(role / "meta" / "argument_specs.yml")["argument_specs"]
    options = specs["main"]["options"]
    assert set(options) == set(defaults), (
        f"{role.name}: only in defaults {sorted(set(defaults) - set(options))}, "
        f"only in argument_specs {sorted(set(options) - set(defaults))}"
    )
    for name, option in options.items():
        assert option.get("description"), f"{role.name}.{name} has no description"
        assert option.get("type") in ANSIBLE_TYPES, f"{role.name}.{name}: type {option.get('type')!r}"
        value = defaults[name]
        # A templated default is resolved at run time; the spec documents it in words.
        if not (isinstance(value, str) and "{{" in value):
            assert option.get("default") == value, f"{role.name}.{name}: spec default differs from defaults/main.yml"
        if "choices" in option:
            assert value in option["choices"] or "{{" in str(value), f"{role.name}.{name}: default not in choices"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_role_variables_carry_the_role_prefix(role: Path) -> None:
    prefix = f"{role.name}_"
    for name in _load(role / "defaults" / "main.yml"):
        assert name.startswith(prefix), f"{role.name}: variable {name} lacks the {prefix} prefix"


def test_roles_take_the_vm_layout_from_otelstack_not_literals() -> None:
    """Paths come from the `layout` lookup (security/layout.py); a literal copy would drift."""
    literals = (VM.config_dir, VM.state_dir, VM.install_root, VM.tls_dir)
    offenders = [
        f"{path.relative_to(ROOT)}: {literal}"
        for path in (ROOT / "roles").rglob("*.yml")
        for literal in literals
        if literal in path.read_text(encoding="utf-8")
    ]
    assert not offenders, offenders


def test_role_reference_page_is_current() -> None:
    from tests.lab.role_reference import markdown

    committed = (ROOT / "docs" / "vm" / "roles.md").read_text(encoding="utf-8")
    assert committed == markdown(), "regenerate: python -m tests.lab.role_reference > docs/vm/roles.md"
