"""The collectors of the data-path test: rendered by otelstack, run by the real ``otelcol-contrib``.

Rendering goes through the project's own path (a ``configs/`` hierarchy, :func:`load_spec` with a host
level, :func:`render_collector` and its validator). The rendered configs are for a VM: absolute paths
under ``/etc/otelcol-contrib`` and ``/var/lib/otelcol-contrib`` and fixed ports on ``0.0.0.0``. Several
collectors share this machine in the test and must not touch the host's paths nor listen off loopback,
so :func:`localise` changes exactly those values — and nothing else — before the binary runs them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from otelstack.dist.locate import locate
from otelstack.model.loader import load_spec
from otelstack.render import render_collector
from otelstack.security.layout import VM

REPO = Path(__file__).resolve().parents[3]
LOOPBACK = "127.0.0.1"


def find_collector() -> Path | None:
    """The real otelcol-contrib (``make binaries``), found like ``otelstack validate`` finds it."""
    found = locate("otelcol-contrib")
    return Path(found).resolve() if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Ports:
    otlp_grpc: int
    otlp_http: int
    health: int
    metrics: int

    @classmethod
    def allocate(cls) -> Ports:
        return cls(free_port(), free_port(), free_port(), free_port())


# --- rendering ---------------------------------------------------------------------------------------


def write_environment(dest: Path, env: str, platform: Mapping[str, Any]) -> Path:
    """A copy of the repository's ``configs/`` with one more environment, ``configs/<env>/platform.yaml``."""
    configs = dest / "configs"
    shutil.copytree(REPO / "configs", configs)
    (configs / env).mkdir()
    (configs / env / "platform.yaml").write_text(yaml.safe_dump(dict(platform), sort_keys=False))
    return configs


def render(configs: Path, env: str, profile: str, host: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One profile rendered and validated by otelstack, ``host`` being the agent (host_vars) level."""
    spec = load_spec(configs, env, agent=host)
    rendered = render_collector(spec, profile)  # raises if otelstack's validator finds an error
    data = yaml.safe_load(rendered.text)
    assert isinstance(data, dict)
    return data


def localise(config: dict[str, Any], *, ports: Ports, tls_dir: Path, state_dir: Path) -> list[str]:
    """Point one rendered VM config at this test's files and loopback ports, in place; returns the changes.

    Why: the VM layout (``otelstack.security.layout``) is fixed and absolute, and every collector listens
    on the same well-known ports. Changed, and only these: TLS files under ``VM.tls_dir`` → ``tls_dir``;
    ``file_storage`` directories under ``VM.state_dir`` → ``state_dir``; the OTLP receiver, health_check and
    self-metrics listeners → 127.0.0.1 on ``ports``. Everything else runs exactly as rendered.
    """
    changes: list[str] = []
    prefixes = ((VM.tls_dir + "/", f"{tls_dir}/"), (VM.state_dir + "/", f"{state_dir}/"))

    def walk(node: Any, where: str) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, f"{where}.{k}" if where else str(k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, f"{where}[{i}]") for i, v in enumerate(node)]
        if isinstance(node, str):
            for old, new in prefixes:
                if node.startswith(old):
                    changes.append(f"{where}: {node} -> {new}{node[len(old) :]}")
                    return new + node[len(old) :]
        return node

    def listen(section: dict[str, Any], key: str, value: Any, where: str) -> None:
        changes.append(f"{where}.{key}: {section[key]} -> {value}")
        section[key] = value

    config.update(walk(config, ""))
    protocols = config["receivers"]["otlp"]["protocols"]
    listen(protocols["grpc"], "endpoint", f"{LOOPBACK}:{ports.otlp_grpc}", "receivers.otlp.protocols.grpc")
    listen(protocols["http"], "endpoint", f"{LOOPBACK}:{ports.otlp_http}", "receivers.otlp.protocols.http")
    listen(config["extensions"]["health_check"], "endpoint", f"{LOOPBACK}:{ports.health}", "extensions.health_check")
    prometheus = config["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]["prometheus"]
    listen(prometheus, "host", LOOPBACK, "service.telemetry.metrics.readers[0]...prometheus")
    listen(prometheus, "port", ports.metrics, "service.telemetry.metrics.readers[0]...prometheus")
    return changes


# --- processes ---------------------------------------------------------------------------------------

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse_prometheus(text: str) -> list[Sample]:
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if m:
            labels = dict(LABEL.findall(m.group(2) or ""))
            out.append(Sample(m.group(1), labels, float(m.group(3))))
    return out


@dataclass
class Collector:
    """One otelcol-contrib process with its own config, ports and directories."""

    name: str
    binary: Path
    config: dict[str, Any]
    ports: Ports
    workdir: Path
    env: dict[str, str]
    changes: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.yaml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "collector.log"

    @property
    def otlp_grpc(self) -> str:
        return f"{LOOPBACK}:{self.ports.otlp_grpc}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts} ---\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [str(self.binary), f"--config={self.config_path}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **self.env},
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _get(self, port: int, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://{LOOPBACK}:{port}{path}", timeout=2) as resp:
                return int(resp.status), resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, ""
        except OSError:
            return 0, ""

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Wait until health_check says available and :metrics serves; returns the seconds it took."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited ({self.proc and self.proc.returncode}):\n{self.log_tail()}")
            if self._get(self.ports.health, "/")[0] == 200 and self._get(self.ports.metrics, "/metrics")[0] == 200:
                return time.monotonic() - start
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready after {timeout:.0f}s:\n{self.log_tail()}")

    def healthy(self) -> bool:
        return self._get(self.ports.health, "/")[0] == 200

    def metrics(self) -> list[Sample]:
        status, text = self._get(self.ports.metrics, "/metrics")
        if status != 200:
            raise RuntimeError(f"{self.name}: /metrics answered {status}")
        return parse_prometheus(text)

    def metric_sum(self, name: str, **labels: str) -> float:
        return sum(
            s.value for s in self.metrics() if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush — what a crash or the OOM killer does."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_lines(self, pattern: str) -> list[str]:
        if not self.log_path.exists():
            return []
        rx = re.compile(pattern)
        return [line for line in self.log_path.read_text(errors="replace").splitlines() if rx.search(line)]

    def log_records(self, message: str) -> list[dict[str, Any]]:
        """The collector's own JSON log records whose ``msg`` contains ``message``."""
        out = []
        for line in self.log_lines(re.escape(message)):
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if message in str(record.get("msg", "")):
                    out.append(record)
        return out

    def peak_rss_mib(self) -> float:
        """Peak resident memory of the running process (VmHWM), in MiB."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0


@contextlib.contextmanager
def running(collectors: list[Collector]) -> Iterator[list[Collector]]:
    """Start every collector (the gateways first), wait for all to be ready, stop them all at the end."""
    try:
        for c in collectors:
            c.start()
        for c in collectors:
            c.wait_ready()
        yield collectors
    finally:
        for c in collectors:
            c.stop()
