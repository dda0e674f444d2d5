"""The controller side of an install (roles/common/tasks/fetch.yml), run by real Ansible on local hosts.

Three hosts, two architectures, artefacts served by a local HTTP server that counts requests: each
artefact is downloaded once however many hosts need it, verified against its pin, and an artefact without
a pin, with a wrong pin, or missing from an offline directory fails before anything is installed.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab.playbooks import output, run_in_a_role, run_local_playbook, tail

ARTEFACTS = {
    "otelcol-contrib_9.9.9_linux_amd64.tar.gz": b"amd64 build",
    "otelcol-contrib_9.9.9_linux_arm64.tar.gz": b"arm64 build",
}
AMD64, ARM64 = ARTEFACTS


def digest(name: str) -> str:
    return hashlib.sha256(ARTEFACTS[name]).hexdigest()


@pytest.fixture()
def served(tmp_path: Path) -> Iterator[tuple[str, Counter[str]]]:
    root = tmp_path / "mirror"
    root.mkdir()
    for name, data in ARTEFACTS.items():
        (root / name).write_bytes(data)
    requests: Counter[str] = Counter()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(root), **kwargs)

        def do_GET(self) -> None:
            requests[self.path.lstrip("/")] += 1
            super().do_GET()

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()


def fetch(tmp_path: Path, base: str, pins: dict[str, str], **options: object):  # type: ignore[no-untyped-def]
    """fetch.yml from inside a role (the common role is internal), for hosts h1, h2 (amd64), h3 (arm64)."""
    tasks = (
        "- ansible.builtin.set_fact:\n"
        "    probe_missing: [{artefact: '{{ probe_artefact }}', url: '{{ probe_base }}/{{ probe_artefact }}',"
        " sha256: \"{{ probe_pins[probe_artefact] | default('') }}\"}]\n"
        "- ansible.builtin.include_role:\n"
        "    name: otelstack.platform.common\n"
        "    tasks_from: fetch.yml\n"
        "  vars:\n"
        "    common_fetch_fact: probe_missing\n"
        "    common_pins_variable: probe_pins\n"
    )
    inventory = tmp_path / "hosts.yml"
    hosts = {"h1": AMD64, "h2": AMD64, "h3": ARM64}
    inventory.write_text(
        json.dumps(
            {"probe": {"hosts": {h: {"probe_artefact": a, "ansible_connection": "local"} for h, a in hosts.items()}}}
        )
    )
    variables = {
        "probe_base": base,
        "probe_pins": pins,
        "common_cache_dir": str(tmp_path / "cache"),
        "common_offline": False,
        "common_artifact_dir": str(tmp_path / "mirror"),
        **options,
    }
    return run_in_a_role(tmp_path, tasks, ["-i", str(inventory), "-e", json.dumps(variables)], hosts="probe")


def test_each_artefact_is_downloaded_once_for_all_hosts_of_its_architecture(tmp_path: Path, served) -> None:  # type: ignore[no-untyped-def]
    base, requests = served
    pins = {name: digest(name) for name in ARTEFACTS}
    result = fetch(tmp_path, base, pins)
    assert result.returncode == 0, tail(result)
    assert requests == Counter({AMD64: 1, ARM64: 1}), "three hosts, two architectures: two downloads"
    assert {p.name for p in (tmp_path / "cache").iterdir()} == set(ARTEFACTS)
    again = fetch(tmp_path, base, pins)
    assert again.returncode == 0, tail(again)
    assert requests == Counter({AMD64: 1, ARM64: 1}), "a cached artefact matching its pin is not downloaded again"


def test_an_artefact_without_a_pin_is_refused_before_any_download(tmp_path: Path, served) -> None:  # type: ignore[no-untyped-def]
    base, requests = served
    result = fetch(tmp_path, base, {AMD64: digest(AMD64)})
    assert result.returncode != 0
    assert f"{ARM64}: no pinned SHA-256" in output(result) and "probe_pins" in output(result), tail(result)
    assert "Nothing was downloaded or installed" in output(result)
    assert not requests and not (tmp_path / "cache").exists()


def test_a_download_that_differs_from_its_pin_is_refused_and_not_kept(tmp_path: Path, served) -> None:  # type: ignore[no-untyped-def]
    base, _requests = served
    result = fetch(tmp_path, base, {AMD64: digest(AMD64), ARM64: "0" * 64})
    assert result.returncode != 0
    assert "did not match" in output(result) and ARM64 in output(result), tail(result)
    assert not (tmp_path / "cache" / ARM64).exists()


def test_offline_artefacts_are_checked_against_their_pins(tmp_path: Path, served) -> None:  # type: ignore[no-untyped-def]
    base, requests = served
    pins = {name: digest(name) for name in ARTEFACTS}
    assert fetch(tmp_path, base, pins, common_offline=True).returncode == 0
    (tmp_path / "mirror" / ARM64).write_bytes(b"tampered")
    tampered = fetch(tmp_path, base, pins, common_offline=True)
    assert tampered.returncode != 0
    assert f"{ARM64}: SHA-256 {hashlib.sha256(b'tampered').hexdigest()}" in output(tampered), tail(tampered)
    assert f"is not its pin {pins[ARM64]}" in output(tampered)
    (tmp_path / "mirror" / ARM64).unlink()
    missing = fetch(tmp_path, base, pins, common_offline=True)
    assert missing.returncode != 0 and f"(missing from {tmp_path / 'mirror'})" in output(missing), tail(missing)
    assert not requests, "offline: nothing is downloaded"


def test_an_unknown_cpu_architecture_fails_before_anything_is_installed(tmp_path: Path) -> None:
    playbook = tmp_path / "arch.yml"
    playbook.write_text(
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - ansible.builtin.set_fact:\n"
        "        ansible_facts: {architecture: riscv64}\n"
        "    - ansible.builtin.include_role:\n"
        "        name: otelstack.platform.otel_collector\n"
    )
    result = run_local_playbook(tmp_path, playbook)
    assert result.returncode != 0
    assert "no otelcol-contrib release for the CPU architecture riscv64" in output(result), tail(result)
    assert "releases exist for x86_64, aarch64" in output(result)
    assert "Nothing was installed" in output(result)
