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

Then the same again with two server replicas on one PostgreSQL registry (a throwaway cluster the bench
starts, tests/opamp/pgcluster.py), each load generator pointed at one replica so the agents are spread over
both; the rollout there is started on one replica and selects --rollout-agents agents (by an attribute of
theirs) out of all of them. The last lines print the two runs side by side.

The agents send no WebSocket pings: the OpAMP heartbeat is their only traffic. "Agents one core holds" is
derived from the CPU share measured at the load that really ran (linear scaling assumed), and printed
next to the number really held. The machine's cores are shared by the server, the load generators and
whatever else runs, so the header and the hold lines say how busy the machine was. Usage:
    python bench/opamp_fleet.py [--agents 10000] [--heartbeat 30] [--periods 2] [--generators 2]
    python bench/opamp_fleet.py --agents 1000 --replica-agents 2000 --rollout-agents 1000 --heartbeat 5
    python bench/opamp_fleet.py --replica-agents 0                # one process only
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
from tests.opamp import pgcluster  # noqa: E402 - the throwaway PostgreSQL cluster the tests use too
from tests.opamp.wsagent import CAPS, WsAgent, decode  # noqa: E402 - the simulated collector the tests use too

TOKEN, ADMIN = "bench-dev-token-000000000000", "bench-admin-token-0000000000"
TICKS = os.sysconf("SC_CLK_TCK")
REPLY_GRACE_S = 5.0  # after the hold window, how long a heartbeat sent in it may still be answered
# Each GET /api/rollouts/<id> makes the server check every released agent, so it is polled sparingly;
# the durations printed come from the server's and the agents' timestamps, not from the polling.
ROLLOUT_POLL_S = 5.0
# The attribute of the agents a rollout selects (the first --rollout-agents of them: "yes"; the others "no").
ROLLOUT_ATTRIBUTE = "bench.rollout"


# --- reading /proc ---------------------------------------------------------------------------------


def cpu_seconds(pid: int | list[int]) -> float:
    """utime+stime of a process, or the sum over processes."""
    if isinstance(pid, list):
        return sum(cpu_seconds(p) for p in pid)
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid: int | list[int]) -> float:
    """VmRSS of a process, or the sum over processes."""
    if isinstance(pid, list):
        return sum(rss_mib(p) for p in pid)
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def database_pss_mib(postmaster: int) -> float:
    """Proportional set size of a PostgreSQL server and its backends (shared buffers counted once, shared
    among the processes that touched them), from /proc/<pid>/smaps_rollup."""
    pids = [postmaster] + [
        int(p) for p in Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split() if p.isdigit()
    ]
    total = 0.0
    for pid in pids:
        try:
            for row in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if row.startswith("Pss:"):
                    total += int(row.split()[1]) / 1024
        except OSError:  # a backend that ended meanwhile
            continue
    return total


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
    def __init__(self, n: int, url: str, selected: bool) -> None:
        attributes = {"service.instance.id": f"vm-{n}", ROLLOUT_ATTRIBUTE: "yes" if selected else "no"}
        self.agent = WsAgent(url, (n + 1).to_bytes(16, "big"), TOKEN, CAPS, **attributes)
        # One entry per message awaiting its reply, in order: the send time of a heartbeat of the hold
        # window, None for anything else. A frame the server pushes unasked shifts it by one (rollout
        # only: nothing is pushed in the window).
        self.pending: deque[float | None] = deque()
        self.registered = ""  # the config hash it applied when it registered
        self.changed_at = 0.0  # wall-clock time it first applied another config (the rollout's)


class LoadGenerator:
    def __init__(
        self, conn: Connection, url: str, agents: list[int], rollout_agents: int, heartbeat: int, concurrency: int
    ) -> None:
        self.conn, self.heartbeat, self.concurrency = conn, heartbeat, concurrency
        self.agents = [SimAgent(n, url, n < rollout_agents) for n in agents]
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
        self.seed = agents[0] if agents else 0

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


def generator_process(
    conn: Connection, url: str, agents: list[int], rollout_agents: int, heartbeat: int, concurrency: int
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it
    raise_nofile(len(agents) + 256)
    asyncio.run(LoadGenerator(conn, url, agents, rollout_agents, heartbeat, concurrency).run())


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

    def __init__(
        self, urls: list[str], agents: int, rollout_agents: int, processes: int, heartbeat: int, concurrency: int
    ) -> None:
        """Agent n goes to generator n % processes, and generator i to urls[i % len(urls)]: the agents a
        rollout selects (the first rollout_agents) are spread over every generator and server alike."""
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes: list[BaseProcess] = []
        self.shares: list[int] = []
        for index in range(processes):
            share = list(range(index, agents, processes))
            count = len(share)
            parent, child = context.Pipe()
            process = context.Process(
                target=generator_process,
                args=(child, urls[index % len(urls)], share, rollout_agents, heartbeat, concurrency),
                name=f"opamp-load-{index}",
                daemon=True,
            )
            process.start()
            self.pipes.append(parent)
            self.processes.append(process)
            self.shares.append(count)
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


def run(
    ports: list[int],
    pid: list[int],
    count: int,
    args: argparse.Namespace,
    revision: Path,
    server_limits: str,
    database: int = 0,
) -> dict[str, float]:
    """One measured run against the servers on ``ports`` (processes ``pid``); returns the figures compared."""
    heartbeat, periods, port = args.heartbeat, args.periods, ports[0]
    rollout_agents = min(count, args.rollout_agents)
    urls = [f"ws://127.0.0.1:{p}/v1/opamp" for p in ports]
    generators = Generators(urls, count, rollout_agents, args.generators, heartbeat, args.concurrency)
    stopped = False
    try:
        shares = "/".join(f"{n:,}" for n in sorted(set(generators.shares)))
        print(
            f"server: {len(pid)} `otelstack opamp serve` process(es) (pid {', '.join(map(str, pid))}); agents: "
            f"{args.generators} load-generator "
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
        database_mib = database_pss_mib(database) if database else 0.0
        if database:
            line("hold: PostgreSQL", f"{database_mib:,.0f} MiB PSS (postmaster and backends) at the end of the window")
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
                "selector": {ROLLOUT_ATTRIBUTE: "yes"},
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
            f"{changed:,} of the {rollout_agents:,} agents it selects ({still_open:,} connected in all) applied the "
            "new config (APPLIED), the last one "
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
        return {
            "held": float(still_open),
            "rss": rss2,
            "database": database_mib,
            "ramp_rate": connected / ramp_s,
            "ramp_cpu_per_1000": ramp_cpu * per,
            "mib_per_1000": (rss2 - idle_rss) * per,
            "cpu_per_1000": share * 100 * per,
            "rollout_agents": float(rollout_agents),
            "changed": float(changed),
            "rollout_s": last - posted if changed else math.nan,
            "rollout_state_s": rollout["finished_at"] - posted if rollout["finished_at"] else math.nan,
        }
    finally:
        generators.close(stopped)


SERVE = [sys.executable, "-m", "otelstack.cli", "opamp", "serve"]


def serve(
    work: Path, name: str, agents: int, heartbeat: int, registry: dict[str, Any]
) -> tuple[subprocess.Popen[bytes], int]:
    """One `otelstack opamp serve` process for ``agents`` connections, once /healthz answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = {
        "listen": f"127.0.0.1:{port}",
        "configs_dir": str(ROOT / "configs"),
        **registry,
        "allow_insecure": True,
        "tokens": {"dev": {"env": "BENCH_TOKEN"}},
        "admin_token": {"env": "BENCH_ADMIN"},
        "heartbeat_interval_s": heartbeat,
        # The default (10,000) counts WebSocket connections and HTTP requests together.
        "limits": {"max_connections": agents + 100},
    }
    (work / f"{name}.yaml").write_text(yaml.safe_dump(settings))
    server = subprocess.Popen(
        [*SERVE, "--settings", str(work / f"{name}.yaml"), "--log-level", "warning"],
        env={**os.environ, "BENCH_TOKEN": TOKEN, "BENCH_ADMIN": ADMIN, "BENCH_PG_PASSWORD": pgcluster.PASSWORD},
        preexec_fn=nofile_for(agents + 1024),
    )
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            break
        except OSError:
            if server.poll() is not None:
                raise RuntimeError(f"the server {name} exited with {server.returncode}") from None
            time.sleep(0.1)
    limit = int(Path(f"/proc/{server.pid}/limits").read_text().split("Max open files")[1].split()[0])
    if limit < agents + 1024:
        print(f"warning: the server may open only {limit} files, fewer than {agents + 1024}", file=sys.stderr)
    return server, port


def stop(servers: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM, and SIGKILL for a server still there a minute later (a benchmark leaves no process behind)."""
    for server in servers:
        server.send_signal(signal.SIGTERM)
    for server in servers:
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            print(f"server pid {server.pid} did not stop within 60 s of SIGTERM: killed", file=sys.stderr)
            server.kill()
            server.wait(timeout=10)


def side_by_side(results: dict[str, dict[str, float]]) -> None:
    print("\nside by side", flush=True)
    rows = [
        ("agents held (connected, beating)", lambda r: f"{r['held']:,.0f}"),
        ("server RSS in all", lambda r: f"{r['rss']:,.0f} MiB ({r['rss'] / 1024:.2f} GiB)"),
        (
            "with PostgreSQL (PSS)",
            lambda r: (
                f"{r['rss'] + r['database']:,.0f} MiB ({(r['rss'] + r['database']) / 1024:.2f} GiB)"
                if r["database"]
                else "-"
            ),
        ),
        ("server MiB per 1,000 agents", lambda r: f"{r['mib_per_1000']:.1f}"),
        ("registration: agents/s, CPU-s per 1,000", lambda r: f"{r['ramp_rate']:,.0f}/s, {r['ramp_cpu_per_1000']:.2f}"),
        ("server % of a core per 1,000 agents", lambda r: f"{r['cpu_per_1000']:.2f}"),
        ("rollout: agents it selects", lambda r: f"{r['rollout_agents']:,.0f} ({r['changed']:,.0f} applied)"),
        ("rollout: last agent applied after", lambda r: f"{r['rollout_s']:.1f} s"),
        ("rollout: server says succeeded after", lambda r: f"{r['rollout_state_s']:.1f} s"),
    ]
    names = list(results)
    print(f"{'':<38}  " + "".join(f"{name:<34}" for name in names))
    for label, cell in rows:
        print(f"{label:<38}: " + "".join(f"{cell(results[name]):<34}" for name in names), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=10_000, help="agents of the one-process run (default 10000)")
    parser.add_argument(
        "--replica-agents",
        type=int,
        default=40_000,
        help="agents of the two-replica run on PostgreSQL (default 40000; 0: no such run)",
    )
    parser.add_argument(
        "--rollout-agents", type=int, default=10_000, help="agents the rollout of each run selects (default 10000)"
    )
    parser.add_argument("--heartbeat", type=int, default=30, help="heartbeat period in seconds (default 30)")
    parser.add_argument("--periods", type=int, default=2, help="heartbeat periods to hold and measure (default 2)")
    parser.add_argument("--generators", type=int, default=2, help="load-generator processes (default 2)")
    parser.add_argument("--concurrency", type=int, default=50, help="registrations at a time per generator")
    args = parser.parse_args()
    if args.agents < 1 or args.heartbeat < 1 or args.periods < 1 or args.generators < 1 or args.rollout_agents < 1:
        parser.error("--agents, --rollout-agents, --heartbeat, --periods and --generators must be positive")
    if args.replica_agents and pgcluster.binaries() is None:
        parser.error(
            "the two-replica run needs PostgreSQL's initdb/pg_ctl (apt-get install postgresql); or --replica-agents 0"
        )
    results: dict[str, dict[str, float]] = {}
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

        print("== one process, SQLite", flush=True)
        server, port = serve(work, "single", args.agents, args.heartbeat, {"database": str(work / "fleet.db")})
        try:
            limits = f"max_connections {args.agents + 100}"
            results["1 process, SQLite"] = run([port], [server.pid], args.agents, args, revision, limits)
        finally:
            stop([server])

        if args.replica_agents:
            print("\n== two replicas, PostgreSQL", flush=True)
            cluster = pgcluster.PgCluster(pgcluster.binaries() or Path(), max_connections="50").start()
            servers: list[subprocess.Popen[bytes]] = []
            try:
                registry = {
                    "postgresql": {
                        "url": cluster.url(cluster.create_database("bench")),
                        "password": {"env": "BENCH_PG_PASSWORD"},
                    }
                }
                share = -(-args.replica_agents // 2)
                ports = []
                for name in ("replica-a", "replica-b"):
                    server, port = serve(work, name, share, args.heartbeat, registry)
                    servers.append(server)
                    ports.append(port)
                pids = [s.pid for s in servers]
                postgres_pids = [int(Path(cluster.data / "postmaster.pid").read_text().split()[0])]
                limits = f"max_connections {share + 100} each; PostgreSQL 15 (pid {postgres_pids[0]}) counted apart"
                results["2 replicas, PostgreSQL"] = run(
                    ports, pids, args.replica_agents, args, revision, limits, database=postgres_pids[0]
                )
            except (OSError, RuntimeError, TimeoutError) as exc:  # printed; the one-process figures still are
                print(f"the two-replica run failed: {exc!r}", flush=True)
            finally:
                stop(servers)
                cluster.stop()
    side_by_side(results)


if __name__ == "__main__":
    main()
