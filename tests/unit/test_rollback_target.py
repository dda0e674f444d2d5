"""Rollback picks a release below the active one: the recorded previous one, else the newest older one."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from otelstack.catalog.versions import release_key, rollback_target

ROOT = Path(__file__).resolve().parents[2]


def test_never_rolls_forward_after_a_rescued_upgrade() -> None:
    # 0.160.0 failed its health gate and was rescued back to 0.158.0; it stays installed.
    assert rollback_target(["0.157.0", "0.158.0", "0.160.0"], "0.158.0") == "0.157.0"


def test_nothing_below_the_active_release_gives_nothing() -> None:
    assert rollback_target(["0.158.0", "0.160.0"], "0.158.0") == ""
    # A recorded previous release above the active one (the rescued upgrade's) is not taken either.
    assert rollback_target(["0.158.0", "0.160.0"], "0.158.0", previous="0.160.0") == ""


def test_highest_below_the_active_release() -> None:
    assert rollback_target(["0.156.0", "0.158.0", "0.159.0", "0.160.0"], "0.160.0") == "0.159.0"
    # Numeric, not lexical: 0.99.0 < 0.100.0.
    assert rollback_target(["0.99.0", "0.100.0", "0.101.0"], "0.101.0") == "0.100.0"


def test_recorded_previous_release_wins() -> None:
    # Upgraded 0.158.0 → 0.160.0; 0.159.0 is left over from an earlier run: go back to what ran before.
    assert rollback_target(["0.158.0", "0.159.0", "0.160.0"], "0.160.0", previous="0.158.0") == "0.158.0"


def test_recorded_previous_release_that_is_gone_falls_back() -> None:
    assert rollback_target(["0.157.0", "0.160.0"], "0.160.0", previous="0.158.0") == "0.157.0"


def test_pre_releases_and_stray_names() -> None:
    assert release_key("0.160.0-rc.1") < release_key("0.160.0")  # type: ignore[operator]
    assert rollback_target(["0.160.0-rc.1", "0.159.0", "lost+found"], "0.160.0") == "0.160.0-rc.1"
    assert rollback_target(["lost+found"], "0.160.0") == ""


def test_no_active_release_takes_only_the_recorded_one() -> None:
    assert rollback_target(["0.158.0", "0.160.0"], "") == ""
    assert rollback_target(["0.158.0", "0.160.0"], "", previous="0.158.0") == "0.158.0"


def test_filter_plugin_calls_the_same_rule() -> None:
    spec = importlib.util.spec_from_file_location("otelstack_filter_releases", ROOT / "plugins/filter/releases.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    select = module.FilterModule().filters()["rollback_target"]
    assert select(["0.157.0", "0.158.0", "0.160.0"], "0.158.0") == "0.157.0"
    assert select(["0.158.0", "0.159.0", "0.160.0"], "0.160.0", "0.158.0") == "0.158.0"
    with pytest.raises(Exception, match="must be a list"):
        select("0.158.0", "0.160.0")


def test_rollback_playbook_uses_the_rule_and_the_recorded_previous_release() -> None:
    playbook = (ROOT / "playbooks/rollback.yml").read_text()
    assert "otelstack.platform.rollback_target" in playbook
    assert "version_sort" not in playbook
    activate = (ROOT / "roles/common/tasks/activate.yml").read_text()
    assert "/previous" in activate
