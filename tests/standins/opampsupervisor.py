#!/usr/bin/env python3
"""STAND-IN for opampsupervisor, for tests only — never shipped, not the real supervisor.

Implements what the Ansible roles rely on: ``--version``; ``--config FILE`` reads a supervisor config,
merges the agent's config files that exist on disk (the ``$…`` placeholders stand for content the real
supervisor generates and are skipped; before any remote config, ``startup_fallback_configs`` is used as
the real one does), writes the result to ``<storage.directory>/effective.yaml``, runs
``agent.executable --config <effective.yaml>``, restarts it if it dies, and stops it on SIGTERM. SIGHUP
re-reads the files and restarts the collector. It speaks no OpAMP: remote config is out of its scope.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import yaml

VERSION = "@VERSION@"
BANNER = f"opampsupervisor version {VERSION} (otelstack STAND-IN for tests, not the real supervisor)"


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def effective(supervisor: dict[str, Any]) -> dict[str, Any]:
    agent = supervisor.get("agent") or {}
    files = [f for f in agent.get("config_files") or [] if not str(f).startswith("$")]
    remote = os.path.join(supervisor["storage"]["directory"], "remote_config.yaml")
    if not os.path.exists(remote):
        files = list(agent.get("startup_fallback_configs") or files)
    else:
        files.append(remote)
    merged: dict[str, Any] = {}
    for path in files:
        with open(path, encoding="utf-8") as fh:
            merged = merge(merged, yaml.safe_load(fh) or {})
    return merged


def main(argv: list[str]) -> int:
    if "--version" in argv:
        print(BANNER)
        return 0
    if "--config" not in argv and not any(a.startswith("--config=") for a in argv):
        print("Error: --config is required", file=sys.stderr)
        return 1
    path = argv[argv.index("--config") + 1] if "--config" in argv else argv[0].split("=", 1)[1]
    with open(path, encoding="utf-8") as fh:
        supervisor = yaml.safe_load(fh)
    storage = supervisor["storage"]["directory"]
    os.makedirs(storage, exist_ok=True)
    print(BANNER, flush=True)
    state = {"stop": False, "restart": False}
    signal.signal(signal.SIGTERM, lambda *_: state.update(stop=True))
    signal.signal(signal.SIGINT, lambda *_: state.update(stop=True))
    signal.signal(signal.SIGHUP, lambda *_: state.update(restart=True))
    backoff = 1.0
    while not state["stop"]:
        out = os.path.join(storage, "effective.yaml")
        with open(out + ".tmp", "w", encoding="utf-8") as fh:
            yaml.safe_dump(effective(supervisor), fh, sort_keys=False)
        os.replace(out + ".tmp", out)
        child = subprocess.Popen([supervisor["agent"]["executable"], "--config", out])
        started = time.monotonic()
        while child.poll() is None and not state["stop"] and not state["restart"]:
            time.sleep(0.2)
        if child.poll() is None:
            child.terminate()
            child.wait(timeout=10)
        if state["restart"]:
            state["restart"] = False
            continue
        if not state["stop"]:
            backoff = 1.0 if time.monotonic() - started > 30 else min(backoff * 2, 30.0)
            print(
                f"stand-in supervisor: collector exited ({child.returncode}); restarting in {backoff:.0f}s", flush=True
            )
            time.sleep(backoff)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
