"""galaxy.yml declares exactly the collections the roles and playbooks use, and the changelog is current."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
FQCN = re.compile(r"\b([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\.[a-z_][a-z0-9_]*\b")
OWN_OR_CORE = {"ansible.builtin", "otelstack.platform"}
# Collections the shipped content uses (the collection is built from roles/, playbooks/, plugins/ and meta/).
SHIPPED = ("roles", "playbooks")


def _galaxy() -> dict[str, object]:
    return dict(yaml.safe_load((ROOT / "galaxy.yml").read_text()))


def _used() -> set[str]:
    used: set[str] = set()
    for folder in SHIPPED:
        for path in (ROOT / folder).rglob("*.yml"):
            for line in path.read_text().splitlines():
                code = line.split("#", 1)[0]
                used.update(f"{match[1]}.{match[2]}" for match in FQCN.finditer(code))
    return used


def test_dependencies_are_the_collections_in_use() -> None:
    declared = set(dict(_galaxy()["dependencies"]))  # type: ignore[call-overload]
    used = {name for name in _used() if name.split(".")[0] in {"community", "containers", "ansible", "kubernetes"}}
    used -= OWN_OR_CORE
    assert declared == used, f"undeclared: {sorted(used - declared)}, declared but unused: {sorted(declared - used)}"
    assert "containers.podman" in declared


def test_changelog_has_the_galaxy_version() -> None:
    changelog = yaml.safe_load((ROOT / "changelogs/changelog.yaml").read_text())
    assert str(_galaxy()["version"]) in changelog["releases"]
    config = yaml.safe_load((ROOT / "changelogs/config.yaml").read_text())
    assert config["changes_file"] == "changelog.yaml" and config["notesdir"] == "fragments"
    assert (ROOT / "changelogs/fragments").is_dir()


def test_lint_runs_ansible_lint_on_the_whole_repository() -> None:
    makefile = (ROOT / "Makefile").read_text()
    line = next(line for line in makefile.splitlines() if "$(BIN)/ansible-lint" in line)
    assert line.rstrip().endswith("--profile production"), line
