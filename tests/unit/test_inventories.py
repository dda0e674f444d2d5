"""Inventories: they parse, point at existing configs/ levels, and never hold a secret in plain text."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INVENTORIES = sorted(p for p in (ROOT / "inventories").iterdir() if p.is_dir())
SECRET_NAME = re.compile(r"(token|password|passphrase|secret|private_key)", re.IGNORECASE)
VAULT_REFERENCE = re.compile(r"^\{\{\s*vault_[a-z0-9_]+\s*\}\}$")
# A secret defined once (from Vault or generated) and referenced by name elsewhere.
REFERENCE = re.compile(r"^\{\{\s*otel_collector_[a-z_]*token\s*\}\}$")
GENERATED = re.compile(r"^\{\{\s*lookup\('ansible\.builtin\.password',")


def group_vars(inventory: Path) -> dict[str, object]:
    merged: dict[str, object] = {}
    for path in sorted((inventory / "group_vars").rglob("*.yml")):
        text = path.read_text(encoding="utf-8")
        if text.startswith("$ANSIBLE_VAULT"):
            continue
        merged.update(yaml.safe_load(text) or {})
    return merged


def test_the_four_inventories_exist() -> None:
    assert [p.name for p in INVENTORIES] == ["dev", "lab", "prod", "staging"]


@pytest.mark.parametrize("inventory", INVENTORIES, ids=lambda p: p.name)
def test_inventory_parses_with_gateways_and_agents(inventory: Path) -> None:
    result = subprocess.run(
        ["ansible-inventory", "-i", str(inventory), "--list"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    groups = json.loads(result.stdout)
    assert groups["gateways"]["hosts"] and groups["agents"]["hosts"]
    assert "gateways" in groups["otelstack"]["children"] and "agents" in groups["otelstack"]["children"]


@pytest.mark.parametrize("inventory", INVENTORIES, ids=lambda p: p.name)
def test_environment_and_region_exist_in_configs(inventory: Path) -> None:
    variables = group_vars(inventory)
    env, region = variables["otelstack_env"], variables.get("otelstack_region") or ""
    assert (ROOT / "configs" / str(env)).is_dir(), env
    if region:
        assert (ROOT / "configs" / str(env) / str(region)).is_dir(), f"{env}/{region}"


@pytest.mark.parametrize("inventory", INVENTORIES, ids=lambda p: p.name)
def test_no_secret_in_plain_text(inventory: Path) -> None:
    allowed = GENERATED if inventory.name == "lab" else VAULT_REFERENCE
    for name, value in group_vars(inventory).items():
        if SECRET_NAME.search(name):
            values = value.values() if isinstance(value, dict) else [value]
            for item in values:
                assert isinstance(item, str) and (allowed.match(item) or REFERENCE.match(item)), (
                    f"{inventory.name}: {name} = {item!r}"
                )
    for vault in inventory.rglob("vault*.yml"):
        assert vault.read_text(encoding="utf-8").startswith("$ANSIBLE_VAULT"), f"{vault} is not encrypted"


def test_plain_secret_would_be_caught(tmp_path: Path) -> None:
    """The check above is not vacuous: a literal token fails it."""
    (tmp_path / "group_vars" / "all").mkdir(parents=True)
    (tmp_path / "group_vars" / "all" / "main.yml").write_text("otel_collector_ingest_token: hunter2\n")
    value = group_vars(tmp_path)["otel_collector_ingest_token"]
    assert not VAULT_REFERENCE.match(str(value))
