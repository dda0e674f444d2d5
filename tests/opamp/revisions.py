"""New configs/ revisions for rollout tests: a copy of configs/ with one level changed."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tests.opamp.conftest import CONFIGS


def add_log_include(level: Path, pattern: str) -> None:
    """The level also makes agents tail ``pattern`` (merged into its own tiers.agent: a level sets a key
    once)."""
    document = yaml.safe_load(level.read_text())
    document.setdefault("tiers", {}).setdefault("agent", {})["log_include+"] = [pattern]
    level.write_text(yaml.safe_dump(document, sort_keys=False))


def new_revision(where: Path, level: str, pattern: str) -> Path:
    """configs/ copied to ``where``, the level ``level`` (such as dev or prod/us-east-1) tailing ``pattern``."""
    shutil.copytree(CONFIGS, where)
    add_log_include(where / level / "platform.yaml", pattern)
    return where
