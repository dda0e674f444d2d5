"""Last (file order): `firewall_state: absent` and `time_sync_state: absent`, then the same run again."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import host, probe

PLAYBOOK = Path(__file__).resolve().parents[1] / "absent.yml"


def run_absent() -> dict[str, int]:
    result = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], str(PLAYBOOK)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    recap = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)
    found = {m[0]: int(m[1]) for m in re.findall(r"^(fw-\S+)\s*:.*changed=(\d+)", recap, re.M)}
    assert found, recap
    return found


@pytest.fixture(scope="module")
def changes() -> tuple[dict[str, int], dict[str, int]]:
    return run_absent(), run_absent()


def test_absent_removes_the_table_and_its_files(changes: tuple[dict[str, int], dict[str, int]]) -> None:
    for name in ("fw-gateway", "fw-agent"):
        target = host(name)
        assert target.run("nft list table inet otelstack").rc != 0
        assert not target.file("/etc/nftables.d/otelstack.nft").exists
        assert "otelstack" not in target.file("/etc/nftables.conf").content_string

    # Nothing drops the platform ports any more (the scenario's listeners may still be running).
    outcome = probe("fw-outsider", [("fw-gateway", 4317), ("fw-gateway", 13133), ("fw-agent", 4317)])
    assert "timeout" not in outcome.values(), outcome


def test_absent_removes_chrony(changes: tuple[dict[str, int], dict[str, int]]) -> None:
    for name in ("fw-gateway", "fw-agent"):
        target = host(name)
        assert not target.package("chrony").is_installed
        assert not target.file("/etc/chrony/chrony.conf").exists
        assert not target.file("/etc/systemd/system/chrony.service.d/otelstack-container.conf").exists


def test_absent_is_idempotent(changes: tuple[dict[str, int], dict[str, int]]) -> None:
    first, second = changes
    assert set(first) == {"fw-gateway", "fw-agent"}
    assert all(first[name] > 0 for name in first)
    assert second == {"fw-gateway": 0, "fw-agent": 0}
