"""Simulated collectors over WebSocket against one `otelstack opamp serve` process, measured at real load.

The server is its own process; the simulated agents (tests/opamp/wsagent.py's WsAgent) run in separate
load-generator processes, each an asyncio loop holding a share of the connections, so what the server
used is read from /proc/<server pid> alone. The run:

1. ramp-up: every agent connects, registers (description, health) and applies the config it is offered
   (reporting APPLIED), a bounded number at a time per generator; no heartbeats yet, so the server's
   CPU over the ramp is registration's;
2. hold: all agents stay connected for whole heartbeat periods, each beating once per period at its own
   uniformly spread offset; over that window: server CPU (utime+stime) and RSS (VmRSS), heartbeats sent
   and answered, round-trip latency as the agents saw it, errors and disconnects;
3. rollout: a staged config rollout (canary 1, waves 10/50/100 %) through the REST API to every
   connected agent, which applies what is pushed (or offered in a heartbeat reply) while it keeps beating.

The agents send no WebSocket pings: the OpAMP heartbeat is their only traffic. "Agents one core holds" is
derived from the CPU share measured at the load that really ran (linear scaling assumed), and printed
next to the number really held. The machine's cores are shared by the server, the load generators and
whatever else runs, so the header and the hold lines say how busy the machine was. Usage:
    python bench/opamp_fleet.py [--agents 10000] [--heartbeat 30] [--periods 2] [--generators 2]
    python bench/opamp_fleet.py --agents 1000 --heartbeat 5        # quick run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, TypedDict

import websockets
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.opamp.wsagent import CAPS, WsAgent, decode  # noqa: E402 - the simulated collector the tests use too

TOKEN, ADMIN = "bench-dev-token-000000000000", "bench-admin-token-0000000000"
TICKS = os.sysconf("SC_CLK_TCK")
REPLY_GRACE_S = 5.0  # after the hold window, how long a heartbeat sent in it may still be answered
# Each GET /api/rollouts/<id> makes the server check every released agent, so it is polled sparingly;
# the durations printed come from the server's and the agents' timestamps, not from the polling.
ROLLOUT_POLL_S = 5.0


# --- reading /proc ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def machine_busy_seconds() -> float:
    """CPU-seconds the whole machine spent busy (all cores, all processes) since boot."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / TICKS


def raise_nofile(needed: int) -> int:
    """Raise this process's RLIMIT_NOFILE soft limit to `needed`, and the hard limit when it is lower and
    the process may (root); returns the soft limit it got."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return soft
    if hard != resource.RLIM_INFINITY and hard < needed:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
            return needed
        except (ValueError, OSError):
            needed = hard  # not privileged: as far as the hard limit goes
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return needed


def nofile_for(needed: int) -> Callable[[], None]:
    """A preexec_fn that gives the server child enough file descriptors for every agent."""

    def preexec() -> None:
        raise_nofile(needed)

    return preexec


# --- the load generator: one process, one asyncio loop, a share of the agents ---------------------


class RampReport(TypedDict):
    connected: int
    configured: int
    errors: dict[str, int]


class HoldReport(TypedDict):
    sent: int
    answered: int
    rtt_ms: list[float]
    open: int
    disconnects: dict[str, int]


class FinalReport(TypedDict):
    changed: int
    last_changed: float
    open: int
    disconnects: dict[str, int]


def _failure(exc: BaseException) -> str:
    if isinstance(exc, websockets.InvalidStatus):
        return f"HTTP {exc.response.status_code}"
    return type(exc).__name__


class SimAgent:
    def __init__(self, n: int, url: str) -> None:
        self.agent = WsAgent(url, (n + 1).to_bytes(16, "big"), TOKEN, CAPS, **{"service.instance.id": f"vm-{n}"})
        # One entry per message awaiting its reply, in order: the send time of a heartbeat of the hold
        # window, None for anything else. A frame the server pushes unasked shifts it by one (rollout
        # only: nothing is pushed in the window).
        self.pending: deque[float | None] = deque()
        self.registered = ""  # the config hash it applied when it registered
        self.changed_at = 0.0  # wall-clock time it first applied another config (the rollout's)


class LoadGenerator:
    def __init__(self, conn: Connection, url: str, first: int, count: int, heartbeat: int, concurrency: int) -> None:
        self.conn, self.heartbeat, self.concurrency = conn, heartbeat, concurrency
        self.agents = [SimAgent(n, url) for n in range(first, first + count)]
        self.connected: list[SimAgent] = []
        self.readers: list[asyncio.Task[None]] = []
        self.beaters: list[asyncio.Task[None]] = []
        self.errors: Counter[str] = Counter()
        self.disconnects: Counter[str] = Counter()
        self.open = 0
        self.stopping = False
        self.window = (math.inf, math.inf)  # perf_counter bounds of the hold window
        self.sent = self.answered = 0
        self.rtt_ms: list[float] = []
        self.seed = first

    async def command(self) -> tuple[Any, ...]:
        message: tuple[Any, ...] = await asyncio.to_thread(self.conn.recv)
        return message

    async def run(self) -> None:
        """Answer the parent's commands, in order: ramp, hold, stop."""
        self.conn.send(("ready",))
        while True:
            command, *args = await self.command()
            if command == "ramp":
                self.conn.send(("ramped", await self.ramp()))
            elif command == "hold":
                self.conn.send(("held", await self.hold(float(args[0]), int(args[1]))))
            elif command == "stop":
                self.conn.send(("stopped", await self.stop()))
                return

    async def ramp(self) -> RampReport:
        """Connect and register every agent, `concurrency` at a time; no heartbeats yet."""
        gate = asyncio.Semaphore(self.concurrency)

        async def start(sim: SimAgent) -> None:
            async with gate:
                try:
                    await sim.agent.connect(ping_interval=None, open_timeout=60)
                    await sim.agent.register()
                except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                    self.errors[_failure(exc)] += 1
                    if sim.agent.ws is not None:
                        await sim.agent.ws.close()
                    return
            if not sim.agent.applied:
                self.errors["no config offered"] += 1
            sim.registered = sim.agent.applied
            self.connected.append(sim)
            self.open += 1
            self.readers.append(asyncio.create_task(self.read(sim)))

        await asyncio.gather(*(start(sim) for sim in self.agents))
        return RampReport(
            connected=len(self.connected),
            configured=sum(1 for sim in self.connected if sim.registered),
            errors=dict(self.errors),
        )

    async def read(self, sim: SimAgent) -> None:
        """Every frame the server sends this agent: replies (heartbeat round trips) and pushed configs."""
        try:
            while True:
                reply = decode(await sim.agent.ws.recv())
                if sim.pending and (sent := sim.pending.popleft()) is not None:
                    self.answered += 1
                    self.rtt_ms.append((time.perf_counter() - sent) * 1000)
                if reply.HasField("remote_config"):
                    sim.pending.append(None)
                    await sim.agent.apply_pushed(reply)
                    if sim.agent.applied != sim.registered and not sim.changed_at:
                        sim.changed_at = time.time()
        except websockets.ConnectionClosed as exc:
            if not self.stopping:
                code = exc.rcvd.code if exc.rcvd is not None else "none"
                self.disconnects[f"{type(exc).__name__} (close code {code})"] += 1
        finally:
            self.open -= 1

    async def beat(self, sim: SimAgent, due: float) -> None:
        """A heartbeat (an AgentToServer with nothing new) every period, on an absolute schedule."""
        try:
            while True:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                if self.window[0] <= due < self.window[1]:
                    self.sent += 1
                    sim.pending.append(time.perf_counter())
                else:
                    sim.pending.append(None)
                await sim.agent.post()
                due += self.heartbeat
        except websockets.ConnectionClosed:
            return  # the reader counts the disconnect

    async def hold(self, start_wall: float, periods: int) -> HoldReport:
        """Start every agent's heartbeats at `start_wall`, each at its own offset within the first period;
        report on the `periods` periods from then on (the heartbeats go on afterwards)."""
        start = time.perf_counter() + (start_wall - time.time())
        self.window = (start, start + periods * self.heartbeat)
        spread = random.Random(self.seed)
        for sim in self.connected:
            self.beaters.append(asyncio.create_task(self.beat(sim, start + spread.uniform(0, self.heartbeat))))
        await asyncio.sleep(self.window[1] + REPLY_GRACE_S - time.perf_counter())
        return HoldReport(
            sent=self.sent,
            answered=self.answered,
            rtt_ms=self.rtt_ms,
            open=self.open,
            disconnects=dict(self.disconnects),
        )

    async def stop(self) -> FinalReport:
        """Report on the rollout, then close every connection (each close waits at most its close_timeout)."""
        report = FinalReport(
            changed=sum(1 for sim in self.connected if sim.changed_at),
            last_changed=max((sim.changed_at for sim in self.connected), default=0.0),
            open=self.open,
            disconnects=dict(self.disconnects),
        )
        self.stopping = True
        for task in self.beaters:
            task.cancel()
        await asyncio.gather(*self.beaters, return_exceptions=True)
        await asyncio.gather(*(sim.agent.ws.close() for sim in self.connected), return_exceptions=True)
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        return report


def generator_process(conn: Connection, url: str, first: int, count: int, heartbeat: int, concurrency: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it
    raise_nofile(count + 256)
    asyncio.run(LoadGenerator(conn, url, first, count, heartbeat, concurrency).run())


# --- the benchmark ---------------------------------------------------------------------------------


def api(port: int, method: str, path: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=300) as response:
        if response.headers.get_content_type() == "application/json":
            return json.loads(response.read())
        return response.read().decode()


class Generators:
    """The load-generator processes and their pipes."""

    def __init__(self, url: str, agents: int, processes: int, heartbeat: int, concurrency: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes: list[BaseProcess] = []
        self.shares: list[int] = []
        first = 0
        for index in range(processes):
            count = agents // processes + (1 if index < agents % processes else 0)
            parent, child = context.Pipe()
            process = context.Process(
                target=generator_process,
                args=(child, url, first, count, heartbeat, concurrency),
                name=f"opamp-load-{index}",
                daemon=True,
            )
            process.start()
            self.pipes.append(parent)
            self.processes.append(process)
            self.shares.append(count)
            first += count
        self.exchange(None, "ready")

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid is not None]

    def send(self, command: tuple[Any, ...]) -> None:
        for pipe in self.pipes:
            pipe.send(command)

    def receive(self, expected: str) -> list[Any]:
        answers = []
        for pipe in self.pipes:
            kind, *payload = pipe.recv()
            if kind != expected:
                raise RuntimeError(f"load generator answered {kind!r}, expected {expected!r}")
            answers.append(payload[0] if payload else None)
        return answers

    def exchange(self, command: tuple[Any, ...] | None, expected: str) -> list[Any]:
        if command is not None:
            self.send(command)
        return self.receive(expected)

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    def rss_mib(self) -> float:
        return sum(rss_mib(pid) for pid in self.pids)

    def close(self, stopped: bool) -> None:
        """Wait for processes that were told to stop; end the others (the benchmark failed)."""
        for process in self.processes:
            if stopped:
                process.join(timeout=30)
            if process.is_alive():
                process.terminate()
                process.join(timeout=10)


def merged(counters: list[dict[str, int]]) -> str:
    total: Counter[str] = Counter()
    for counter in counters:
        total.update(counter)
    return ", ".join(f"{count} {what}" for what, count in total.most_common()) or "none"


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return ordered[max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))]


def line(label: str, text: str) -> None:
    print(f"{label:<38}: {text}", flush=True)


def run(port: int, pid: int, args: argparse.Namespace, revision: Path, server_limits: str) -> None:
    count, heartbeat, periods = args.agents, args.heartbeat, args.periods
    generators = Generators(f"ws://127.0.0.1:{port}/v1/opamp", count, args.generators, heartbeat, args.concurrency)
    stopped = False
    try:
        shares = "/".join(f"{n:,}" for n in sorted(set(generators.shares)))
        print(
            f"server: 1 `otelstack opamp serve` process (pid {pid}); agents: {args.generators} load-generator "
            f"processes (pids {', '.join(map(str, generators.pids))}; {shares} WebSocket agents each, asyncio + "
            f"websockets, no WebSocket pings); all on {os.cpu_count()} cores shared with anything else running, "
            f"not pinned; load average {os.getloadavg()[0]:.2f} at start; server {server_limits}",
            flush=True,
        )
        idle_rss = rss_mib(pid)
        line("server idle", f"{idle_rss:.1f} MiB RSS, {cpu_seconds(pid):.2f} CPU-s since start")

        # 1. ramp-up
        cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        ramped: list[RampReport] = generators.exchange(("ramp",), "ramped")
        ramp_s, ramp_cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
        held_rss = rss_mib(pid)
        connected = sum(r["connected"] for r in ramped)
        configured = sum(r["configured"] for r in ramped)
        line(
            "ramp-up: connected and registered",
            f"{connected:,} of {count:,} agents in {ramp_s:.1f} s ({connected / ramp_s:,.0f} agents/s, "
            f"{args.concurrency} at a time per generator); {configured:,} applied their offered config "
            f"(APPLIED); errors: {merged([r['errors'] for r in ramped])}",
        )
        line(
            "ramp-up: server",
            f"{ramp_cpu:.1f} CPU-s ({ramp_cpu / ramp_s * 100:.0f} % of one core), "
            f"RSS {idle_rss:.0f} -> {held_rss:,.0f} MiB",
        )

        # 2. hold at the heartbeat
        window_s = periods * heartbeat
        start_wall = time.time() + 2.0
        generators.send(("hold", start_wall, periods))
        time.sleep(max(0.0, start_wall - time.time()))
        cpu1, load1, busy1, rss1 = cpu_seconds(pid), generators.cpu_seconds(), machine_busy_seconds(), rss_mib(pid)
        time.sleep(max(0.0, start_wall + window_s - time.time()))
        cpu2, load2, busy2, rss2 = cpu_seconds(pid), generators.cpu_seconds(), machine_busy_seconds(), rss_mib(pid)
        held: list[HoldReport] = generators.receive("held")
        sent, answered = sum(h["sent"] for h in held), sum(h["answered"] for h in held)
        rtts = sorted(ms for h in held for ms in h["rtt_ms"])
        still_open = sum(h["open"] for h in held)
        share = (cpu2 - cpu1) / window_s  # of one core
        line(
            "hold: window",
            f"{window_s} s = {periods} heartbeat period(s) of {heartbeat} s, {connected:,} agents, "
            f"each beat at its own uniformly spread offset",
        )
        line(
            "hold: heartbeats",
            f"{sent:,} sent (expected {connected * periods:,}), {answered:,} answered "
            f"({answered / window_s:,.1f} /s), {sent - answered:,} unanswered {REPLY_GRACE_S:.0f} s after the window",
        )
        if rtts:
            line(
                "hold: heartbeat round trip",
                f"p50 {percentile(rtts, 50):.1f} ms, p99 {percentile(rtts, 99):.1f} ms, max {rtts[-1]:.1f} ms "
                "(send to reply, timed in the load generators)",
            )
        line(
            "hold: disconnects and errors",
            f"{merged([h['disconnects'] for h in held])}; {still_open:,} agents connected after the window",
        )
        line(
            "hold: server CPU",
            f"{cpu2 - cpu1:.2f} CPU-s in {window_s} s = {share * 100:.1f} % of one core (measured, /proc utime+stime)",
        )
        line("hold: server RSS", f"{rss1:,.0f} MiB at the start of the window, {rss2:,.0f} MiB at its end")
        other = (busy2 - busy1) - (cpu2 - cpu1) - (load2 - load1)
        line(
            "hold: rest of the machine",
            f"load generators {(load2 - load1) / window_s * 100:.1f} % of one core, everything else "
            f"{max(0.0, other) / window_s * 100:.1f} % ({os.cpu_count()} cores = {(os.cpu_count() or 1) * 100} %)",
        )
        line(
            f"agents held at a {heartbeat} s heartbeat",
            f"{still_open:,} (measured: connected and beating through the whole window)",
        )
        if share > 0:
            line(
                f"agents one core holds at a {heartbeat} s beat",
                f"{still_open / share:,.0f} (derived: {still_open:,} agents / {share:.3f} of a core measured at "
                f"that load; assumes CPU grows linearly with agents, not measured beyond {still_open:,})",
            )

        # 3. staged rollout
        cpu3, t3, posted = cpu_seconds(pid), time.perf_counter(), time.time()
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
            time.sleep(ROLLOUT_POLL_S)
            rollout = api(port, "GET", f"/api/rollouts/{rollout['id']}")
        observed_s, rollout_cpu = time.perf_counter() - t3, cpu_seconds(pid) - cpu3
        rollout_rss = rss_mib(pid)
        metrics = api(port, "GET", "/metrics")
        prefix = 'agent_fleet_total{status="'
        statuses = [m.removeprefix(prefix).replace('"} ', " ") for m in metrics.splitlines() if m.startswith(prefix)]
        final: list[FinalReport] = generators.exchange(("stop",), "stopped")
        stopped = True
        changed = sum(f["changed"] for f in final)
        last = max(f["last_changed"] for f in final)
        line(
            "rollout: canary 1, waves 10/50/100 %",
            f"{rollout['state']} {rollout['finished_at'] - posted:.1f} s after the POST (server's timestamps; the "
            f"POST took {rollout['created_at'] - posted:.1f} s to plan the waves), wave sizes {rollout['waves']}, "
            f"progress {rollout['progress']:.0%}: {rollout['reason']}",
        )
        line(
            "rollout: the agents' side",
            f"{changed:,} of {still_open:,} connected agents applied the new config (APPLIED), the last one "
            f"{last - posted:.1f} s after the POST"
            if changed
            else "no agent applied a new config",
        )
        line(
            "rollout: server",
            f"{rollout_cpu:.1f} CPU-s in the {observed_s:.1f} s until the poll saw it finished "
            f"({rollout_cpu / observed_s * 100:.0f} % of one core; heartbeats and polls included), "
            f"RSS {rollout_rss:,.0f} MiB",
        )
        line(
            "after: server registry, agent status",
            f"{', '.join(statuses)}; agents still connected at the end {sum(f['open'] for f in final):,}; "
            f"disconnects {merged([f['disconnects'] for f in final])}",
        )

        # per 1,000 agents
        per = 1000 / connected if connected else 0.0
        line(
            "server per 1,000 agents: registration",
            f"{ramp_cpu * per:.2f} CPU-s, {(held_rss - idle_rss) * per:.1f} MiB RSS",
        )
        line(
            f"server per 1,000 agents: {heartbeat} s beat",
            f"{(cpu2 - cpu1) / periods * per:.3f} CPU-s per heartbeat period "
            f"({share * 100 * per:.2f} % of one core), {(rss2 - idle_rss) * per:.1f} MiB RSS (measured, steady state)",
        )
    finally:
        generators.close(stopped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=10_000, help="concurrent WebSocket agents (default 10000)")
    parser.add_argument("--heartbeat", type=int, default=30, help="heartbeat period in seconds (default 30)")
    parser.add_argument("--periods", type=int, default=2, help="heartbeat periods to hold and measure (default 2)")
    parser.add_argument("--generators", type=int, default=2, help="load-generator processes (default 2)")
    parser.add_argument("--concurrency", type=int, default=50, help="registrations at a time per generator")
    args = parser.parse_args()
    if args.agents < 1 or args.heartbeat < 1 or args.periods < 1 or args.generators < 1:
        parser.error("--agents, --heartbeat, --periods and --generators must be positive")
    server_fds = args.agents + 1024
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        revision = work / "configs-r2"
        shutil.copytree(ROOT / "configs", revision)
        level = revision / "dev" / "platform.yaml"
        # A second revision: one more log file for every dev agent (keys are unique within a level file,
        # so the change goes into its existing `tiers:` map).
        doc = yaml.safe_load(level.read_text())
        doc.setdefault("tiers", {}).setdefault("agent", {})["log_include+"] = ["/srv/bench/*.log"]
        level.write_text(yaml.safe_dump(doc, sort_keys=False))
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
            "heartbeat_interval_s": args.heartbeat,
            # The default (10,000) counts WebSocket connections and HTTP requests together.
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
            preexec_fn=nofile_for(server_fds),
        )
        try:
            for _ in range(100):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    break
                except OSError:
                    time.sleep(0.1)
            limit = int(Path(f"/proc/{server.pid}/limits").read_text().split("Max open files")[1].split()[0])
            if limit < server_fds:
                print(f"warning: the server may open only {limit} files, fewer than {server_fds}", file=sys.stderr)
            limits = f"max_connections {args.agents + 100}, open-file limit {limit}"
            run(port, server.pid, args, revision, limits)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)


if __name__ == "__main__":
    main()
