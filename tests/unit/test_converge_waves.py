"""site.yml converges gateways in waves, and a host failing the readiness gate goes back to .last-good."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _play(name: str) -> dict[str, Any]:
    plays = yaml.safe_load((ROOT / "playbooks/site.yml").read_text())
    return next(p for p in plays if p["hosts"] == name)


def test_gateways_converge_in_waves_and_stop_at_the_first_failure() -> None:
    play = _play("gateways")
    assert play["serial"] == "{{ otelstack_gateway_waves | default([1, '25%', '100%']) }}"
    assert play["max_fail_percentage"] == "{{ otelstack_gateway_max_fail_percentage | default(0) }}"


def test_the_readiness_gate_restores_the_last_good_config() -> None:
    tasks = yaml.safe_load((ROOT / "roles/otel_collector/tasks/present.yml").read_text())
    block = next(t for t in tasks if "block" in t and any("readiness" in str(b) for b in t["block"]))
    assert next(t.get("ansible.builtin.meta") for t in block["block"]) == "flush_handlers"
    restore = next(t for t in block["rescue"] if "ansible.builtin.copy" in t)
    assert restore["ansible.builtin.copy"]["src"].endswith(".last-good")
    assert restore["ansible.builtin.copy"]["remote_src"] is True
    assert any("ansible.builtin.fail" in t for t in block["rescue"]), "the host must still fail (waves stop)"
