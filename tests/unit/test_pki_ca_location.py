"""The pki role never creates a CA silently outside dev: a persisted or brought CA, or a clear failure."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.lab.playbooks import run_local_playbook

ROOT = Path(__file__).resolve().parents[2]

PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: otelstack.platform.pki
        tasks_from: ca_location.yml
    - ansible.builtin.debug:
        msg: "CA_DIR={{ __pki_ca_dir }}"
"""


def _run(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY)
    options = [arg for key, value in extra.items() for arg in ("-e", f"{key}={value}")]
    return run_local_playbook(tmp_path, playbook, options, env={"HOME": str(tmp_path / "home")})


def _ca(directory: Path) -> Path:
    directory.mkdir(parents=True)
    (directory / "ca.crt").write_text("cert")
    (directory / "ca.key").write_text("key")
    return directory


def test_prod_without_a_ca_location_fails_clearly(tmp_path: Path) -> None:
    result = _run(tmp_path, otelstack_env="prod")
    assert result.returncode != 0
    assert "otelstack_env is prod, so the CA must come from a persisted location" in result.stdout


def test_prod_with_an_empty_ca_dir_fails_naming_it(tmp_path: Path) -> None:
    # A second controller pointing at a directory without the environment's CA: no new CA is made.
    empty = tmp_path / "pki-prod"
    result = _run(tmp_path, otelstack_env="prod", pki_ca_dir=str(empty))
    assert result.returncode != 0
    assert f"no CA in {empty} (missing: ca.crt, ca.key)" in result.stdout
    assert "-e pki_ca_create=true" in result.stdout
    assert not empty.exists()


def test_prod_with_the_persisted_ca_passes(tmp_path: Path) -> None:
    ca_dir = _ca(tmp_path / "pki-prod")
    result = _run(tmp_path, otelstack_env="prod", pki_ca_dir=str(ca_dir))
    assert result.returncode == 0, result.stdout
    assert f"CA_DIR={ca_dir}" in result.stdout


def test_prod_bootstrap_is_explicit(tmp_path: Path) -> None:
    result = _run(tmp_path, otelstack_env="prod", pki_ca_dir=str(tmp_path / "new"), pki_ca_create="true")
    assert result.returncode == 0, result.stdout


def test_prod_with_a_brought_ca_passes(tmp_path: Path) -> None:
    ca_dir = _ca(tmp_path / "brought")
    result = _run(
        tmp_path, otelstack_env="prod", pki_ca_cert_path=str(ca_dir / "ca.crt"), pki_ca_key_path=str(ca_dir / "ca.key")
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("env", [{}, {"otelstack_env": "dev"}], ids=["unset", "dev"])
def test_dev_keeps_the_lab_default(tmp_path: Path, env: dict[str, str]) -> None:
    result = _run(tmp_path, **env)
    assert result.returncode == 0, result.stdout
    assert f"CA_DIR={tmp_path}/home/.local/share/otelstack/pki/dev" in result.stdout


def test_collectors_restart_when_the_ca_changes() -> None:
    pki = (ROOT / "roles/pki/tasks/present.yml").read_text()
    assert "pki_ca_changed:" in pki and "__pki_ca_copied is changed" in pki
    collector = (ROOT / "roles/otel_collector/tasks/present.yml").read_text()
    restart = collector.index("- name: Restart when the CA certificate changed in this run")
    assert "notify: Restart otel_collector" in collector[restart : restart + 400]
