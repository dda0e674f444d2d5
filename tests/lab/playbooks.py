"""Run the collection's playbooks against a molecule scenario's hosts, from that scenario's verifier."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(os.environ.get("OTELSTACK_ROOT", Path(__file__).resolve().parents[2]))


def run_playbook(name: str | Path, *extra_vars: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    """ansible-playbook playbooks/NAME (or a path) against the scenario inventory, its group_vars included."""
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": os.environ["OTELSTACK_COLLECTIONS_PATH"],
        "ANSIBLE_CONNECTION_PLUGINS": str(ROOT / "tests" / "lab" / "connection_plugins"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_STDOUT_CALLBACK": "default",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    args = [
        "ansible-playbook",
        "-i",
        os.environ["MOLECULE_INVENTORY_FILE"],
        str(name if isinstance(name, Path) else ROOT / "playbooks" / name),
    ]
    for var in extra_vars:
        args += ["-e", var]
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout, check=False)


def run_local_playbook(
    tmp_path: Path,
    playbook: Path,
    options: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """ansible-playbook on localhost (local connection, this Python), with this repository as the
    collection otelstack.platform under ``tmp_path/collections``; ``options`` go before the playbook."""
    collections = tmp_path / "collections" / "ansible_collections" / "otelstack"
    collections.mkdir(parents=True, exist_ok=True)
    if not (collections / "platform").exists():
        (collections / "platform").symlink_to(ROOT)
    environment = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "collections"),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        **(env or {}),
    }
    args = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local"]
    args += ["-e", f"ansible_python_interpreter={sys.executable}", *options, str(playbook)]
    return subprocess.run(args, capture_output=True, text=True, env=environment, cwd=cwd, timeout=120, check=False)


def run_in_a_role(
    tmp_path: Path, tasks: str, options: Sequence[str] = (), hosts: str = "localhost"
) -> subprocess.CompletedProcess[str]:
    """``tasks`` as the main tasks of a role ``probe`` played on ``hosts`` with run_local_playbook: the
    common role's task files run only from inside another role."""
    role = tmp_path / "roles" / "probe" / "tasks"
    role.mkdir(parents=True, exist_ok=True)
    (role / "main.yml").write_text(tasks, encoding="utf-8")
    playbook = tmp_path / "probe.yml"
    playbook.write_text(f"- hosts: {hosts}\n  gather_facts: false\n  roles: [probe]\n", encoding="utf-8")
    return run_local_playbook(tmp_path, playbook, options, env={"ANSIBLE_ROLES_PATH": str(tmp_path / "roles")})


def tail(result: subprocess.CompletedProcess[str], chars: int = 4000) -> str:
    return result.stdout[-chars:] + result.stderr[-chars // 2 :]


def output(result: subprocess.CompletedProcess[str]) -> str:
    """All the run printed: the default callback writes failures (fatal: ...) to stderr."""
    return result.stdout + result.stderr
