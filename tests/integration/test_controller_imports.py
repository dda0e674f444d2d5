"""The collection's controller_imports callback (plugins/callback/controller_imports.py), run by real
Ansible: the otelstack modules the lookups use are imported once in the controller process, so the worker
Ansible forks for a task finds them already imported instead of importing them again per task and host.
It loads by itself beside the playbooks (playbooks/callback_plugins/) or by name (callbacks_enabled)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from otelstack.controller_imports import MODULES, preload
from tests.lab.playbooks import ROOT, output, run_local_playbook

# A lookup that reports, from inside the task's worker, which otelstack modules it was forked with.
INHERITED = """\
import json
import sys

from ansible.plugins.lookup import LookupBase


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        names = sorted(name for name in sys.modules if name.startswith("otelstack"))
        with open(str(terms[0]), "w") as out:
            json.dump(names, out)
        return [len(names)]
"""

PLAYBOOK = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.debug:
        msg: "{{ lookup('inherited', inherited_file) }}"
    - ansible.builtin.debug:
        msg: "LAYOUT={{ lookup('otelstack.platform.otelstack', 'layout').config_dir }}"
"""


def inherited(tmp_path: Path, how: str) -> tuple[list[str], str]:
    """The otelstack modules a worker starts with: the callback beside the playbook (``adjacent``), enabled
    by name (``enabled``), or not at all (``none``)."""
    playbooks = tmp_path / "playbooks"
    (playbooks / "lookup_plugins").mkdir(parents=True)
    (playbooks / "lookup_plugins" / "inherited.py").write_text(INHERITED, encoding="utf-8")
    if how == "adjacent":
        (playbooks / "callback_plugins").symlink_to(ROOT / "playbooks" / "callback_plugins")
    (playbooks / "probe.yml").write_text(PLAYBOOK, encoding="utf-8")
    report = tmp_path / "inherited.json"
    env = {"ANSIBLE_CALLBACKS_ENABLED": "otelstack.platform.controller_imports"} if how == "enabled" else {}
    result = run_local_playbook(tmp_path, playbooks / "probe.yml", ["-e", f"inherited_file={report}"], env=env)
    text = output(result)
    assert result.returncode == 0, text[-3000:]
    return json.loads(report.read_text(encoding="utf-8")), text


@pytest.mark.parametrize("how", ["adjacent", "enabled", "none"])
def test_workers_inherit_the_modules_the_lookups_use(tmp_path: Path, how: str) -> None:
    modules, text = inherited(tmp_path, how)
    assert "LAYOUT=/etc/" in text  # the lookup itself works either way
    assert "WARNING" not in text, text[-2000:]
    if how != "none":
        missing = [name for name in MODULES if name not in modules]
        assert not missing, f"forked without {missing}"
    else:
        # Without the callback the worker imports them itself: the measure of what the callback saves.
        assert "otelstack.render" not in modules


def test_preload_names_importable_modules() -> None:
    assert preload() == MODULES
    assert "otelstack.render" in MODULES and len(set(MODULES)) == len(MODULES)


def test_modules_cover_what_the_plugins_import() -> None:
    """Every otelstack module a lookup or filter imports is in MODULES (else its workers import it again)."""
    imported = set()
    for path in [*(ROOT / "plugins" / "lookup").glob("*.py"), *(ROOT / "plugins" / "filter").glob("*.py")]:
        for package, names in re.findall(r"^\s*from (otelstack[\w.]*) import ([\w, ]+)", path.read_text(), re.M):
            for name in (n.strip() for n in names.split(",")):
                module = f"{package}.{name}"
                imported.add(module if _is_module(module) else package)  # a module, or a name in one
    assert imported - {"otelstack"} <= set(MODULES), sorted(imported - set(MODULES) - {"otelstack"})


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False
