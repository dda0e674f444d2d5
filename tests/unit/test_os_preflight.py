"""Roles that install packages check the OS first; names come from the family's vars file (data, not code)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from tests.lab.playbooks import run_local_playbook

ROOT = Path(__file__).resolve().parents[2]
WRAPPER = """
- ansible.builtin.include_role:
    name: otelstack.platform.common
    tasks_from: package.yml
  vars:
    common_packages: [nftables, chrony]
- ansible.builtin.debug:
    msg: "MISSING={{ common_packages_missing | to_json }}"
"""


def _run(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "roles" / "wrap" / "tasks").mkdir(parents=True)
    (tmp_path / "roles" / "wrap" / "tasks" / "main.yml").write_text(WRAPPER)
    (tmp_path / "play.yml").write_text("- hosts: localhost\n  gather_facts: false\n  roles: [wrap]\n")
    return run_local_playbook(tmp_path, tmp_path / "play.yml", ["--check", *extra], cwd=tmp_path)


def test_supported_release_passes_and_reports_missing_packages(tmp_path: Path) -> None:
    result = _run(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "MISSING=" in result.stdout


def test_unsupported_release_fails_before_anything_with_a_clear_message(tmp_path: Path) -> None:
    result = _run(tmp_path, "-e", json.dumps({"common_os_versions": ["11"]}))
    assert result.returncode != 0
    assert "otelstack roles support Debian 12 and 13" in result.stdout
    assert "Nothing was changed." in result.stdout
    assert "Installed packages among those needed" not in result.stdout


def test_package_names_are_data_per_family() -> None:
    debian = yaml.safe_load((ROOT / "roles/common/vars/os/Debian.yml").read_text())
    assert debian["common_os_versions"] == ["12", "13"]
    used = set()
    for path in (ROOT / "roles").rglob("*.yml"):
        for task in yaml.safe_load(path.read_text()) or []:
            if isinstance(task, dict) and "common_packages" in (task.get("vars") or {}):
                used.update(task["vars"]["common_packages"])
    assert used and used <= set(debian["common_os_package_names"]), used - set(debian["common_os_package_names"])
    families = yaml.safe_load((ROOT / "roles/common/vars/main.yml").read_text())["common_os_families"]
    assert all((ROOT / "roles/common/vars/os" / f"{family}.yml").is_file() for family in families)
