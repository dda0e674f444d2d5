"""Agents run with the groups that may read the logs they collect; the unit template renders them."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_agents_default_to_adm_and_the_unit_gets_the_groups() -> None:
    defaults = yaml.safe_load((ROOT / "roles/otel_collector/defaults/main.yml").read_text())
    assert (
        defaults["otel_collector_supplementary_groups"] == "{{ ['adm'] if otel_collector_profile == 'agent' else [] }}"
    )
    tasks = (ROOT / "roles/otel_collector/tasks/present.yml").read_text()
    assert 'common_supplementary_groups: "{{ otel_collector_supplementary_groups }}"' in tasks
    template = (ROOT / "roles/common/templates/service.j2").read_text()
    assert "SupplementaryGroups={{ common_supplementary_groups | join(' ') }}" in template
