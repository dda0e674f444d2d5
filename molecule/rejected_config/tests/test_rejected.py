"""Rejected input leaves the host exactly as it was. Each case re-runs converge.yml with bad input."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.environ["OTELSTACK_ROOT"])

from tests.lab.playbooks import output, run_playbook, tail
from tests.standins.build import ARCH, following

from otelstack.catalog.versions import otelcol_contrib

CONVERGE = Path(__file__).parents[1] / "converge.yml"
CONFIG = "/etc/otelcol-contrib/agent-vm.yaml"
EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])


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
    # service.telemetry.resource is free-form for otelstack; the stand-in binary refuses this key.
    bad = {
        "collector_overrides": {"agent": {"service": {"telemetry": {"resource": {"otelstack_standin_reject": "x"}}}}}
    }
    result = run_playbook(CONVERGE, json.dumps({"otelstack_test_overrides": bad}))
    assert result.returncode != 0
    assert "failed to validate" in output(result), tail(result)
    assert snapshot(host) == before
    assert host.service("opampsupervisor").is_running


def test_invalid_setting_names_the_key_and_changes_nothing(host, before) -> None:  # type: ignore[no-untyped-def]
    bad = {"sampling": {"tail": {"probabilistic_percentage": 120}}}
    result = run_playbook(CONVERGE, json.dumps({"otelstack_test_overrides": bad}))
    assert result.returncode != 0
    assert "sampling.tail.probabilistic_percentage" in output(result), tail(result)
    assert snapshot(host) == before


def test_artefact_with_a_wrong_checksum_is_refused(host, before, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    version = following(otelcol_contrib().version)
    artefacts = tmp_path / "artefacts"
    shutil.copytree(EPHEMERAL / "artefacts", artefacts)
    archive = artefacts / otelcol_contrib().archive_name(ARCH).replace(otelcol_contrib().version, version)
    archive.write_bytes(archive.read_bytes() + b"tampered")
    result = run_playbook(
        CONVERGE,
        f"otel_collector_version={version}",
        f"otel_collector_artifact_dir={artefacts}",
        f"otel_collector_cache_dir={tmp_path / 'cache'}",
    )
    assert result.returncode != 0
    assert "does not match" in output(result) and "refusing to install it" in output(result), tail(result)
    assert snapshot(host) == before
    assert not host.file(f"/opt/otelcol-contrib/releases/{version}").exists
