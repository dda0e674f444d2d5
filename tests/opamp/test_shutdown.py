"""SIGTERM with WebSocket agents connected: every socket gets a close frame with 1001 (going away), the
process exits promptly, and the agents reconnect to the restarted server (a separate server process)."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import websockets
from opentelemetry._opamp.proto import opamp_pb2 as pb

from tests.opamp.conftest import DEV_TOKEN, free_port, server_process
from tests.opamp.wsagent import WsAgent

AGENTS = 5


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


async def close_code(ws: websockets.ClientConnection, timeout: float) -> int:
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except websockets.ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else -1
    except TimeoutError:
        return 0


def test_sigterm_closes_every_websocket_with_1001_exits_promptly_and_agents_reconnect(tmp_path: Path) -> None:
    port = free_port()
    url = f"ws://127.0.0.1:{port}/v1/opamp"
    proc, log = server_process(tmp_path, port)
    agents = [WsAgent(url, bytes([0x90 + n]) * 16, DEV_TOKEN) for n in range(AGENTS)]

    async def before() -> tuple[list[int], float, websockets.ClientConnection]:
        for agent in agents:
            await agent.connect()
            await agent.register()
        # A connection that never sent a message is closed too.
        silent = await websockets.connect(url, additional_headers={"Authorization": f"Bearer {DEV_TOKEN}"})
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        codes = await asyncio.gather(*(close_code(a.ws, 10) for a in agents), close_code(silent, 10))
        return list(codes), time.monotonic() - started, silent

    try:
        codes, closed_after, _ = asyncio.run(before())
        proc.wait(timeout=10)
    finally:
        stop(proc)
    assert codes == [1001] * (AGENTS + 1), f"{codes}\n{log.read_text()[-3000:]}"
    assert closed_after < 5
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert "closing 6 WebSocket connection(s): the server is stopping" in log.read_text()
    assert "otelstack OpAMP server stopped" in log.read_text()

    proc, log = server_process(tmp_path, port)

    async def after() -> list[pb.ServerToAgent]:
        replies = []
        for agent in agents:
            await agent.connect()
            replies.append(await agent.send(health=pb.ComponentHealth(healthy=True)))
        for agent in agents:
            await agent.ws.close()
        return replies

    try:
        replies = asyncio.run(after())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    for reply in replies:
        assert not reply.HasField("error_response")
        assert not reply.flags & pb.ServerToAgentFlags_ReportFullState, "the registry knows them"
        assert not reply.HasField("remote_config"), "they run their config already"


def unresponsive_websocket(port: int) -> socket.socket:
    """A WebSocket that completes the handshake, then never reads again (an agent that hangs): it will
    not answer the server's close frame."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /v1/opamp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {DEV_TOKEN}\r\n\r\n"
        ).encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return sock


def test_sigterm_exits_within_5_seconds_even_when_agents_do_not_answer_the_close(tmp_path: Path) -> None:
    port = free_port()
    proc, log = server_process(tmp_path, port)
    hung = [unresponsive_websocket(port) for _ in range(20)]
    try:
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        took = time.monotonic() - started
    finally:
        stop(proc)
        for sock in hung:
            sock.close()
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert took < 5, f"took {took:.1f} s"
