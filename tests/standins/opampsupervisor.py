#!/usr/bin/env python3
"""STAND-IN for opampsupervisor, for tests only — never shipped, not the real supervisor.

Implements what the Ansible roles and the OpAMP server rely on, after the upstream supervisor:

* ``--version``; ``--config FILE`` reads a supervisor config (``${env:NAME}`` expanded, as upstream).
* Runs ``agent.executable --config <storage>/effective.yaml`` with the merge of ``agent.config_files``
  (the ``$OWN_TELEMETRY_CONFIG`` and ``$OPAMP_EXTENSION_CONFIG`` placeholders stand for fragments the
  real supervisor generates and are skipped; ``$REMOTE_CONFIG`` is the last remote config received).
  Before any remote config, ``agent.startup_fallback_configs`` runs instead. A collector that dies is
  restarted with a backoff; SIGHUP re-reads the files; SIGTERM stops both.
* Speaks OpAMP to ``server.endpoint`` (WebSocket for ws/wss, HTTP polling for http/https; headers and
  TLS from the config): an instance UID persisted in ``<storage>/persistent_state.yaml``, the agent
  description (identifying attributes of the collector, non-identifying ones from the config), the
  capabilities of the config, health (the collector running and its health_check answering), the
  effective config, and heartbeats at the interval the server offers. A remote config is applied by
  restarting the collector with the new merge and waiting ``agent.config_apply_timeout`` for it to be
  healthy: then APPLIED; else FAILED with the collector's last log lines
  (``agent.collector_crash_log_snippet_kib``), and with ``agent.automatic_config_rollback`` the last
  working config runs again. The restart command restarts the collector. Without a server, or while it
  is unreachable, the collector keeps running on what it has; the supervisor retries with a backoff.
"""

from __future__ import annotations

import json
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import deque
from pathlib import Path
from typing import Any

import yaml
from opamp_wire import (
    APPLIED,
    APPLYING,
    CAPABILITIES,
    FAILED,
    REPORT_FULL_STATE,
    Refused,
    WireError,
    connect,
    field,
    key_value,
    server_to_agent,
)
from shared import expand_env, merge, say, seconds

VERSION = "@VERSION@"
BANNER = f"opampsupervisor version {VERSION} (otelstack STAND-IN for tests, not the real supervisor)"
NAME = "stand-in supervisor"


class Collector:
    """The supervised collector process, with the tail of its output kept for failure reports."""

    def __init__(self, executable: str, snippet_bytes: int) -> None:
        self.executable = executable
        self.process: subprocess.Popen[bytes] | None = None
        self.tail: deque[bytes] = deque()
        self.tail_bytes = 0
        self.snippet_bytes = snippet_bytes
        self.started = 0.0

    def start(self, config_path: Path) -> None:
        self.tail.clear()
        self.tail_bytes = 0
        self.process = subprocess.Popen(
            [self.executable, "--config", str(config_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self.started = time.monotonic()
        threading.Thread(target=self._pump, args=(self.process,), daemon=True).start()

    def _pump(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
            if process is self.process:
                self.tail.append(line)
                self.tail_bytes += len(line)
                while self.tail_bytes > self.snippet_bytes and len(self.tail) > 1:
                    self.tail_bytes -= len(self.tail.popleft())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def log_snippet(self) -> str:
        return b"".join(self.tail).decode(errors="replace").strip()


class Supervisor:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.agent = config.get("agent") or {}
        self.storage = Path(config["storage"]["directory"])
        self.storage.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self.reload = threading.Event()
        self.applying = False
        snippet = int(self.agent.get("collector_crash_log_snippet_kib", 0) or 0) * 1024
        self.collector = Collector(self.agent["executable"], snippet or 16384)
        self.running_text = ""
        self.uid = self._instance_uid()
        self.remote: dict[str, str] | None = self._load("remote_config.json")
        self.status: dict[str, Any] | None = self._load("remote_config_status.json")

    # --- state on disk --------------------------------------------------------------------------

    def _load(self, name: str) -> Any:
        path = self.storage / name
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    def _save(self, name: str, data: Any) -> None:
        path = self.storage / name
        path.with_suffix(".tmp").write_text(json.dumps(data), encoding="utf-8")
        path.with_suffix(".tmp").replace(path)

    def _instance_uid(self) -> bytes:
        path = self.storage / "persistent_state.yaml"
        if path.exists():
            state = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if state.get("instance_id"):
                return uuid.UUID(str(state["instance_id"])).bytes
        uid = uuid.uuid4()
        path.write_text(yaml.safe_dump({"instance_id": str(uid)}), encoding="utf-8")
        return uid.bytes

    def _set_uid(self, uid: bytes) -> None:
        self.uid = uid
        (self.storage / "persistent_state.yaml").write_text(
            yaml.safe_dump({"instance_id": str(uuid.UUID(bytes=uid))}), encoding="utf-8"
        )

    # --- the collector --------------------------------------------------------------------------

    def effective_text(self, remote: dict[str, str] | None) -> str:
        files = list(self.agent.get("config_files") or [])
        if remote is None and self.agent.get("startup_fallback_configs"):
            files = list(self.agent["startup_fallback_configs"])
        merged: dict[str, Any] = {}
        for entry in files:
            if entry == "$REMOTE_CONFIG":
                doc = yaml.safe_load(remote["body"]) if remote else None
            elif str(entry).startswith("$"):
                continue
            else:
                doc = yaml.safe_load(Path(entry).read_text(encoding="utf-8"))
            merged = merge(merged, doc or {})
        return yaml.safe_dump(merged, sort_keys=False)

    def start_collector(self, text: str) -> None:
        path = self.storage / "effective.yaml"
        path.with_suffix(".tmp").write_text(text, encoding="utf-8")
        path.with_suffix(".tmp").replace(path)
        self.collector.start(path)
        self.running_text = text

    def restart_collector(self, text: str | None = None) -> None:
        with self.lock:
            self.collector.stop()
            self.start_collector(text if text is not None else self.effective_text(self.remote))

    def health_url(self) -> str | None:
        config = yaml.safe_load(self.running_text or "{}") or {}
        health = (config.get("extensions") or {}).get("health_check")
        if health is None:
            return None
        host, _, port = str(health.get("endpoint", "0.0.0.0:13133")).rpartition(":")
        host = host.strip("[]")
        return f"http://{'127.0.0.1' if host in ('', '0.0.0.0', '::') else host}:{port}/"

    def healthy(self) -> bool:
        if not self.collector.alive():
            return False
        url = self.health_url()
        if url is None:
            return True
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def wait_healthy(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping.is_set():
            if not self.collector.alive():
                return False
            if self.healthy():
                return True
            time.sleep(0.25)
        return False

    def apply(self, remote: dict[str, str]) -> str:
        """Run a remote config; '' when the collector runs healthy with it, else why not."""
        timeout = seconds(str(self.agent.get("config_apply_timeout", "30s")))
        with self.lock:
            previous = self.remote
            text = self.effective_text(remote)
            self.remote = remote
            if text == self.running_text and self.collector.alive():
                self._save("remote_config.json", remote)
                return ""
            self.applying = True
            self.restart_collector(text)
        try:
            if self.wait_healthy(timeout):
                self._save("remote_config.json", remote)
                return ""
            code = self.collector.exit_code()
            why = f"the collector did not become healthy within {timeout:.0f}s" + (
                f" (it exited with code {code})" if code is not None else ""
            )
            snippet = self.collector.log_snippet()
            if snippet:
                why += "; its last log lines:\n" + snippet
            if self.agent.get("automatic_config_rollback"):
                say(NAME, "remote config failed; back to the last working config")
                with self.lock:
                    self.remote = previous
                    self.restart_collector()
            return why
        finally:
            self.applying = False

    def supervise(self) -> None:
        """Main thread: keep the collector running; SIGHUP re-reads the config files."""
        self.start_collector(self.effective_text(self.remote))
        backoff = 1.0
        while not self.stopping.wait(0.2):
            if self.reload.is_set():
                self.reload.clear()
                self.restart_collector()
                continue
            with self.lock:
                if self.applying or self.collector.alive():
                    continue
                code = self.collector.exit_code()
                ran = time.monotonic() - self.collector.started
            backoff = 1.0 if ran > 30 else min(backoff * 2, 30.0)
            say(NAME, f"collector exited ({code}); restarting in {backoff:.0f}s")
            if self.stopping.wait(backoff):
                break
            with self.lock:
                if not self.applying and not self.collector.alive():
                    self.restart_collector()
        self.collector.stop()

    # --- OpAMP ----------------------------------------------------------------------------------

    def capabilities(self) -> int:
        caps = CAPABILITIES["reports_status"]
        for key, enabled in (self.config.get("capabilities") or {}).items():
            if enabled and key in CAPABILITIES:
                caps |= CAPABILITIES[key]
        return caps

    def description(self) -> bytes:
        identifying = {
            "service.name": "otelcol-contrib",
            "service.version": VERSION,
            "service.instance.id": str(uuid.UUID(bytes=self.uid)),
        }
        configured = (self.agent.get("description") or {}).get("non_identifying_attributes") or {}
        non_identifying = {
            "host.name": socket.gethostname(),
            "host.arch": platform.machine(),
            "os.type": "linux",
            **{str(k): str(v) for k, v in configured.items()},
        }
        return b"".join(field(1, key_value(k, v)) for k, v in identifying.items()) + b"".join(
            field(2, key_value(k, v)) for k, v in non_identifying.items()
        )

    def health(self) -> tuple[bool, bytes]:
        healthy = self.healthy()
        code = self.collector.exit_code()
        last_error = "" if healthy else ("collector not running" if code is not None else "collector not ready")
        status = "StatusOK" if healthy else "StatusRecoverableError"
        return healthy, field(1, int(healthy)) + field(3, last_error) + field(4, status)

    def remote_status(self) -> bytes:
        status = self.status or {}
        return (
            field(1, bytes.fromhex(status.get("hash", "")))
            + field(2, int(status.get("status", 0)))
            + field(3, status.get("error", ""))
        )

    def set_status(self, config_hash: bytes, status: int, error: str = "") -> None:
        self.status = {"hash": config_hash.hex(), "status": status, "error": error}
        self._save("remote_config_status.json", self.status)

    def opamp(self) -> None:
        """OpAMP thread: connect, report, apply what the server offers; reconnect with a backoff."""
        server = self.config.get("server") or {}
        endpoint = server.get("endpoint")
        if not endpoint:
            return
        headers = {str(k): str(v) for k, v in (server.get("headers") or {}).items()}
        backoff = 1.0
        while not self.stopping.is_set():
            try:
                link = connect(endpoint, headers, server.get("tls") or {})
                say(NAME, f"connected to the OpAMP server {endpoint}")
                backoff = 1.0
                try:
                    Session(self, link).run()
                finally:
                    link.close()
            except (OSError, Refused, WireError) as exc:
                say(NAME, f"OpAMP server {endpoint}: {exc}; retrying in {backoff:.0f}s")
            if self.stopping.wait(backoff):
                return
            backoff = min(backoff * 2, 30.0)


class Session:
    """One connection to the OpAMP server."""

    def __init__(self, supervisor: Supervisor, link: Any) -> None:
        self.sup, self.link = supervisor, link
        self.seq = 0
        self.heartbeat_s = 30.0
        self.last_health: bool | None = None

    def send(self, *parts: bytes, full: bool = False) -> None:
        sup = self.sup
        healthy, health = sup.health()
        self.last_health = healthy
        message = [field(1, sup.uid), field(2, self.seq), field(4, sup.capabilities()), field(5, health), *parts]
        if full:
            effective = field(1, field(1, field(1, "") + field(2, field(1, sup.running_text) + field(2, "text/yaml"))))
            message += [field(3, sup.description()), field(6, effective)]
            if sup.status:
                message.append(field(7, sup.remote_status()))
        self.seq += 1
        for reply in self.link.send(b"".join(message)):
            self.handle(reply)

    def handle(self, data: bytes) -> None:
        sup, reply = self.sup, server_to_agent(data)
        if "error" in reply:
            kind, text = reply["error"]
            raise Refused(f"the server answered with an error ({kind}): {text}")
        if reply.get("heartbeat_interval_s"):
            self.heartbeat_s = float(reply["heartbeat_interval_s"])
        if reply.get("new_instance_uid"):
            sup._set_uid(reply["new_instance_uid"])
            reply["flags"] |= REPORT_FULL_STATE
        if "remote_config" in reply:
            self.apply(reply["remote_config"])
        if "command" in reply:
            say(NAME, "restart command from the OpAMP server")
            sup.restart_collector()
            sup.wait_healthy(seconds(str(sup.agent.get("config_apply_timeout", "30s"))))
            self.send()
        if reply["flags"] & REPORT_FULL_STATE:
            self.send(full=True)

    def apply(self, offer: dict[str, Any]) -> None:
        sup = self.sup
        config_hash = offer["hash"]
        if sup.status and sup.status["hash"] == config_hash.hex() and sup.status["status"] in (APPLIED, FAILED):
            self.send(field(7, sup.remote_status()))  # known already: say again how it went
            return
        body = b"".join(body for _name, (body, _type) in sorted(offer["files"].items())).decode()
        sup.set_status(config_hash, APPLYING)
        self.send(field(7, sup.remote_status()))
        error = sup.apply({"hash": config_hash.hex(), "body": body})
        sup.set_status(config_hash, FAILED if error else APPLIED, error)
        say(NAME, f"remote config {config_hash.hex()[:12]} " + (f"FAILED: {error}" if error else "applied"))
        self.send(field(7, sup.remote_status()), full=True)

    def run(self) -> None:
        self.send(full=True)
        next_beat = time.monotonic() + self.heartbeat_s
        while not self.sup.stopping.is_set():
            data = self.link.receive(min(1.0, max(next_beat - time.monotonic(), 0)))
            if data is not None:
                self.handle(data)
            if time.monotonic() >= next_beat or self.sup.healthy() != self.last_health:
                self.send()
                next_beat = time.monotonic() + self.heartbeat_s
        self.send(field(9, b""))  # AgentDisconnect


def main(argv: list[str]) -> int:
    if "--version" in argv:
        print(BANNER)
        return 0
    if "--config" not in argv and not any(a.startswith("--config=") for a in argv):
        print("Error: --config is required", file=sys.stderr)
        return 1
    path = argv[argv.index("--config") + 1] if "--config" in argv else argv[0].split("=", 1)[1]
    with open(path, encoding="utf-8") as fh:
        config = yaml.safe_load(expand_env(fh.read()))
    print(BANNER, flush=True)
    sup = Supervisor(config)
    signal.signal(signal.SIGTERM, lambda *_: sup.stopping.set())
    signal.signal(signal.SIGINT, lambda *_: sup.stopping.set())
    signal.signal(signal.SIGHUP, lambda *_: sup.reload.set())
    threading.Thread(target=sup.opamp, daemon=True).start()
    sup.supervise()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
