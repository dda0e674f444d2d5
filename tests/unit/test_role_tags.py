"""Every role's tasks carry <role>_install, <role>_configure or <role>_run (or always), like prometheus.prometheus."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = ("firewall", "opamp_server", "otel_collector", "pki", "time_sync")
INCLUDES = ("ansible.builtin.include_role", "ansible.builtin.include_tasks")


@pytest.mark.parametrize("role", ROLES)
def test_every_task_has_a_phase_tag_of_its_role(role: str) -> None:
    allowed = {"always", f"{role}_install", f"{role}_configure", f"{role}_run"}
    seen: set[str] = set()
    for path in sorted((ROOT / "roles" / role / "tasks").glob("*.yml")):
        if path.name == "ca.yml":  # included with the tags applied (pki present.yml)
            continue
        for task in yaml.safe_load(path.read_text()) or []:
            tags = task.get("tags")
            assert tags, f"{path.relative_to(ROOT)}: {task.get('name')!r} has no tags"
            assert set(tags) <= allowed, f"{path.relative_to(ROOT)}: {task.get('name')!r}: {tags}"
            seen.update(tags)
            module = next((m for m in INCLUDES if m in task), None)
            if module and tags != ["always"]:
                # A dynamic include's tasks take the tags only through apply.
                applied = (task[module] or {}).get("apply", {}).get("tags") if isinstance(task[module], dict) else None
                assert applied == tags, f"{path.relative_to(ROOT)}: {task.get('name')!r} applies {applied}, not {tags}"
    assert {f"{role}_install", f"{role}_configure", f"{role}_run"} <= seen


def test_site_lists_every_phase_tag(tmp_path: Path) -> None:
    collections = tmp_path / "ansible_collections" / "otelstack"
    collections.mkdir(parents=True)
    (collections / "platform").symlink_to(ROOT)
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(tmp_path)}
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(ROOT / "inventories/lab"),
            str(ROOT / "playbooks/site.yml"),
            "--list-tags",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for role in ROLES:
        for phase in ("install", "configure", "run"):
            assert f"{role}_{phase}" in result.stdout, (role, phase)
