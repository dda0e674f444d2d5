#!/usr/bin/env python3
"""STAND-IN for otelcol-contrib, for tests only — never shipped, not the real collector.

The real release archive cannot be downloaded on the test machines, so the lab installs this program in
the upstream archive layout. It implements the CLI surface the Ansible roles rely on:

  otelcol-contrib --version                      prints the version (and that it is a stand-in)
  otelcol-contrib validate --config=FILE [...]   parses the config and checks its structure; exit 1 on error
  otelcol-contrib --config=FILE [...]            serves: health_check, every OTLP receiver port (TLS and
                                                 client-certificate checks as configured), self-metrics on
                                                 the telemetry reader port; SIGHUP re-reads the config;
                                                 certificates re-read every TLS reload_interval, as upstream

Structural checks: known top-level sections; pipelines reference defined components; every extension
in service.extensions is defined. A config containing the key ``otelstack_standin_reject`` anywhere is
rejected, so tests can force a validation failure that otelstack's own validator would not catch.
Needs only Python 3 and PyYAML (python3-yaml on Debian); build.py packs it with shared.py into one
executable (a Python zip application).
"""

from __future__ import annotations

import signal
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml
from shared import expand_env, merge, seconds

VERSION = "@VERSION@"
# A build made with `build.py --broken VERSION` validates configs but dies on start, like a release
# that crashes on these hosts: upgrade tests use it to prove the health gate and the wave rollback.
BROKEN = "@BROKEN@" == "yes"
BANNER = f"otelcol-contrib version {VERSION} (otelstack STAND-IN for tests, not the real collector)"
SECTIONS = ("receivers", "processors", "exporters", "extensions", "connectors", "service")


def load(paths: list[str]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(expand_env(fh.read())) or {}
        if not isinstance(doc, dict):
            raise ValueError(f"{path}: a config must be a mapping")
        merged = merge(merged, doc)
    return merged


def contains_key(node: Any, key: str) -> bool:
    if isinstance(node, dict):
        return key in node or any(contains_key(v, key) for v in node.values())
    if isinstance(node, list):
        return any(contains_key(v, key) for v in node)
    return False


def problems(config: dict[str, Any]) -> list[str]:
    found = [f"unknown section {k!r}" for k in config if k not in SECTIONS]
    if contains_key(config, "otelstack_standin_reject"):
        found.append("rejected: the config asks the stand-in to reject it (otelstack_standin_reject)")
    service = config.get("service") or {}
    pipelines = service.get("pipelines") or {}
    if not pipelines:
        found.append("service::pipelines: at least one pipeline is required")
    defined = {k: set((config.get(k) or {}).keys()) for k in SECTIONS[:-1]}
    for name, pipeline in pipelines.items():
        for role, kinds in (
            ("receivers", ("receivers", "connectors")),
            ("processors", ("processors",)),
            ("exporters", ("exporters", "connectors")),
        ):
            for comp in (pipeline or {}).get(role) or []:
                if not any(comp in defined[k] for k in kinds):
                    found.append(f"service::pipelines::{name}: references {role[:-1]} {comp!r} which is not configured")
    for ext in service.get("extensions") or []:
        if ext not in defined["extensions"]:
            found.append(f"service::extensions: references extension {ext!r} which is not configured")
    return found


def config_paths(args: list[str]) -> list[str]:
    paths = []
    for i, arg in enumerate(args):
        if arg.startswith("--config="):
            paths.append(arg.split("=", 1)[1])
        elif arg == "--config" and i + 1 < len(args):
            paths.append(args[i + 1])
    return paths


def host_port(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return (host or "0.0.0.0").strip("[]"), int(port)


def server_context(tls: dict[str, Any]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3 if str(tls.get("min_version")) == "1.3" else ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(tls["cert_file"], tls["key_file"])
    if tls.get("client_ca_file"):
        ctx.load_verify_locations(tls["client_ca_file"])
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class Listener(threading.Thread):
    """Accepts connections on an OTLP port; with TLS, completes (or refuses) the handshake and closes.

    Like the collector's TLS settings, certificate files are re-read once reload_interval has passed,
    so a rotated certificate is served without a restart.
    """

    def __init__(self, endpoint: str, tls: dict[str, Any] | None) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_server(host_port(endpoint), reuse_port=False)
        self.tls = tls
        self.ctx = server_context(tls) if tls else None
        self.reload_every = seconds(str(tls["reload_interval"])) if tls and tls.get("reload_interval") else None
        self.loaded_at = time.monotonic()

    def context(self) -> ssl.SSLContext | None:
        if self.tls and self.reload_every is not None and time.monotonic() - self.loaded_at >= self.reload_every:
            try:
                self.ctx = server_context(self.tls)
            except (OSError, ssl.SSLError) as exc:
                print(f"stand-in: certificate reload failed, keeping the loaded ones: {exc}", flush=True)
            self.loaded_at = time.monotonic()
        return self.ctx

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            ctx = self.context()
            if ctx is not None:
                conn = ctx.wrap_socket(conn, server_side=True)
            conn.recv(1)
        except ssl.SSLError:
            drain(conn)
        except OSError:
            pass
        finally:
            conn.close()


def drain(conn: socket.socket) -> None:
    """After a refused handshake (the alert is already sent): read what the client still sends until it
    closes, so closing here never resets the connection and discards the alert before the client reads it."""
    try:
        conn.shutdown(socket.SHUT_WR)
        conn.settimeout(2)
        while conn.recv(4096):
            pass
    except OSError:
        pass

    def stop(self) -> None:
        self.sock.close()


def http_server(endpoint: str, body: bytes, content_type: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(host_port(endpoint), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def start(config: dict[str, Any]) -> list[Any]:
    running: list[Any] = []
    for rx_id, rx in (config.get("receivers") or {}).items():
        for proto in ((rx or {}).get("protocols") or {}).values():
            if proto and proto.get("endpoint"):
                listener = Listener(proto["endpoint"], proto.get("tls"))
                listener.start()
                running.append(listener)
                print(
                    f"stand-in: receiver {rx_id} listening on {proto['endpoint']}"
                    + (" (TLS)" if proto.get("tls") else ""),
                    flush=True,
                )
    health = (config.get("extensions") or {}).get("health_check")
    if health is not None:
        body = b'{"status":"Server available","stand_in":true}'
        running.append(http_server(health.get("endpoint", "0.0.0.0:13133"), body, "application/json"))
    readers = (((config.get("service") or {}).get("telemetry") or {}).get("metrics") or {}).get("readers") or []
    for reader in readers:
        prom = ((reader.get("pull") or {}).get("exporter") or {}).get("prometheus")
        if prom:
            metrics = f'otelcol_process_uptime{{stand_in="true",version="{VERSION}"}} 1\n'.encode()
            running.append(http_server(f"{prom.get('host', '0.0.0.0')}:{prom['port']}", metrics, "text/plain"))
    return running


def stop(running: list[Any]) -> None:
    for item in running:
        if isinstance(item, Listener):
            item.stop()
        else:
            item.shutdown()
            item.server_close()


def main(argv: list[str]) -> int:
    if "--version" in argv or "-v" in argv:
        print(BANNER)
        return 0
    paths = config_paths(argv)
    if argv and argv[0] == "validate":
        if not paths:
            print("Error: at least one config flag must be provided", file=sys.stderr)
            return 1
        try:
            found = problems(load(paths))
        except (OSError, ValueError, yaml.YAMLError) as exc:
            found = [str(exc)]
        for problem in found:
            print(f"Error: invalid configuration: {problem}", file=sys.stderr)
        return 1 if found else 0
    if not paths:
        print("Error: at least one config flag must be provided", file=sys.stderr)
        return 1
    print(BANNER, flush=True)
    if BROKEN:
        print("Error: stand-in built broken: exiting on start", file=sys.stderr, flush=True)
        return 70
    config = load(paths)
    found = problems(config)
    if found:
        for problem in found:
            print(f"Error: invalid configuration: {problem}", file=sys.stderr)
        return 1
    running = start(config)
    reload_requested = threading.Event()
    done = threading.Event()
    signal.signal(signal.SIGHUP, lambda *_: reload_requested.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print("stand-in: Everything is ready. Begin running and processing data.", flush=True)
    while not done.wait(0.2):
        if reload_requested.is_set():
            reload_requested.clear()
            try:
                new = load(paths)
            except (OSError, ValueError, yaml.YAMLError) as exc:
                print(f"stand-in: reload failed, keeping the running config: {exc}", flush=True)
                continue
            if problems(new):
                print("stand-in: reload failed, keeping the running config", flush=True)
                continue
            stop(running)
            running = start(new)
            print("stand-in: config reloaded", flush=True)
    stop(running)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
