"""opamp_server installs otelstack from a wheel file or source tree on the controller, never from an index."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from otelstack import __version__
from tests.lab.playbooks import run_local_playbook

ROOT = Path(__file__).resolve().parents[2]
TASKS = (
    "What to install",
    "The otelstack package is a wheel file or a source tree on the controller, at the collection's version",
)


def _run(tmp_path: Path, role_path: Path, package: str = "") -> subprocess.CompletedProcess[str]:
    tasks = [
        t for t in yaml.safe_load((ROOT / "roles/opamp_server/tasks/present.yml").read_text()) if t.get("name") in TASKS
    ]
    assert len(tasks) == 2
    tasks.append({"name": "Chosen", "ansible.builtin.debug": {"msg": "SOURCE={{ __opamp_server_source }}"}})
    play = [
        {
            "hosts": "localhost",
            "gather_facts": True,
            "vars": {
                "role_path": str(role_path),
                "opamp_server_package": package,
                "opamp_server_wheel_cache": str(tmp_path / "wheels"),
                "__opamp_server_python": {"stdout": "3.11"},
            },
            "tasks": tasks,
        }
    ]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    return run_local_playbook(tmp_path, tmp_path / "play.yml")


def test_an_installed_collection_without_a_source_tree_fails_instead_of_using_an_index(tmp_path: Path) -> None:
    # The collection installed from Galaxy: no pyproject.toml two levels above the role.
    role = tmp_path / "installed" / "roles" / "opamp_server"
    role.mkdir(parents=True)
    result = _run(tmp_path, role)
    assert result.returncode != 0
    assert "this collection has no source tree" in result.stdout
    assert "otelstack==" not in result.stdout.replace(f"otelstack=={__version__}", "")


def test_a_requirement_is_refused(tmp_path: Path) -> None:
    result = _run(tmp_path, ROOT / "roles" / "opamp_server", package=f"otelstack=={__version__}")
    assert result.returncode != 0
    assert f"got otelstack=={__version__}" in result.stdout


@pytest.mark.parametrize("version", [__version__, "0.0.1"])
def test_a_wheel_file_at_the_collection_version_only(tmp_path: Path, version: str) -> None:
    wheel = tmp_path / f"otelstack-{version}-py3-none-any.whl"
    wheel.write_bytes(b"PK")
    result = _run(tmp_path, tmp_path / "none" / "roles" / "opamp_server", package=str(wheel))
    assert (result.returncode == 0) == (version == __version__), result.stdout
    if version == __version__:
        assert f"SOURCE={wheel}" in result.stdout


def test_the_source_tree_of_a_checkout_is_the_default(tmp_path: Path) -> None:
    result = _run(tmp_path, ROOT / "roles" / "opamp_server")
    assert result.returncode == 0, result.stdout
    assert f"SOURCE={ROOT}/roles/opamp_server/../.." in result.stdout
