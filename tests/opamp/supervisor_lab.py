"""The REAL opampsupervisor and otelcol-contrib against `otelstack opamp serve`, on loopback, no containers.

The programs are the ones built from their Go modules (`make binaries` links them into .cache/bin/;
``$OTELSTACK_SUPERVISOR`` / ``$OTELSTACK_OTELCOL`` name others). A test that finds them missing is
skipped and says how to build them.

A :class:`Lab` is one VM's worth of files under a test's directory:

* a copy of configs/ whose level file (the region's, else the environment's) gets ``collector_overrides``
  that move the rendered collector config's listening ports to free loopback ports and its files from
  ``/etc/otelcol-contrib/tls`` and ``/var/lib/otelcol-contrib`` into the lab — ports and paths only;
  the server renders its remote configs from the same copy, so they agree with the host's file;
* a throwaway CA in place of ``/etc/otelcol-contrib/tls`` (the same file names), so every TLS hop of the
  rendered configs keeps its TLS;
* the supervisor config otelstack renders for the host, with only its paths and the server's address
  changed (:meth:`Lab.supervisor_config`).

:class:`LabServer` is the OpAMP server in-process (plain or TLS), with a record of every message the
agents sent and every reply, so a test can show what the real supervisor said.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from opentelemetry._opamp.proto import opamp_pb2 as pb

from otelstack.dist.locate import locate
from otelstack.opamp import protocol
from otelstack.opamp.server import FLEET, build_app, ssl_context
from otelstack.opamp.settings import ServerSettings
from otelstack.render import profile as profile_of
from otelstack.render import render_agent_config, render_supervisor_config
from otelstack.security.layout import VM
from tests.integration.pki_helpers import LabPki, make_pki
from tests.opamp.conftest import ADMIN_TOKEN, CONFIGS, free_port

ROOT = Path(__file__).resolve().parents[2]
PROGRAM_ENV = {"opampsupervisor": "OTELSTACK_SUPERVISOR", "otelcol-contrib": "OTELSTACK_OTELCOL"}
TOKENS = {env: f"{env}-token-for-real-supervisor-0123456789" for env in ("dev", "staging", "prod")}
ENV_REFERENCE = re.compile(r"(?<!\$)\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")
LISTEN = re.compile(r"^(0\.0\.0\.0|127\.0\.0\.1|localhost|\[::\])?:(\d+)$")


def real_program(name: str) -> Path:
    """The real program built from its Go module, found like `otelstack validate` finds it ($OTELSTACK_…,
    .cache/bin, the build cache). The test fails when it has not been built: it is what users run."""
    found = locate(name)
    if found is None:
        pytest.fail(f"the real {name} is not built here: run `make binaries` (or set ${PROGRAM_ENV[name]})")
    return Path(found).resolve()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


# --- the server --------------------------------------------------------------------------------------


@dataclass
class Exchange:
    """One AgentToServer message and the server's reply (or an unasked push: message is None)."""

    at: float
    uid: str
    message: pb.AgentToServer | None
    reply: pb.ServerToAgent


@dataclass
class LabServer:
    port: int
    tls: bool
    app: web.Application
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    runner: web.AppRunner
    exchanges: list[Exchange] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ca_file: Path | None = None

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def api(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            self.base_url + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "application/json"},
        )
        context = ssl.create_default_context(cafile=str(self.ca_file)) if self.tls else None
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return json.loads(response.read())

    def agents(self) -> list[dict[str, Any]]:
        return list(self.api("GET", "/api/agents"))

    def the_agent(self) -> dict[str, Any] | None:
        agents = self.agents()
        return agents[0] if len(agents) == 1 else None

    def sent_by(self, uid: str) -> list[pb.AgentToServer]:
        with self.lock:
            return [e.message for e in self.exchanges if e.uid == uid and e.message is not None]

    def replies_to(self, uid: str) -> list[pb.ServerToAgent]:
        with self.lock:
            return [e.reply for e in self.exchanges if e.uid == uid]

    def effective_config(self, uid: str) -> dict[str, Any] | None:
        """The last effective config the agent reported (the collector's own view, through the supervisor)."""
        for message in reversed(self.sent_by(uid)):
            if message.HasField("effective_config"):
                files = message.effective_config.config_map.config_map
                if "" in files:
                    loaded = yaml.safe_load(files[""].body)
                    return loaded if isinstance(loaded, dict) else None
        return None

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)


def server_settings(tmp: Path, port: int, configs: Path, pki: LabPki | None, **extra: Any) -> ServerSettings:
    secrets = tmp / "server-secrets"
    secrets.mkdir(exist_ok=True)
    for name, value in (*TOKENS.items(), ("admin", ADMIN_TOKEN)):
        (secrets / name).write_text(value + "\n")
    raw: dict[str, Any] = {
        "listen": f"127.0.0.1:{port}",
        "configs_dir": str(configs),
        "database": str(tmp / "fleet.db"),
        "tokens": {env: {"file": str(secrets / env)} for env in TOKENS},
        "admin_token": {"file": str(secrets / "admin")},
        **extra,
    }
    if pki is None:
        raw["allow_insecure"] = True
    else:
        raw["tls"] = {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}
    return ServerSettings.model_validate(raw)


def start_lab_server(settings: ServerSettings, ca_file: Path | None = None) -> LabServer:
    """The server's aiohttp app in a thread (TLS when the settings have it), recording every exchange."""
    loop = asyncio.new_event_loop()
    app = build_app(settings)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    host, port = settings.host_port
    server = LabServer(port, settings.tls is not None, app, loop, threading.Thread(), runner, ca_file=ca_file)
    fleet = app[FLEET]
    handle, push = fleet.handle, fleet.push

    def recorded_handle(message: pb.AgentToServer, **kw: Any) -> pb.ServerToAgent:
        reply = handle(message, **kw)
        uid = protocol.uid_text(reply.agent_identification.new_instance_uid or message.instance_uid)
        with server.lock:
            server.exchanges.append(Exchange(time.time(), uid, message, reply))
        return reply

    def recorded_push(uid: str) -> pb.ServerToAgent | None:
        reply = push(uid)
        if reply is not None:
            with server.lock:
                server.exchanges.append(Exchange(time.time(), uid, None, reply))
        return reply

    # The instance's methods, for this test only.
    fleet.handle, fleet.push = recorded_handle, recorded_push  # type: ignore[method-assign]
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, host, port, ssl_context=ssl_context(settings)).start())
        ready.set()
        loop.run_forever()

    server.thread = threading.Thread(target=run, daemon=True)
    server.thread.start()
    assert ready.wait(30), "server did not start"
    return server


# --- one VM's files ----------------------------------------------------------------------------------


def _adapt(node: Any, paths: Callable[[str], str], ports: dict[str, int], where: str = "") -> Any:
    """``node`` with VM paths moved into the lab and listening ports made free loopback ports; None when
    nothing under it changes. A changed list is returned whole (levels replace lists)."""
    if isinstance(node, Mapping):
        changed: dict[str, Any] = {}
        if set(node) >= {"host", "port"} and str(node["host"]) in ("0.0.0.0", "127.0.0.1", "localhost"):
            ports[f"{where}.port"] = free_port()  # a prometheus pull reader (the collector's own metrics)
            changed = {"host": "127.0.0.1", "port": ports[f"{where}.port"]}
        for key, value in node.items():
            if key in changed:
                continue
            if key == "endpoint" and isinstance(value, str) and LISTEN.match(value):
                ports[f"{where}.{key}"] = free_port()
                changed[key] = f"127.0.0.1:{ports[f'{where}.{key}']}"
                continue
            sub = _adapt(value, paths, ports, f"{where}.{key}" if where else str(key))
            if sub is not None:
                changed[key] = sub
        return changed or None
    if isinstance(node, list):
        items = [_adapt(item, paths, ports, f"{where}[{i}]") for i, item in enumerate(node)]
        if all(item is None for item in items):
            return None
        return [node[i] if item is None else merge(node[i], item) for i, item in enumerate(items)]
    if isinstance(node, str):
        moved = paths(node)
        return moved if moved != node else None
    return None


def merge(base: Any, over: Any) -> Any:
    if isinstance(base, Mapping) and isinstance(over, Mapping):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = merge(base.get(key), value) if key in base else value
        return merged
    return over


class Lab:
    """One VM (environment, region, profile) in ``tmp``; see the module docstring."""

    def __init__(self, tmp: Path, environment: str, region: str | None, profile: str) -> None:
        self.tmp, self.environment, self.region, self.profile = tmp, environment, region, profile
        self.tier = profile_of(profile).tier
        self.pki = make_pki(tmp / "tls")
        self.state = tmp / "state"
        self.storage = tmp / "supervisor"
        self.configs = tmp / "configs"
        shutil.copytree(CONFIGS, self.configs)
        original = render_agent_config(self.configs, environment, region, profile=profile)
        self.ports: dict[str, int] = {}
        overrides = _adapt(yaml.safe_load(original.text), self.move, self.ports) or {}
        level = self.configs / environment / (region or "") / "platform.yaml"
        document = yaml.safe_load(level.read_text()) or {}
        existing = document.setdefault("collector_overrides", {}).get(self.tier, {})
        document["collector_overrides"][self.tier] = merge(existing, overrides)
        level.write_text(yaml.safe_dump(document, sort_keys=False))
        self.rendered = render_agent_config(self.configs, environment, region, profile=profile)
        leftovers = [p for p in (VM.tls_dir, VM.state_dir, "0.0.0.0") if p in self.rendered.text]
        assert not leftovers, f"the lab's collector config still has {leftovers}"
        self.base = tmp / "etc" / f"{profile}.yaml"
        self.base.parent.mkdir()
        self.base.write_text(self.rendered.text)
        config = yaml.safe_load(self.rendered.text)
        self.health_port = int(config["extensions"]["health_check"]["endpoint"].rsplit(":", 1)[1])
        self.supervisor_file = tmp / "supervisor.yaml"
        self.log = tmp / "supervisor.log"

    def move(self, value: str) -> str:
        """A VM path in the lab: the TLS directory is the test CA's, state goes under state/."""
        if value.startswith(VM.tls_dir + "/"):
            return str(self.pki.ca.parent / value[len(VM.tls_dir) + 1 :])
        if value.startswith(VM.state_dir + "/"):
            return str(self.state / value[len(VM.state_dir) + 1 :])
        if value == f"{VM.config_dir}/{self.profile}.yaml":
            return str(self.base)
        if value == VM.binary:
            return str(real_program("otelcol-contrib"))
        return value

    def rendered_supervisor(self) -> dict[str, Any]:
        text = render_supervisor_config(self.configs, self.environment, self.region, profile=self.profile).text
        loaded = yaml.safe_load(text)
        assert isinstance(loaded, dict)
        return loaded

    def supervisor_config(self, server: LabServer, scheme: str | None = None, **agent: Any) -> dict[str, Any]:
        """The rendered supervisor config with its paths in the lab and its server at ``server``
        (``scheme`` http/https instead of ws/wss: the other transport); ``agent`` keys override
        ``agent:`` settings (each test says why). Written to supervisor.yaml and returned."""
        config = self.rendered_supervisor()
        endpoint = re.match(r"^(wss?|https?)://[^/]+(/.*)$", config["server"]["endpoint"])
        assert endpoint, config["server"]["endpoint"]
        given = endpoint.group(1)
        if scheme is not None:
            given = {"ws": scheme, "wss": scheme + "s", "http": scheme, "https": scheme + "s"}[given]
        tls = given in ("wss", "https")
        assert tls == server.tls, f"{given}:// against a {'TLS' if server.tls else 'plain'} server"
        config["server"]["endpoint"] = f"{given}://127.0.0.1:{server.port}{endpoint.group(2)}"
        server_tls = config["server"]["tls"]
        config["server"]["tls"] = {k: self.move(v) if isinstance(v, str) else v for k, v in server_tls.items()}
        agent_config = config["agent"]
        agent_config["executable"] = self.move(agent_config["executable"])
        agent_config["config_files"] = [self.move(f) for f in agent_config["config_files"]]
        agent_config["startup_fallback_configs"] = [self.move(f) for f in agent_config["startup_fallback_configs"]]
        assert config["storage"]["directory"] == VM.supervisor_state_dir
        config["storage"]["directory"] = str(self.storage)
        config["agent"].update(agent)
        self.supervisor_file.write_text(yaml.safe_dump(config, sort_keys=False))
        return config

    def environment_variables(self) -> dict[str, str]:
        """What the host's unit gives the supervisor (the role's env file): the OpAMP token, and a value
        for every other ${env:…} the configs reference (the collector inherits the supervisor's)."""
        supervisor = yaml.safe_load(self.supervisor_file.read_text())
        names = set(ENV_REFERENCE.findall(self.rendered.text + self.supervisor_file.read_text()))
        values = {name: f"lab-value-of-{name.lower()}" for name in names}
        for name in ENV_REFERENCE.findall(json.dumps(supervisor["server"].get("headers", {}))):
            values[name] = TOKENS[self.environment]  # the bearer token of the host's environment
        return values

    def healthy(self) -> bool:
        return self.health() is not None

    def health(self) -> dict[str, Any] | None:
        """The collector's health_check answer (status, upSince), or None when it does not answer 200."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/", timeout=2) as response:
                if response.status != 200:
                    return None
                loaded = json.loads(response.read() or b"{}")
                return loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            return None

    def effective_file(self) -> dict[str, Any]:
        loaded = yaml.safe_load((self.storage / "effective.yaml").read_text())
        assert isinstance(loaded, dict)
        return loaded


# --- the supervisor process ---------------------------------------------------------------------------


# The supervisor's log line once it is past bootstrap.
STARTED = '"msg":"Supervisor starting"'
# opampsupervisor 0.158.0 reads the output of `otelcol-contrib featuregate` in goroutines that race with
# cmd.Wait() (commander.StartOneShot: "read |0: file already closed"); when it loses the race it does not
# see service.AllowNoPipelines and bootstraps the collector with a `nop` receiver (measured: 1 start in 20).
# otelstack's distribution therefore carries the nop receiver (catalog); no start is retried.


class Supervisor:
    """The real opampsupervisor on a lab's supervisor.yaml, in its own session (the collector it starts
    is in the same process group, so nothing outlives the test). Returns once it is past bootstrap."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        offset = lab.log.stat().st_size if lab.log.exists() else 0
        with lab.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(real_program("opampsupervisor")), "--config", str(lab.supervisor_file)],
                env={**os.environ, **lab.environment_variables()},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def started() -> str | None:
            if STARTED in self.log()[offset:]:
                return "started"
            return "exited" if self.proc.poll() is not None else None

        if wait_for("the supervisor to start", started, timeout=90) != "started":
            self._kill_session()
            pytest.fail(f"opampsupervisor did not start:\n{self.log()[offset:][-4000:]}")

    def log(self) -> str:
        return self.lab.log.read_text(errors="replace") if self.lab.log.exists() else ""

    def collector_pids(self) -> list[int]:
        """Live processes whose parent is the supervisor (the collector it runs)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            fields = text[text.rindex(")") + 2 :].split()
            if int(fields[1]) == self.proc.pid and fields[0] != "Z":
                found.append(int(stat.parent.name))
        return found

    def collector_pid(self) -> int | None:
        pids = self.collector_pids()
        return pids[0] if len(pids) == 1 else None

    def _kill_session(self) -> None:
        # Whatever is left of the session we started (its own process group: only our processes).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, as systemd stops it: the supervisor stops its collector and exits."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)
        self._kill_session()


@contextlib.contextmanager
def running(lab: Lab) -> Iterator[Supervisor]:
    supervisor = Supervisor(lab)
    try:
        yield supervisor
    finally:
        supervisor.stop()


def supervisor_parts(effective: Mapping[str, Any], rendered: Mapping[str, Any]) -> dict[str, Any]:
    """Split the file the supervisor gives its collector (storage/effective.yaml) into what it merged
    from our files and what it added itself. Returns {"rest": the config without its additions,
    "opamp": its opamp extension, "resource": the collector's telemetry resource attributes}.

    It adds: the ``opamp`` extension (pointing at its own local OpAMP server) and its place in
    ``service.extensions``; the collector's log output (stdout/stderr); and its telemetry resource, as
    ``attributes`` (name/value list), holding our legacy resource map, every attribute of the agent
    description and ``service.instance.id``."""
    config = json.loads(json.dumps(effective))
    opamp = config.get("extensions", {}).pop("opamp", None)
    service = config.get("service", {})
    service["extensions"] = [e for e in service.get("extensions", []) if e != "opamp"]
    logs = service.get("telemetry", {}).get("logs", {})
    for key in ("output_paths", "error_output_paths"):
        if logs.get(key) == ["stdout" if key == "output_paths" else "stderr"]:
            logs.pop(key)
    resource = service.get("telemetry", {}).pop("resource", {})
    ours = rendered.get("service", {}).get("telemetry", {}).get("resource")
    if ours is not None:
        service["telemetry"]["resource"] = ours
    attributes = {a["name"]: a["value"] for a in resource.get("attributes", [])}
    return {"rest": config, "opamp": opamp, "resource": attributes}


def component_ids(config: Mapping[str, Any]) -> dict[str, list[str]]:
    """Component ids per kind, and the pipelines: what a collector's effective config runs, whatever
    defaults it filled in around them."""
    ids = {kind: sorted(config.get(kind) or {}) for kind in ("receivers", "processors", "exporters", "extensions")}
    ids["connectors"] = sorted(config.get("connectors") or {})
    ids["service.extensions"] = sorted(config.get("service", {}).get("extensions", []))
    return ids


def pipelines(config: Mapping[str, Any]) -> dict[str, dict[str, list[str]]]:
    return {
        name: {part: list(pipeline.get(part) or []) for part in ("receivers", "processors", "exporters")}
        for name, pipeline in config.get("service", {}).get("pipelines", {}).items()
    }
