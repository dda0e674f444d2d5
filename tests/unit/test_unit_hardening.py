"""The systemd units the roles write carry the hardening directives, and MemoryMax comes from the sizing model."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import jinja2
import yaml

from otelstack.model.loader import load_spec
from otelstack.sizing import size_platform

ROOT = Path(__file__).resolve().parents[2]


def _unit(**overrides: Any) -> str:
    defaults = yaml.safe_load((ROOT / "roles/common/defaults/main.yml").read_text())
    values = {k: v for k, v in defaults.items() if not (isinstance(v, str) and "{{" in v)}
    values.update(
        ansible_managed="managed", common_service="otelcol-contrib", common_user="otelcol", common_group="otelcol"
    )
    values.update(overrides)
    template = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True)
    return template.from_string((ROOT / "roles/common/templates/service.j2").read_text()).render(**values)


def test_hardening_directives() -> None:
    unit = _unit(common_memory_deny_write_execute=True, common_memory_max="1088M")
    for line in (
        "SystemCallFilter=@system-service",
        "SystemCallErrorNumber=EPERM",
        "MemoryDenyWriteExecute=true",
        "ProtectProc=invisible",
        "ProcSubset=pid",
        "UMask=0077",
        "MemoryMax=1088M",
    ):
        assert line in unit.splitlines(), line


def test_defaults_leave_out_what_a_caller_must_ask_for() -> None:
    unit = _unit()
    assert "MemoryMax=" not in unit and "MemoryDenyWriteExecute=" not in unit
    assert "ProcSubset=all" in _unit(common_proc_subset="all").splitlines()


def test_collector_role_takes_memory_max_from_sizing_and_keeps_proc_for_host_metrics() -> None:
    tasks = (ROOT / "roles/otel_collector/tasks/present.yml").read_text()
    assert "lookup('otelstack.platform.otelstack', 'sizing'" in tasks
    assert 'common_memory_max: "{{ __otel_collector_memory_max }}"' in tasks
    assert "common_memory_deny_write_execute: true" in tasks
    assert "common_proc_subset: \"{{ 'all' if otel_collector_profile == 'agent' else 'pid' }}\"" in tasks


def test_sizing_lookup_gives_the_tier_memory_limit() -> None:
    spec = importlib.util.spec_from_file_location(
        "otelstack_lookup_plugin_sizing", ROOT / "plugins/lookup/otelstack.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugin = module.LookupModule()
    options = {"configs_dir": str(ROOT / "configs"), "env": "dev", "region": "lab", "agent": {}}
    plugin.set_options = lambda var_options=None, direct=None: None
    plugin.get_option = options.get
    (sizing,) = plugin.run(["sizing"], {})
    expected = size_platform(load_spec(ROOT / "configs", "dev", "lab"))
    assert sizing["gateway"]["memory_limit_mib"] == expected.gateway.memory_limit_mib
    assert sizing["agent"]["memory_limit_mib"] == expected.agent.memory_limit_mib
    # The collector's memory_limiter acts below MemoryMax.
    assert expected.gateway.memory_limiter_limit_mib < expected.gateway.memory_limit_mib
