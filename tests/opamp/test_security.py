"""Unauthenticated and oversized requests are refused before any protobuf is parsed; no secret is logged;
malformed messages never crash the server (property-based)."""

from __future__ import annotations

import asyncio
import logging
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import websockets
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry._opamp.proto import opamp_pb2 as pb

from otelstack.errors import OtelstackError
from otelstack.opamp import protocol
from otelstack.opamp.server import STATE
from otelstack.opamp.settings import load_settings
from tests.opamp.conftest import ADMIN_TOKEN, CONFIGS, DEV_TOKEN, PROD_TOKEN, RunningServer


def post(
    server: RunningServer, body: bytes, token: str | None = DEV_TOKEN, path: str = "/v1/opamp"
) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/x-protobuf"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(server.http_url + path, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def heartbeat() -> bytes:
    return pb.AgentToServer(instance_uid=b"\x01" * 16, capabilities=1).SerializeToString()


@pytest.mark.parametrize("token", [None, "", "wrong-token", DEV_TOKEN + "x", ADMIN_TOKEN])
def test_opamp_without_an_environment_token_is_refused(server: RunningServer, token: str | None) -> None:
    status, _ = post(server, heartbeat(), token=token)
    assert status == 401
    assert server.call(lambda: server.fleet.store.list_agents()) == []


def test_websocket_without_a_token_is_refused(server: RunningServer) -> None:
    async def scenario() -> int:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(server.ws_url)
        return int(refused.value.response.status_code)

    assert asyncio.run(scenario()) == 401


def test_oversized_message_is_refused(server: RunningServer) -> None:
    limit = server.call(lambda: server.app[STATE].settings.limits.max_message_bytes)
    status, _ = post(server, b"\x00" * (limit + 1))
    assert status == 413


def test_oversized_websocket_frame_closes_the_connection(server: RunningServer) -> None:
    async def scenario() -> int:
        ws = await websockets.connect(
            server.ws_url, additional_headers={"Authorization": f"Bearer {DEV_TOKEN}"}, max_size=None
        )
        # Uncompressed (the server accepts no permessage-deflate by default), the server may close while
        # the frame is still being sent.
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.send(b"\x00" + b"\x0a" * (4 * 1024 * 1024 + 10))
            await asyncio.wait_for(ws.recv(), 10)
        return int(closed.value.rcvd.code) if closed.value.rcvd else -1

    assert asyncio.run(scenario()) == 1009


def test_malformed_protobuf_gets_400(server: RunningServer) -> None:
    status, body = post(server, b"\xff\xff\xff\xff")
    assert status == 400 and b"not a valid protobuf" in body


def test_admin_api_needs_the_admin_token(server: RunningServer) -> None:
    for token in (None, DEV_TOKEN, PROD_TOKEN):
        request = urllib.request.Request(server.http_url + "/api/agents")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(server.http_url + "/metrics", timeout=10)
    assert refused.value.code == 401
    with urllib.request.urlopen(server.http_url + "/", timeout=10) as page:  # a browser is sent to log in
        assert page.url == server.http_url + "/login" and b'name="token"' in page.read()


def test_no_token_is_ever_logged(server: RunningServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        post(server, heartbeat(), token="a-wrong-secret-value")
        post(server, heartbeat(), token=PROD_TOKEN)
        post(server, b"\xff\xff", token=DEV_TOKEN)
    text = caplog.text
    assert "refused: missing or unknown bearer token" in text
    for secret in ("a-wrong-secret-value", DEV_TOKEN, PROD_TOKEN, ADMIN_TOKEN):
        assert secret not in text


def test_settings_refuse_plaintext_and_missing_tokens(tmp_path: Path) -> None:
    path = tmp_path / "server.yaml"
    path.write_text(f"configs_dir: {tmp_path}\ntokens: {{}}\nadmin_token: {{env: X}}\n")
    with pytest.raises(OtelstackError, match="tls is required"):
        load_settings(path)
    path.write_text(f"configs_dir: {tmp_path}\nallow_insecure: true\ntokens: {{}}\nadmin_token: {{env: X}}\n")
    with pytest.raises(OtelstackError, match="at least one environment's token"):
        load_settings(path)
    both = "{dev: {env: A, file: /x}}"
    path.write_text(f"configs_dir: {tmp_path}\nallow_insecure: true\ntokens: {both}\nadmin_token: {{env: X}}\n")
    with pytest.raises(OtelstackError, match="exactly one of env, file"):
        load_settings(path)


@given(st.binary(max_size=512))
@settings(max_examples=300, deadline=None)
def test_any_bytes_either_decode_or_raise_protocol_error(data: bytes) -> None:
    for decode in (protocol.decode, protocol.decode_ws):
        try:
            message = decode(data)
        except protocol.ProtocolError:
            continue
        assert isinstance(message, pb.AgentToServer)


@given(
    st.builds(pb.AgentToServer, instance_uid=st.binary(min_size=16, max_size=16), sequence_num=st.integers(0, 2**40))
)
@settings(max_examples=100, deadline=None)
def test_well_formed_messages_round_trip_through_the_ws_framing(message: pb.AgentToServer) -> None:
    framed = b"\x00" + message.SerializeToString()
    assert protocol.decode_ws(framed) == message


def test_serve_check_names_what_is_missing(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    path = tmp_path / "server.yaml"
    path.write_text(
        f"configs_dir: {CONFIGS}\nallow_insecure: true\ntokens: {{dev: {{env: CHECK_DEV}}}}\n"
        "admin_token: {env: CHECK_ADMIN}\n"
    )
    command = [sys.executable, "-m", "otelstack.cli", "opamp", "serve", "--check", "--settings", str(path)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECK_")}
    missing = subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=60)
    assert missing.returncode != 0 and "CHECK_DEV is empty or unset" in missing.stderr
    ok = subprocess.run(
        command, capture_output=True, text=True, env={**env, "CHECK_DEV": "a", "CHECK_ADMIN": "b"}, check=False
    )
    assert ok.returncode == 0, ok.stderr
    assert "settings ok: environments dev, plaintext (lab)" in ok.stdout
