"""Rejected input leaves the host exactly as it was. Each case re-runs converge.yml with bad input."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.environ["OTELSTACK_ROOT"])

from tests.lab.playbooks import output, run_playbook, tail

from otelstack.catalog.versions import otelcol_contrib
from otelstack.dist.checksums import format_sums, parse_sums

CONVERGE = Path(__file__).parents[1] / "converge.yml"
CONFIG = "/etc/otelcol-contrib/agent-vm.yaml"
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
ARCH = "amd64"


def following(version: str) -> str:
    """A release after ``version`` that has not been built: its archive here is a tampered copy, never run."""
    major, minor, _patch = version.split(".")
    return f"{major}.{int(minor) + 1}.0"


@pytest.fixture()
def before(host):  # type: ignore[no-untyped-def]
    """What must not change: config bytes, service process, active release, file list of the config dir."""
    return snapshot(host)


def snapshot(host) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {
        "config": host.file(CONFIG).sha256sum,
        "pid": host.service("opampsupervisor").systemd_properties["MainPID"],
        "active": host.file("/opt/otelcol-contrib/active").linked_to,
        "files": host.check_output("ls -A /etc/otelcol-contrib /opt/otelcol-contrib/releases"),
    }


def test_config_the_binary_rejects_is_not_installed(host, before) -> None:  # type: ignore[no-untyped-def]
    # otelstack passes the log level through; the real otelcol-contrib refuses it in `validate`.
    bad = {"collector_overrides": {"agent": {"service": {"telemetry": {"logs": {"level": "loud"}}}}}}
    result = run_playbook(CONVERGE, json.dumps({"otelstack_test_overrides": bad}))
    assert result.returncode != 0
    assert "failed to validate" in output(result), tail(result)
    assert "unrecognized level" in output(result) and "loud" in output(result), tail(result)
    assert snapshot(host) == before
    assert host.service("opampsupervisor").is_running


def test_invalid_setting_names_the_key_and_changes_nothing(host, before) -> None:  # type: ignore[no-untyped-def]
    bad = {"sampling": {"tail": {"probabilistic_percentage": 120}}}
    result = run_playbook(CONVERGE, json.dumps({"otelstack_test_overrides": bad}))
    assert result.returncode != 0
    assert "sampling.tail.probabilistic_percentage" in output(result), tail(result)
    assert snapshot(host) == before


def new_release_mirror(tmp_path: Path, pinned: bool) -> tuple[str, Path]:
    """A copy of the lab's mirror with a release after the pinned one: the real archive altered, under
    the new release's name; ``pinned`` lists the real archive's digest for it in SHA256SUMS (so the
    altered archive does not match its pin), else the new release has no pin at all."""
    version = following(otelcol_contrib().version)
    artefacts = tmp_path / "artefacts"
    shutil.copytree(EPHEMERAL / "artefacts", artefacts)
    real = artefacts / otelcol_contrib().archive_name(ARCH)
    archive = artefacts / real.name.replace(otelcol_contrib().version, version)
    archive.write_bytes(real.read_bytes() + b"tampered")
    if pinned:
        sums = parse_sums((artefacts / "SHA256SUMS").read_text())
        sums[archive.name] = sums[real.name]
        (artefacts / "SHA256SUMS").write_text(format_sums(sums))
    return version, artefacts


@pytest.mark.parametrize(
    ("pinned", "message"),
    [
        (True, "is not its pin"),
        (False, "no pinned SHA-256 (neither in otelstack's catalog nor in otel_collector_sha256)"),
    ],
)
def test_an_artefact_that_differs_from_its_pin_or_has_none_is_refused(
    host, before, tmp_path: Path, pinned: bool, message: str
) -> None:  # type: ignore[no-untyped-def]
    # Refused on the controller, before anything reaches the host: the .sha256 file served beside the
    # altered archive matches it, and is not what the install trusts.
    version, artefacts = new_release_mirror(tmp_path, pinned)
    archive = artefacts / otelcol_contrib().archive_name(ARCH).replace(otelcol_contrib().version, version)
    Path(f"{archive}.sha256").write_text(hashlib.sha256(archive.read_bytes()).hexdigest() + "\n")
    result = run_playbook(
        CONVERGE,
        f"otel_collector_version={version}",
        f"otel_collector_artifact_dir={artefacts}",
        f"otel_collector_cache_dir={tmp_path / 'cache'}",
    )
    assert result.returncode != 0
    assert message in output(result) and archive.name in output(result), tail(result)
    assert "Nothing was" in output(result)
    assert snapshot(host) == before
    assert not host.file(f"/opt/otelcol-contrib/releases/{version}").exists


def test_config_that_fails_at_run_time_is_replaced_by_the_last_good_one(host, before) -> None:  # type: ignore[no-untyped-def]
    # Valid for `otelcol-contrib validate`, fatal at start: the health_check extension binds an address
    # this host does not have. The readiness gate fails, the role restores the config it replaced
    # (.last-good) and restarts on it: the host serves again, and the run fails naming what it did.
    bad = {"collector_overrides": {"agent": {"extensions": {"health_check": {"endpoint": "192.0.2.55:13133"}}}}}
    result = run_playbook(
        CONVERGE, json.dumps({"otelstack_test_overrides": bad}), "otel_collector_readiness_timeout=10"
    )
    assert result.returncode != 0
    assert "failed the readiness gate" in output(result), tail(result)
    assert "the last good config was restored" in output(result), tail(result)
    assert host.file(CONFIG).sha256sum == before["config"]
    assert host.file(f"{CONFIG}.last-good").sha256sum == before["config"]
    assert host.file("/opt/otelcol-contrib/active").linked_to == before["active"]
    assert host.service("opampsupervisor").is_running
    # The collector answers again on the restored config (the supervisor starts it within seconds).
    probe = (
        "import time, urllib.request\n"
        "for _ in range(30):\n"
        "    try:\n"
        "        urllib.request.urlopen('http://127.0.0.1:13133/', timeout=2); break\n"
        "    except OSError:\n"
        "        time.sleep(1)\n"
        "else:\n"
        "    raise SystemExit('health_check does not answer')\n"
    )
    assert host.run("python3 -c %s", probe).rc == 0
