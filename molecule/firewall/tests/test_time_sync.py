"""Chrony runs without clock control in the containers, and the agent takes its time from the gateway."""

from __future__ import annotations

import ipaddress
import time

import pytest
from conftest import address, host


@pytest.mark.parametrize("name", ["fw-gateway", "fw-agent"])
def test_chronyd_runs_without_clock_control(name: str) -> None:
    target = host(name)
    chrony = target.service("chrony")
    assert chrony.is_running and chrony.is_enabled
    assert " -x" in target.check_output("ps -o args= -C chronyd")
    config = target.file("/etc/chrony/chrony.conf").content_string
    assert "makestep 1.0 3" in config
    assert "rtcsync" not in config  # no clock control in a container: nothing to keep in step


def test_configured_sources() -> None:
    agent = host("fw-agent").file("/etc/chrony/chrony.conf").content_string
    assert f"server {address('fw-gateway')} iburst" in agent
    gateway = host("fw-gateway").file("/etc/chrony/chrony.conf").content_string
    network = ipaddress.ip_interface(host("fw-gateway").check_output("ip -4 -o addr show eth0").split()[3]).network
    assert "local stratum 10 orphan" in gateway and f"allow {network}" in gateway
    assert "pool " not in gateway


def test_the_agent_synchronises_with_the_gateway() -> None:
    agent = host("fw-agent")
    tracking = ""
    for _ in range(60):
        tracking = agent.check_output("chronyc -n tracking")
        if address("fw-gateway") in tracking and "Stratum         : 11" in tracking:
            return
        time.sleep(1)
    pytest.fail(f"the agent did not synchronise with the gateway:\n{tracking}")
