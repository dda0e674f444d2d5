"""Upgrade, rollback and a failed upgrade of the real collector, through the collection's playbooks.

Tests run in file order. BEFORE is the real release before the pinned one (built by prepare.yml);
BROKEN is a damaged release whose binary cannot run (tests/lab/damaged_release.py says why that is the
failure the real programs can produce)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.environ["OTELSTACK_ROOT"])

from tests.lab.damaged_release import following
from tests.lab.playbooks import output, run_playbook, tail

from otelstack.catalog.versions import otelcol_contrib
from otelstack.dist.build import previous_release

PINNED = otelcol_contrib().version
BEFORE = previous_release()
BROKEN = following(PINNED)


def active(host) -> str:  # type: ignore[no-untyped-def]
    return host.file("/opt/otelcol-contrib/active").linked_to.rsplit("/", 1)[-1]


def serving(host) -> bool:  # type: ignore[no-untyped-def]
    return host.service("otelcol-contrib").is_running and host.socket("tcp://127.0.0.1:4317").is_listening


def main_pid(host) -> str:  # type: ignore[no-untyped-def]
    return host.service("otelcol-contrib").systemd_properties["MainPID"]


def test_converged_on_the_release_before(host) -> None:  # type: ignore[no-untyped-def]
    assert active(host) == BEFORE
    assert serving(host)
    assert BEFORE in host.check_output("/opt/otelcol-contrib/active/otelcol-contrib --version")


def test_upgrade_switches_release_and_restarts(host) -> None:  # type: ignore[no-untyped-def]
    pid = main_pid(host)
    result = run_playbook("upgrade.yml", f"otelstack_upgrade_version={PINNED}")
    assert result.returncode == 0, tail(result)
    assert active(host) == PINNED and serving(host)
    assert main_pid(host) != pid, "the collector was not restarted on the new release"
    assert host.file(f"/opt/otelcol-contrib/releases/{BEFORE}/otelcol-contrib").exists, "kept for rollback"


def test_upgrade_without_a_version_is_refused(host) -> None:  # type: ignore[no-untyped-def]
    result = run_playbook("upgrade.yml")
    assert result.returncode != 0
    assert "-e otelstack_upgrade_version=" in output(result)
    assert active(host) == PINNED


def test_rollback_returns_to_the_previous_release(host) -> None:  # type: ignore[no-untyped-def]
    result = run_playbook("rollback.yml")
    assert result.returncode == 0, tail(result)
    assert active(host) == BEFORE and serving(host)


def test_failed_upgrade_is_rolled_back_and_stops(host) -> None:  # type: ignore[no-untyped-def]
    result = run_playbook("upgrade.yml", f"otelstack_upgrade_version={BROKEN}")
    assert result.returncode != 0
    assert f"failed the health gate on {BROKEN} and was rolled back to {BEFORE}" in output(result), tail(result)
    assert active(host) == BEFORE
    assert serving(host), "the host must serve again on the release it ran before"
