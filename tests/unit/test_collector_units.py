"""otel_collector: a changed unit restarts the service; a mode switch removes the other mode's unit first;
the readiness gate proves which unit holds the ports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _tasks() -> list[dict[str, Any]]:
    return list(yaml.safe_load((ROOT / "roles/otel_collector/tasks/present.yml").read_text()))


def _index(tasks: list[dict[str, Any]], name: str) -> int:
    return next(i for i, t in enumerate(tasks) if t.get("name") == name)


def test_a_changed_unit_notifies_the_restart() -> None:
    tasks = _tasks()
    task = tasks[_index(tasks, "Restart on a unit change")]
    assert task["changed_when"] == "common_unit is changed"
    assert task["notify"] == "Restart otel_collector"
    assert _index(tasks, "Hardened unit") < _index(tasks, "Restart on a unit change")


def test_the_other_modes_unit_goes_before_this_one_starts() -> None:
    tasks = _tasks()
    stop = tasks[_index(tasks, "Stop and disable the other mode's unit")]
    assert stop["ansible.builtin.systemd_service"] == {
        "name": "{{ __otel_collector_other_service }}",
        "state": "stopped",
        "enabled": False,
    }
    assert _index(tasks, "Remove the other mode's unit") < _index(tasks, "Service enabled and running")
    main = (ROOT / "roles/otel_collector/tasks/main.yml").read_text()
    assert "__otel_collector_other_service: \"{{ 'otelcol-contrib' if otel_collector_mode == 'supervisor'" in main


def test_readiness_proves_the_unit_that_holds_the_ports() -> None:
    tasks = _tasks()
    gate = next(t for t in tasks if "block" in t)
    readiness = next(t for t in gate["block"] if t.get("name") == "Readiness gate on the real listening ports")
    assert readiness["vars"]["common_ports_owned"] is True
    common = (ROOT / "roles/common/tasks/readiness.yml").read_text()
    assert 'ss -Hltn --cgroup "sport = :$port"' in common and "*/{{ common_service }}.service) ;;" in common
