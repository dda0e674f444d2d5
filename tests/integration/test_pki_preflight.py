"""The pki role on a host whose OS release is not supported stops at the OS preflight before it makes
anything — the controller's CA included (real Ansible, on this machine as the host)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.lab.playbooks import output, run_local_playbook


def test_an_unsupported_release_fails_before_the_controller_ca_is_made(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    playbook = tmp_path / "pki.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: true\n  roles: [otelstack.platform.pki]\n", encoding="utf-8"
    )
    settings = {"pki_ca_dir": str(ca_dir), "common_os_versions": ["10"], "otelstack_env": "dev"}
    result = run_local_playbook(tmp_path, playbook, ["-e", json.dumps(settings)])
    out = output(result)
    assert result.returncode != 0, out[-3000:]
    assert "otelstack roles support Debian 12 and 13" in out and "Nothing was changed." in out, out[-3000:]
    assert "Internal CA on the controller" not in out, out[-3000:]
    assert not ca_dir.exists(), sorted(p.name for p in ca_dir.rglob("*"))
