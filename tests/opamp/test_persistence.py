"""The registry survives `kill -9` of a real `otelstack opamp serve` process with nothing lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from opentelemetry._opamp.proto import opamp_pb2 as pb

from tests.opamp.conftest import ADMIN_TOKEN, CONFIGS, DEV_TOKEN, free_port, official_client


def start(settings_file: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OPAMP_TEST_DEV_TOKEN": DEV_TOKEN, "OPAMP_TEST_ADMIN_TOKEN": ADMIN_TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "otelstack.cli", "opamp", "serve", "--settings", str(settings_file)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"server did not start: {proc.stderr.read().decode() if proc.stderr else ''}")


def api(port: int, path: str) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_kill_9_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    settings_file = tmp_path / "server.yaml"
    settings_file.write_text(
        yaml.safe_dump(
            {
                "listen": f"127.0.0.1:{port}",
                "configs_dir": str(CONFIGS),
                "database": str(tmp_path / "fleet.db"),
                "allow_insecure": True,
                "tokens": {"dev": {"env": "OPAMP_TEST_DEV_TOKEN"}},
                "admin_token": {"env": "OPAMP_TEST_ADMIN_TOKEN"},
            }
        )
    )
    proc = start(settings_file, port)
    try:
        for n in range(20):
            peer = official_client(f"http://127.0.0.1:{port}", f"vm-{n}")
            reply = peer.send(peer.build_full_state_message())
            if n % 2 == 0:  # half of them report the config applied
                status = peer.update_remote_config_status(
                    reply.remote_config.config_hash, pb.RemoteConfigStatuses_APPLIED
                )
                assert status is not None
                peer.send(peer.build_remote_config_status_response_message(status))
        before = api(port, "/api/agents")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    proc = start(settings_file, port)
    try:
        after = api(port, "/api/agents")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert len(after) == 20
    strip = lambda views: [{k: v for k, v in a.items() if k not in ("status", "connected")} for a in views]  # noqa: E731
    assert strip(after) == strip(before)
    assert sum(a["config"]["compliant"] for a in after) == 10
