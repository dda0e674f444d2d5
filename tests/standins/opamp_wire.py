"""OpAMP for the STAND-IN supervisor (tests only): the protobuf wire format of the messages it sends and
reads, and the two transports of the specification — WebSocket (ws://, wss://) and plain HTTP POST
(http://, https://). Written on the standard library alone, so the stand-in runs on a bare Debian host;
being an independent implementation of the wire format, it also cross-checks the server's encoding,
which uses the generated classes of the official package.

Field numbers are those of opamp.proto (opamp-spec): AgentToServer, ServerToAgent and what they hold.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import os
import select
import socket
import ssl
import time
import urllib.parse
from typing import Any

# --- protobuf wire format --------------------------------------------------------------------------

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5

CAPABILITIES = {  # supervisor config key -> AgentCapabilities bit
    "reports_status": 0x1,
    "accepts_remote_config": 0x2,
    "reports_effective_config": 0x4,
    "accepts_packages": 0x8,
    "reports_package_statuses": 0x10,
    "reports_own_traces": 0x20,
    "reports_own_metrics": 0x40,
    "reports_own_logs": 0x80,
    "accepts_opamp_connection_settings": 0x100,
    "accepts_other_connection_settings": 0x200,
    "accepts_restart_command": 0x400,
    "reports_health": 0x800,
    "reports_remote_config": 0x1000,
    "reports_heartbeat": 0x2000,
    "reports_available_components": 0x4000,
}
REPORT_FULL_STATE = 0x1  # ServerToAgentFlags
APPLIED, APPLYING, FAILED = 1, 2, 3  # RemoteConfigStatuses


class WireError(ValueError):
    """Bytes that are not the protobuf, frame or handshake this stand-in expects."""


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, value: int | bytes | str) -> bytes:
    """One field: an int as a varint, bytes/str (or an encoded message) length-delimited."""
    if isinstance(value, int):
        return varint(number << 3 | VARINT) + varint(value)
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | LENGTH) + varint(len(data)) + data


def key_value(key: str, value: str) -> bytes:
    """KeyValue{key, AnyValue{string_value}}."""
    return field(1, key) + field(2, field(1, value))


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise WireError("protobuf: truncated varint")


def parse(data: bytes) -> dict[int, list[Any]]:
    """Field number -> values (ints for varints, bytes for length-delimited); fixed-width ones skipped."""
    fields: dict[int, list[Any]] = {}
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = _read_varint(data, pos)
        elif wire == LENGTH:
            size, pos = _read_varint(data, pos)
            if pos + size > len(data):
                raise WireError("protobuf: truncated length-delimited field")
            value, pos = data[pos : pos + size], pos + size
        elif wire in (FIXED64, FIXED32):
            pos += 8 if wire == FIXED64 else 4
            continue
        else:
            raise WireError(f"protobuf: wire type {wire} is not supported")
        fields.setdefault(number, []).append(value)
    return fields


def one(fields: dict[int, list[Any]], number: int, default: Any = None) -> Any:
    values = fields.get(number)
    return values[-1] if values else default


def server_to_agent(data: bytes) -> dict[str, Any]:
    """The parts of a ServerToAgent message a supervisor acts on."""
    msg = parse(data)
    out: dict[str, Any] = {"flags": one(msg, 6, 0)}
    if 2 in msg:
        error = parse(one(msg, 2))
        out["error"] = (one(error, 1, 0), one(error, 2, b"").decode())
    if 3 in msg:
        remote = parse(one(msg, 3))
        files = {}
        for entry in parse(one(remote, 1, b"")).get(1, []):
            kv = parse(entry)
            body = parse(one(kv, 2, b""))
            files[one(kv, 1, b"").decode()] = (one(body, 1, b""), one(body, 2, b"").decode())
        out["remote_config"] = {"hash": one(remote, 2, b""), "files": files}
    if 4 in msg:
        opamp = parse(one(parse(one(msg, 4)), 2, b""))
        out["heartbeat_interval_s"] = one(opamp, 4, 0)
    if 8 in msg:
        out["new_instance_uid"] = one(parse(one(msg, 8)), 1, b"")
    if 9 in msg:
        out["command"] = one(parse(one(msg, 9)), 1, 0)  # 0: Restart
    return out


# --- transports ------------------------------------------------------------------------------------

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Refused(ConnectionError):
    """The server answered the connection with an HTTP error (401, 503, …)."""


def tls_context(tls: dict[str, Any]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=tls.get("ca_file") or None)
    if tls.get("cert_file"):
        ctx.load_cert_chain(tls["cert_file"], tls["key_file"])
    if tls.get("insecure_skip_verify"):
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


class WebSocket:
    """OpAMP over WebSocket: each binary message is the varint header 0 and the protobuf."""

    def __init__(self, url: str, headers: dict[str, str], tls: dict[str, Any], timeout: float = 10) -> None:
        parts = urllib.parse.urlsplit(url)
        secure = parts.scheme == "wss"
        port = parts.port or (443 if secure else 80)
        raw = socket.create_connection((parts.hostname or "", port), timeout=timeout)
        self.sock: socket.socket = tls_context(tls).wrap_socket(raw, server_hostname=parts.hostname) if secure else raw
        self.buffer = b""
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {parts.path or '/'} HTTP/1.1",
            f"Host: {parts.netloc}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.buffer:
            self._fill(len(self.buffer) + 1)
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status, *header_lines = head.decode("latin-1").split("\r\n")
        if " 101 " not in status + " ":
            raise Refused(f"WebSocket upgrade refused: {status}")
        got = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        expected = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        if got.get("sec-websocket-accept") != expected:
            raise WireError("WebSocket upgrade: wrong Sec-WebSocket-Accept")

    def _fill(self, size: int) -> None:
        while len(self.buffer) < size:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buffer += chunk

    def _take(self, size: int) -> bytes:
        self._fill(size)
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def _frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        size = len(payload)
        if size < 126:
            head = bytes([0x80 | opcode, 0x80 | size])
        elif size < 1 << 16:
            head = bytes([0x80 | opcode, 0x80 | 126]) + size.to_bytes(2, "big")
        else:
            head = bytes([0x80 | opcode, 0x80 | 127]) + size.to_bytes(8, "big")
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def send(self, message: bytes) -> list[bytes]:
        self._frame(0x2, b"\x00" + message)
        return []  # replies arrive through receive()

    def _readable(self, timeout: float) -> bool:
        if self.buffer or (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
            return True
        return bool(select.select([self.sock], [], [], max(timeout, 0))[0])

    def receive(self, timeout: float) -> bytes | None:
        """The next ServerToAgent protobuf, or None when nothing came within timeout."""
        message = b""
        while True:
            if not message and not self._readable(timeout):
                return None
            first, second = self._take(2)
            opcode, size = first & 0x0F, second & 0x7F
            if size == 126:
                size = int.from_bytes(self._take(2), "big")
            elif size == 127:
                size = int.from_bytes(self._take(8), "big")
            payload = self._take(size)
            if opcode == 0x8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                reason = payload[2:].decode(errors="replace")
                raise ConnectionError(f"the server closed the WebSocket ({code} {reason})")
            if opcode == 0x9:
                self._frame(0xA, payload)
                continue
            if opcode in (0x1, 0xA):
                continue
            message += payload
            if first & 0x80:
                header, pos = _read_varint(message, 0)
                if header != 0:
                    raise WireError(f"WebSocket message: header {header}, expected 0")
                return message[pos:]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._frame(0x8, (1000).to_bytes(2, "big"))
        self.sock.close()


class HttpPoller:
    """OpAMP over plain HTTP: every message is a POST whose response is the server's reply."""

    def __init__(self, url: str, headers: dict[str, str], tls: dict[str, Any], timeout: float = 10) -> None:
        parts = urllib.parse.urlsplit(url)
        self.path = parts.path or "/"
        self.headers = {**headers, "Content-Type": "application/x-protobuf"}
        if parts.scheme == "https":
            self.conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port or 443, timeout=timeout, context=tls_context(tls)
            )
        else:
            self.conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=timeout)

    def send(self, message: bytes) -> list[bytes]:
        self.conn.request("POST", self.path, body=message, headers=self.headers)
        response = self.conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise Refused(f"HTTP {response.status}: {body[:200].decode(errors='replace').strip()}")
        return [body]

    def receive(self, timeout: float) -> bytes | None:
        time.sleep(max(timeout, 0))  # the server cannot push over HTTP: the next poll asks
        return None

    def close(self) -> None:
        self.conn.close()


def connect(url: str, headers: dict[str, str], tls: dict[str, Any]) -> WebSocket | HttpPoller:
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme in ("ws", "wss"):
        return WebSocket(url, headers, tls)
    if scheme in ("http", "https"):
        return HttpPoller(url, headers, tls)
    raise WireError(f"server.endpoint {url}: the scheme must be ws, wss, http or https")
