"""A real OpAMP server on 127.0.0.1 for the tests: the aiohttp app in a thread, SQLite in tmp_path; or
a separate `otelstack opamp serve` process, for tests that kill it or limit its resources."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from aiohttp import web

from otelstack.opamp.server import FLEET, build_app
from otelstack.opamp.settings import ServerSettings
from tests.opamp import pgcluster

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
DEV_TOKEN = "dev-token-for-tests-0123456789"
PROD_TOKEN = "prod-token-for-tests-0123456789"
ADMIN_TOKEN = "admin-token-for-tests-0123456789"


def official_client(  # type: ignore[no-untyped-def]
    base_url: str,
    instance: str = "vm-17",
    token: str = DEV_TOKEN,
    environment: str = "dev",
    attributes: dict[str, str] | None = None,
):
    """The official Python OpAMP client (opentelemetry-opamp-client) for one agent, over HTTP;
    ``attributes`` adds non-identifying attributes to its description."""
    from opentelemetry._opamp.client import OpAMPClient

    return OpAMPClient(
        endpoint=f"{base_url}/v1/opamp",
        headers={"Authorization": f"Bearer {token}"},
        agent_identifying_attributes={"service.name": "otelcol-contrib", "service.instance.id": instance},
        agent_non_identifying_attributes={
            "deployment.environment.name": environment,
            "cloud.region": "lab",
            "otelstack.profile": "agent-vm",
            "service.version": "0.159.0",
            **(attributes or {}),
        },
        timeout_millis=5000,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def settings(tmp_path: Path, port: int, **extra: object) -> ServerSettings:
    """Lab settings; ``postgresql=<URL>`` (PgCluster.url) puts the registry there, its password from a file."""
    secrets = tmp_path / "secrets"
    secrets.mkdir(exist_ok=True)
    for name, value in (("dev", DEV_TOKEN), ("prod", PROD_TOKEN), ("admin", ADMIN_TOKEN), ("pg", pgcluster.PASSWORD)):
        (secrets / name).write_text(value + "\n")
    if isinstance(extra.get("postgresql"), str):
        extra["postgresql"] = {"url": extra["postgresql"], "password": {"file": str(secrets / "pg")}}
    raw = {
        "listen": f"127.0.0.1:{port}",
        "configs_dir": str(CONFIGS),
        "database": str(tmp_path / "fleet.db"),
        "allow_insecure": True,
        "tokens": {"dev": {"file": str(secrets / "dev")}, "prod": {"file": str(secrets / "prod")}},
        "admin_token": {"file": str(secrets / "admin")},
        "heartbeat_interval_s": 30,
        **extra,
    }
    if "postgresql" in extra and "database" not in extra:
        del raw["database"]
    return ServerSettings.model_validate(raw)


@pytest.fixture(scope="session")
def pg() -> Iterator[pgcluster.PgCluster]:
    """A PostgreSQL cluster of the test session's own (skipped, saying how, where PostgreSQL is missing)."""
    found = pgcluster.binaries()
    if found is None:
        pytest.skip("PostgreSQL's initdb/pg_ctl are not installed: apt-get install postgresql (tests/lab/setup.sh)")
    cluster = pgcluster.PgCluster(found).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture()
def pg_url(pg: pgcluster.PgCluster) -> str:
    """The URL of a new, empty database in the test cluster."""
    return pg.url(pg.create_database())


@dataclass
class RunningServer:
    port: int
    app: web.Application
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    runner: web.AppRunner

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/opamp"

    @property
    def fleet(self):  # type: ignore[no-untyped-def]
        return self.app[FLEET]

    def call(self, fn):  # type: ignore[no-untyped-def]
        """Run fn() on the server's loop thread (the fleet is not thread-safe) and return its result."""

        async def run():  # type: ignore[no-untyped-def]
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=30)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)


def start_server(server_settings: ServerSettings) -> RunningServer:
    loop = asyncio.new_event_loop()
    app = build_app(server_settings)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        host, port = server_settings.host_port
        loop.run_until_complete(web.TCPSite(runner, host, port).start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30), "server did not start"
    return RunningServer(server_settings.host_port[1], app, loop, thread, runner)


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[RunningServer]:
    running = start_server(settings(tmp_path, free_port()))
    try:
        yield running
    finally:
        running.stop()


def server_process(
    tmp_path: Path, port: int, preexec_fn: Callable[[], None] | None = None, postgresql: str = ""
) -> tuple[subprocess.Popen[bytes], Path]:
    """`otelstack opamp serve` as its own process, settings and database in tmp_path, its output appended to
    tmp_path/server.log; returns once /healthz answers. Called again with the same tmp_path, it restarts
    on the same registry. ``postgresql``: a URL of the test cluster (PgCluster.url) for the registry."""
    settings_file, log = tmp_path / "server.yaml", tmp_path / "server.log"
    registry: dict[str, object] = {"database": str(tmp_path / "fleet.db")}
    if postgresql:
        registry = {"postgresql": {"url": postgresql, "password": {"env": "OPAMP_TEST_PG_PASSWORD"}}}
    settings_file.write_text(
        yaml.safe_dump(
            {
                "listen": f"127.0.0.1:{port}",
                "configs_dir": str(CONFIGS),
                **registry,
                "allow_insecure": True,
                "tokens": {"dev": {"env": "OPAMP_TEST_DEV_TOKEN"}},
                "admin_token": {"env": "OPAMP_TEST_ADMIN_TOKEN"},
            }
        )
    )
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "otelstack.cli", "opamp", "serve", "--settings", str(settings_file)],
            env={
                **os.environ,
                "OPAMP_TEST_DEV_TOKEN": DEV_TOKEN,
                "OPAMP_TEST_ADMIN_TOKEN": ADMIN_TOKEN,
                "OPAMP_TEST_PG_PASSWORD": pgcluster.PASSWORD,
            },
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec_fn,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return proc, log
        except OSError:
            time.sleep(0.1)
    proc.kill()
    proc.wait(timeout=10)
    raise AssertionError(f"server did not start: {log.read_text()[-3000:]}")
