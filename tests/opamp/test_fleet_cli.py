"""`otelstack fleet …` against a running server: list, show, rollout start/status/abort, and clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from otelstack.cli import main
from tests.opamp.conftest import ADMIN_TOKEN, CONFIGS, RunningServer, official_client


@pytest.fixture()
def registered(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> RunningServer:
    monkeypatch.setenv("OTELSTACK_OPAMP_ADMIN_TOKEN", ADMIN_TOKEN)
    for n in range(3):
        peer = official_client(server.http_url, f"vm-{n}")
        peer.send(peer.build_full_state_message())
    return server


def fleet(server: RunningServer, *args: str) -> list[str]:
    return ["fleet", "--server", server.http_url, *args]


def test_list_and_show(registered: RunningServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(fleet(registered, "list")) == 0
    out = capsys.readouterr().out
    assert "3 agents" in out and "INSTANCE" in out
    assert main(fleet(registered, "list", "--json")) == 0
    agents = json.loads(capsys.readouterr().out)
    assert main(fleet(registered, "show", agents[0]["uid"])) == 0
    assert json.loads(capsys.readouterr().out)["uid"] == agents[0]["uid"]


def test_rollout_start_status_abort(
    registered: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    revision = tmp_path / "r2"
    shutil.copytree(CONFIGS, revision)
    assert main(fleet(registered, "rollout", "start", "--configs", str(revision), "--selector", "environment=dev")) == 0
    started = capsys.readouterr().out
    assert "(config): running, wave 1/" in started
    rollout_id = started.split()[1]
    assert main(fleet(registered, "rollout", "status", rollout_id)) == 0
    assert rollout_id in capsys.readouterr().out
    assert main(fleet(registered, "rollout", "abort", rollout_id)) == 0
    assert "aborted" in capsys.readouterr().out
    assert main(fleet(registered, "rollout", "abort", rollout_id)) == 2
    assert "HTTP 409" in capsys.readouterr().err


def test_errors_are_clear(
    registered: RunningServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(fleet(registered, "rollout", "start", "--configs", "/nonexistent", "--selector", "environment=dev")) == 2
    )
    assert "configs directory /nonexistent does not exist" in capsys.readouterr().err
    assert main(fleet(registered, "show", "no-such-agent")) == 2
    assert "HTTP 404: no agent with instance UID 'no-such-agent'" in capsys.readouterr().err
    monkeypatch.setenv("OTELSTACK_OPAMP_ADMIN_TOKEN", "wrong")
    assert main(fleet(registered, "list")) == 2
    assert "refused the admin token from OTELSTACK_OPAMP_ADMIN_TOKEN (401)" in capsys.readouterr().err
    monkeypatch.delenv("OTELSTACK_OPAMP_ADMIN_TOKEN")
    assert main(fleet(registered, "list")) == 2
    assert "set OTELSTACK_OPAMP_ADMIN_TOKEN" in capsys.readouterr().err
