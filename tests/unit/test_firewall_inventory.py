"""The firewall ruleset is never rendered from a partial inventory (a host with no known address)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


DEFAULTS = {"roles": [], "sources": {}, "from_inventory": True, "host": ""}


def _lookup() -> Any:
    """The lookup plugin with its documented option defaults (no Ansible plugin loader needed)."""
    spec = importlib.util.spec_from_file_location("otelstack_lookup_plugin", ROOT / "plugins/lookup/otelstack.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugin = module.LookupModule()
    options: dict[str, Any] = {}

    def set_options(var_options: Any = None, direct: Any = None) -> None:
        options.clear()
        options.update(DEFAULTS)
        options.update(direct or {})

    plugin.set_options = set_options
    plugin.get_option = options.get
    return plugin


def _variables(**hostvars: dict[str, Any]) -> dict[str, Any]:
    return {
        "groups": {"all": sorted(hostvars), "gateways": ["gw-1"], "agents": ["agent-1", "agent-2"]},
        "hostvars": hostvars,
        "group_names": ["gateways"],
        "inventory_hostname": "gw-1",
    }


SEEN = {"ansible_facts": {"default_ipv4": {"address": "10.0.0.5"}}}


def test_a_host_without_address_fails_the_render_and_is_named() -> None:
    # With --limit gw-1 and no fact cache, agent-2 has no facts: the old lookup warned and rendered a
    # ruleset that dropped agent-2's traffic.
    variables = _variables(**{"gw-1": SEEN, "agent-1": {"ansible_host": "10.0.0.7"}, "agent-2": {}})
    with pytest.raises(Exception, match=r"no address known for the platform host\(s\) agent-2;"):
        _lookup().run(["firewall"], variables, host="gw-1")


def test_unknown_hosts_are_listed_for_the_role() -> None:
    variables = _variables(**{"gw-1": SEEN, "agent-1": {"ansible_host": "agent-1.example"}, "agent-2": {}})
    assert _lookup().run(["firewall_unknown"], variables) == [["agent-1", "agent-2"]]


def test_every_address_known_renders_them() -> None:
    variables = _variables(
        **{"gw-1": SEEN, "agent-1": {"ansible_host": "10.0.0.7"}, "agent-2": {"ansible_host": "10.0.0.8"}}
    )
    assert _lookup().run(["firewall_unknown"], variables) == [[]]
    (ruleset,) = _lookup().run(["firewall"], variables, host="gw-1")
    assert "10.0.0.7" in ruleset and "10.0.0.8" in ruleset


def test_the_role_gathers_facts_of_every_platform_host_before_rendering() -> None:
    tasks = (ROOT / "roles/firewall/tasks/present.yml").read_text()
    gather = tasks.index("ansible.builtin.setup:")
    assert "lookup('otelstack.platform.otelstack', 'firewall_unknown')" in tasks[gather:]
    assert "ignore_unreachable: true" in tasks[gather:]
    assert gather < tasks.index("ansible.builtin.assert:") < tasks.index("'firewall', roles=firewall_roles")
