"""playbooks/uninstall.yml removes what otelstack added, and a second run changes nothing.
Runs last (file order): the platform is gone afterwards."""

from __future__ import annotations

import re

import pytest
from conftest import COLLECTORS, host
from tests.lab.playbooks import run_playbook, tail


@pytest.fixture(scope="module")
def uninstalled() -> str:
    first = run_playbook("uninstall.yml")
    assert first.returncode == 0, tail(first)
    return first.stdout


@pytest.mark.parametrize("name", COLLECTORS)
def test_collector_hosts_keep_nothing_of_otelstack(uninstalled: str, name: str) -> None:
    target = host(name)
    for path in (
        "/etc/otelcol-contrib",
        "/opt/otelcol-contrib",
        "/var/lib/otelcol-contrib",
        "/etc/systemd/system/opampsupervisor.service",
        "/etc/nftables.d/otelstack.nft",
    ):
        assert not target.file(path).exists, path
    assert not target.user("otelcol").exists
    assert target.run("nft list table inet otelstack").rc != 0
    assert target.run("pgrep -f '[o]pampsupervisor|[o]telcol-contrib'").rc != 0  # [o]: not pgrep's own shell


def test_the_opamp_server_is_gone_but_its_registry_stays(uninstalled: str) -> None:
    server = host("opamp-1")
    assert not server.service("otelstack-opamp").is_running
    for path in ("/opt/otelstack-opamp", "/etc/otelstack-opamp", "/etc/systemd/system/otelstack-opamp.service"):
        assert not server.file(path).exists, path
    assert server.file("/var/lib/otelstack-opamp/fleet.db").exists


def test_a_second_uninstall_changes_nothing(uninstalled: str) -> None:
    again = run_playbook("uninstall.yml")
    assert again.returncode == 0, tail(again)
    recap = re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", again.stdout, re.M)
    assert len(recap) == 5 and all(changed == "0" for _host, changed in recap), recap
