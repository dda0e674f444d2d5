"""The STAND-IN opampsupervisor (tests/standins) against the real server, over WebSocket and HTTP.

The molecule platform scenario relies on the stand-in speaking OpAMP as the real supervisor does, so
its behaviour is proven here first: it registers with the description of its config, runs the config
the server offers and reports it APPLIED; a config its collector cannot run is reported FAILED with the
collector's last log lines, the last working config runs again, and the server does not offer it again.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from otelstack.catalog.versions import otelcol_contrib
from otelstack.render import render_agent_config
from tests.opamp.conftest import ADMIN_TOKEN, CONFIGS, DEV_TOKEN, RunningServer, free_port, settings, start_server
from tests.standins.build import build


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def api(server: RunningServer, method: str, path: str, body: Any = None) -> Any:
    import json

    request = urllib.request.Request(
        server.http_url + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


class Lab:
    """A configs/ copy whose agent config listens on free ports, the stand-ins, and a supervisor config."""

    def __init__(self, tmp: Path, port: int, scheme: str) -> None:
        self.tmp = tmp
        self.health, otlp_grpc, otlp_http, metrics = free_port(), free_port(), free_port(), free_port()
        self.configs = tmp / "configs"
        shutil.copytree(CONFIGS, self.configs)
        ports = {
            "receivers": {
                "otlp": {
                    "protocols": {
                        "grpc": {"endpoint": f"127.0.0.1:{otlp_grpc}"},
                        "http": {"endpoint": f"127.0.0.1:{otlp_http}"},
                    }
                }
            },
            "extensions": {"health_check": {"endpoint": f"127.0.0.1:{self.health}"}},
            "service": {
                "telemetry": {
                    "metrics": {
                        "readers": [{"pull": {"exporter": {"prometheus": {"host": "127.0.0.1", "port": metrics}}}}]
                    }
                }
            },
        }
        level = self.configs / "dev" / "lab" / "platform.yaml"
        level.write_text(level.read_text() + yaml.safe_dump({"collector_overrides": {"agent": ports}}))
        self.rendered = render_agent_config(self.configs, "dev", "lab", profile="agent-vm")
        self.base = tmp / "agent-vm.yaml"
        self.base.write_text(self.rendered.text)
        artefacts = tmp / "artefacts"
        archive, self.supervisor = build(artefacts, otelcol_contrib().version)
        subprocess.run(["tar", "-C", str(artefacts), "-xzf", str(archive)], check=True)
        collector = tmp / "otelcol-contrib"
        collector.write_text(f'#!/bin/sh\nexec {sys.executable} {artefacts / "otelcol-contrib"} "$@"\n')
        collector.chmod(0o755)
        self.storage = tmp / "supervisor"
        self.config = tmp / "supervisor.yaml"
        endpoint = f"{scheme}://127.0.0.1:{port}/v1/opamp"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "server": {
                        "endpoint": endpoint,
                        "headers": {"Authorization": "Bearer ${env:OTELSTACK_OPAMP_TOKEN}"},
                        "tls": {"insecure": True},
                    },
                    "capabilities": {
                        "accepts_remote_config": True,
                        "reports_remote_config": True,
                        "reports_effective_config": True,
                        "reports_health": True,
                        "accepts_restart_command": True,
                        "accepts_opamp_connection_settings": True,
                    },
                    "agent": {
                        "executable": str(collector),
                        "config_files": [str(self.base), "$OWN_TELEMETRY_CONFIG", "$REMOTE_CONFIG"],
                        "startup_fallback_configs": [str(self.base)],
                        "automatic_config_rollback": True,
                        "collector_crash_log_snippet_kib": 8,
                        "config_apply_timeout": "10s",
                        "description": {
                            "non_identifying_attributes": {
                                "deployment.environment.name": "dev",
                                "cloud.region": "lab",
                                "otelstack.profile": "agent-vm",
                            }
                        },
                    },
                    "storage": {"directory": str(self.storage)},
                }
            )
        )

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health}/", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False


@pytest.fixture(params=["ws", "http"])
def lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Lab, RunningServer]]:
    port = free_port()
    lab = Lab(tmp_path, port, request.param)
    # A 1 s heartbeat: the HTTP transport sees offers when it polls.
    server = start_server(settings(tmp_path, port, configs_dir=str(lab.configs), heartbeat_interval_s=1))
    try:
        yield lab, server
    finally:
        server.stop()


@pytest.fixture()
def supervisor(lab: tuple[Lab, RunningServer]) -> Iterator[subprocess.Popen[str]]:
    env = {**os.environ, "OTELSTACK_OPAMP_TOKEN": DEV_TOKEN}
    proc = subprocess.Popen(
        [sys.executable, str(lab[0].supervisor), "--config", str(lab[0].config)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        wait_for("the collector to stop", lambda: not lab[0].healthy(), timeout=20)


def the_agent(server: RunningServer) -> dict[str, Any] | None:
    agents = api(server, "GET", "/api/agents")
    return agents[0] if len(agents) == 1 else None


def test_registers_and_runs_the_offered_config(lab: tuple[Lab, RunningServer], supervisor: Any) -> None:
    env, server = lab
    agent = wait_for(
        "the agent to apply its config",
        lambda: (a := the_agent(server)) and a["config"]["compliant"] and a["status"] == "healthy" and a,
    )
    assert (agent["environment"], agent["region"], agent["profile"]) == ("dev", "lab", "agent-vm")
    assert agent["version"] == otelcol_contrib().version
    assert agent["config"]["reported"] == env.rendered.sha256
    assert agent["attributes"]["service.instance.id"] == agent["uid"]
    state = yaml.safe_load((env.storage / "persistent_state.yaml").read_text())
    assert state["instance_id"] == agent["uid"]
    assert env.healthy()
    effective = yaml.safe_load((env.storage / "effective.yaml").read_text())
    assert effective == yaml.safe_load(env.rendered.text)


def test_a_failing_config_is_reported_and_the_last_good_one_runs_again(
    lab: tuple[Lab, RunningServer], supervisor: Any
) -> None:
    env, server = lab
    good = wait_for("a healthy agent", lambda: (a := the_agent(server)) and a["config"]["last_good"] and a)
    assert good["config"]["compliant"]
    # Valid for otelstack, refused by the stand-in collector when it starts (as a release that cannot
    # run a config would be): the supervisor must report it FAILED and go back.
    bad = {
        "collector_overrides": {"agent": {"service": {"telemetry": {"resource": {"otelstack_standin_reject": "x"}}}}}
    }
    api(server, "PUT", f"/api/agents/{good['uid']}/overrides", bad)
    failed = wait_for(
        "the failure report", lambda: (a := the_agent(server)) and a["config"]["status"] == "FAILED" and a, timeout=60
    )
    assert failed["status"] == "config_failed"
    assert "otelstack_standin_reject" in failed["config"]["error"], failed["config"]["error"]
    assert "did not become healthy" in failed["config"]["error"]
    assert failed["config"]["last_good"] == good["config"]["reported"]
    wait_for("the last good config to run again", env.healthy)
    effective = yaml.safe_load((env.storage / "effective.yaml").read_text())
    assert effective == yaml.safe_load(env.rendered.text)
    # Never offered again: the agent stays on its last good config and keeps reporting the failure.
    time.sleep(2)
    again = the_agent(server)
    assert again is not None and again["config"]["status"] == "FAILED" and env.healthy()
