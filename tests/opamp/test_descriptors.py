"""The connection limit fits the open-file limit, and running out of descriptors neither floods the log
nor stops the server (a real `otelstack opamp serve` with a low RLIMIT_NOFILE)."""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import signal
import socket
import time
import urllib.request
from pathlib import Path

import pytest

from otelstack.opamp.descriptors import RESERVED, AcceptErrorThrottle, connection_limit
from tests.opamp.conftest import free_port, server_process

OPEN_FILES = 150


def test_the_connection_limit_is_lowered_to_the_descriptors_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    assert connection_limit(100, 10_000) == 100
    with caplog.at_level(logging.WARNING, logger="otelstack.opamp"):
        assert connection_limit(10_000, 1024) == 1024 - RESERVED
    assert "may open only 1024 files: serving at most 960 connections" in caplog.text


def test_running_out_of_descriptors_is_reported_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    throttle = AcceptErrorThrottle(interval=60)
    loop = asyncio.new_event_loop()
    try:
        with caplog.at_level(logging.ERROR, logger="otelstack.opamp"):
            for _ in range(1000):
                throttle(
                    loop,
                    {
                        "message": "socket.accept() out of system resource",
                        "exception": OSError(errno.EMFILE, "Too many open files"),
                    },
                )
    finally:
        loop.close()
    assert [r.getMessage() for r in caplog.records if "out of file descriptors" in r.getMessage()] == [
        "out of file descriptors (Too many open files): new connections wait until some close; raise LimitNOFILE "
        "or lower limits.max_connections"
    ]
    assert throttle.suppressed == 999


def low_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))


def healthz(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        return int(response.status)


def test_a_server_with_few_descriptors_caps_connections_and_survives_a_flood(tmp_path: Path) -> None:
    port = free_port()
    server, log = server_process(tmp_path, port, preexec_fn=low_limit)
    flood: list[socket.socket] = []
    try:
        text = log.read_text()
        assert f"may open only {OPEN_FILES} files: serving at most {OPEN_FILES - RESERVED} connections" in text
        # Twice the descriptors the server has: accept fails with EMFILE for the rest.
        for _ in range(2 * OPEN_FILES):  # non-blocking: once the backlog is full, connects wait
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
            flood.append(sock)
        time.sleep(3)
        assert server.poll() is None, "the server died"
        reports = log.read_text().count("out of file descriptors")
        assert 1 <= reports <= 2, log.read_text()[-3000:]
        assert len(log.read_text().splitlines()) < 50, "the log was flooded"
    finally:
        for sock in flood:
            sock.close()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert healthz(port) == 200  # serving again once the flood is gone
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
