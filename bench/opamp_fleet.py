"""Simulated collectors over WebSocket against one `otelstack opamp serve` process.

Prints: agents connected and registered (each receives and applies its rendered config), the server's
CPU time per heartbeat and the number of agents one core holds at a 30 s heartbeat (extrapolated from
that measured cost), the time a staged rollout takes to reach 100 % of them, and the server's CPU and
memory per 1,000 agents. The simulated agents run in this process on the same machine, so they compete
with the server for the two cores: the figures are a lower bound for the server. Usage:
    python bench/opamp_fleet.py [--agents 1000] [--heartbeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.opamp.wsagent import WsAgent  # noqa: E402 - the simulated collector the tests use too

TOKEN, ADMIN = "bench-dev-token-000000000000", "bench-admin-token-0000000000"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def api(port: int, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


async def run(port: int, pid: int, count: int, heartbeats: int, revision: Path) -> None:
    url = f"ws://127.0.0.1:{port}/v1/opamp"
    idle_rss = rss_mib(pid)
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    agents = [
        WsAgent(url, (n + 1).to_bytes(16, "big"), TOKEN, **{"service.instance.id": f"vm-{n}"}) for n in range(count)
    ]

    async def start(agent: WsAgent) -> None:
        await agent.connect()
        await agent.register()

    for batch in range(0, count, 100):
        await asyncio.gather(*(start(a) for a in agents[batch : batch + 100]))
    connect_s, connect_cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
    held_rss = rss_mib(pid)
    print(f"agents connected and configured : {count} in {connect_s:.1f} s (server CPU {connect_cpu:.1f} s)")

    cpu1 = cpu_seconds(pid)
    t1 = time.perf_counter()
    for _ in range(heartbeats):
        await asyncio.gather(*(a.send() for a in agents))
    beat_s, beat_cpu = time.perf_counter() - t1, cpu_seconds(pid) - cpu1
    per_beat_ms = beat_cpu / (count * heartbeats) * 1000
    print(
        f"heartbeats                      : {count * heartbeats} in {beat_s:.1f} s, "
        f"server CPU {per_beat_ms:.3f} ms each"
    )
    print(f"agents per core, 30 s heartbeat : {30_000 / per_beat_ms:,.0f} (extrapolated from the CPU per heartbeat)")

    listeners = [asyncio.create_task(a.listen()) for a in agents]
    t2 = time.perf_counter()
    rollout = api(
        port,
        "POST",
        "/api/rollouts",
        {
            "kind": "config",
            "selector": {"environment": "dev"},
            "target": {"configs_dir": str(revision)},
            "canary": 1,
            "waves": [10, 50, 100],
            "wave_timeout_s": 600,
        },
    )
    while rollout["state"] == "running":
        await asyncio.sleep(0.25)
        rollout = await asyncio.to_thread(api, port, "GET", f"/api/rollouts/{rollout['id']}")
    rollout_s = time.perf_counter() - t2
    for task in listeners:
        task.cancel()
    await asyncio.gather(*listeners, return_exceptions=True)
    print(f"rollout to 100 % ({len(rollout['waves'])} waves)     : {rollout['state']} in {rollout_s:.1f} s")
    print(
        f"server per 1,000 agents         : {(held_rss - idle_rss) * 1000 / count:.1f} MiB RSS, "
        f"{connect_cpu * 1000 / count:.2f} CPU-s to register, {per_beat_ms * 1000 / 30:.1f} ms CPU/s at 30 s heartbeat"
    )
    print(f"server RSS                      : {idle_rss:.0f} MiB idle, {held_rss:.0f} MiB with {count} agents")
    for agent in agents:
        await agent.ws.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--heartbeats", type=int, default=3)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.agents * 2 + 256)), hard))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        revision = work / "configs-r2"
        shutil.copytree(ROOT / "configs", revision)
        level = revision / "dev" / "platform.yaml"
        level.write_text(level.read_text() + "tiers:\n  agent:\n    log_include+: [/srv/bench/*.log]\n")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        settings = {
            "listen": f"127.0.0.1:{port}",
            "configs_dir": str(ROOT / "configs"),
            "database": str(work / "fleet.db"),
            "allow_insecure": True,
            "tokens": {"dev": {"env": "BENCH_TOKEN"}},
            "admin_token": {"env": "BENCH_ADMIN"},
            "limits": {"max_connections": args.agents + 100},
        }
        (work / "server.yaml").write_text(yaml.safe_dump(settings))
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "otelstack.cli",
                "opamp",
                "serve",
                "--settings",
                str(work / "server.yaml"),
                "--log-level",
                "warning",
            ],
            env={**os.environ, "BENCH_TOKEN": TOKEN, "BENCH_ADMIN": ADMIN},
        )
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            print(f"otelstack OpAMP server, pid {server.pid}, {os.cpu_count()} cores shared with the simulated agents")
            asyncio.run(run(port, server.pid, args.agents, args.heartbeats, revision))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
