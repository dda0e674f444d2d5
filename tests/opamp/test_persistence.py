"""The registry survives `kill -9` of a real `otelstack opamp serve` process with nothing lost."""

from __future__ import annotations

import json
import signal
import urllib.request
from pathlib import Path
from typing import Any

from opentelemetry._opamp.proto import opamp_pb2 as pb

from tests.opamp.conftest import ADMIN_TOKEN, free_port, official_client, server_process


def api(port: int, path: str) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_kill_9_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    proc, _log = server_process(tmp_path, port)
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

    proc, _log = server_process(tmp_path, port)
    try:
        after = api(port, "/api/agents")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert len(after) == 20
    strip = lambda views: [{k: v for k, v in a.items() if k not in ("status", "connected")} for a in views]  # noqa: E731
    assert strip(after) == strip(before)
    assert sum(a["config"]["compliant"] for a in after) == 10
