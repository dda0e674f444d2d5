"""The launcher of Python dynamic providers (otelstack.dist.dynamic_provider): `otelstack dist kubetools`
writes it next to the built `pulumi` only; run as the engine runs it, it serves the SDK's provider protocol
with the interpreter of Pulumi.yaml's `virtualenv` (relative to the project directory); a virtualenv without
Python is a clear error."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from otelstack.dist import dynamic_provider
from otelstack.dist.kubetools import BuiltTool, with_launchers

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "stacks" / "platform"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "PYTHONHOME"))}
    return {**env, **extra}


def test_the_launcher_is_written_once_and_rewritten_when_changed(tmp_path: Path) -> None:
    notes: list[str] = []
    path = dynamic_provider.write_launcher(tmp_path, notes.append)
    assert path == tmp_path / "pulumi-resource-pulumi-python" and os.access(path, os.X_OK)
    assert path.read_text().startswith("#!/bin/sh\n") and len(notes) == 1
    dynamic_provider.write_launcher(tmp_path, notes.append)
    assert len(notes) == 1  # current: left alone
    path.write_text("#!/bin/sh\nexit 0\n")
    dynamic_provider.write_launcher(tmp_path, notes.append)
    assert path.read_text() == dynamic_provider.LAUNCHER and len(notes) == 2
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_only_pulumi_gets_the_launcher_as_an_extra(tmp_path: Path) -> None:
    built = []
    for name in ("pulumi", "pulumi-language-python"):
        (tmp_path / name).mkdir()
        built.append(BuiltTool(name, "v1", tmp_path / name / name, 0, (tmp_path / name / "other",)))
    pulumi, host = with_launchers(built, lambda _m: None)
    assert pulumi.extras == (tmp_path / "pulumi" / "other", tmp_path / "pulumi" / "pulumi-resource-pulumi-python")
    assert (
        host.extras == built[1].extras and not (tmp_path / "pulumi-language-python" / dynamic_provider.PLUGIN).exists()
    )


def test_the_launcher_serves_the_provider_protocol_with_the_projects_virtualenv(tmp_path: Path) -> None:
    launcher = dynamic_provider.write_launcher(tmp_path, lambda _m: None)
    # as Pulumi.yaml gives it (virtualenv: ../../.venv), relative to the project directory the engine starts it in
    env = _env(PULUMI_RUNTIME_VIRTUALENV="../../.venv", PATH="/usr/bin:/bin")
    proc = subprocess.Popen([str(launcher)], cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().decode().strip()
        assert first.isdigit(), first
        with socket.create_connection(("127.0.0.1", int(first)), timeout=10):
            pass  # the gRPC server listens on the port it printed
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_a_virtualenv_without_python_is_a_clear_error(tmp_path: Path) -> None:
    launcher = dynamic_provider.write_launcher(tmp_path, lambda _m: None)
    (tmp_path / "empty-venv").mkdir()
    run = subprocess.run(
        [str(launcher)], cwd=tmp_path, env=_env(PULUMI_RUNTIME_VIRTUALENV="empty-venv"),
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert run.returncode == 1 and run.stdout == ""
    assert f"virtualenv is {tmp_path}/empty-venv, which has no bin/python" in run.stderr, run.stderr
