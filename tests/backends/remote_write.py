"""A Prometheus remote-write receiver for tests: snappy block decompression and the WriteRequest protobuf
(labels only), enough to learn which series names a real sender writes."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, HTTPServer


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def snappy_decompress(data: bytes) -> bytes:
    """Snappy's block format (the remote-write body)."""
    length, pos = _varint(data, 0)
    out = bytearray()
    while pos < len(data):
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:
            size = tag >> 2
            if size >= 60:
                extra = size - 59
                size = int.from_bytes(data[pos : pos + extra], "little")
                pos += extra
            size += 1
            out += data[pos : pos + size]
            pos += size
            continue
        if kind == 1:
            size = ((tag >> 2) & 7) + 4
            offset = ((tag >> 5) << 8) | data[pos]
            pos += 1
        else:
            size = (tag >> 2) + 1
            width = 2 if kind == 2 else 4
            offset = int.from_bytes(data[pos : pos + width], "little")
            pos += width
        for _ in range(size):
            out.append(out[-offset])
    if len(out) != length:
        raise ValueError(f"snappy: expected {length} bytes, got {len(out)}")
    return bytes(out)


def _fields(data: bytes) -> list[tuple[int, bytes | int]]:
    fields: list[tuple[int, bytes | int]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            fields.append((number, value))
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            size, pos = _varint(data, pos)
            fields.append((number, data[pos : pos + size]))
            pos += size
        else:
            raise ValueError(f"protobuf wire type {wire} not supported")
    return fields


def series_labels(body: bytes) -> list[dict[str, str]]:
    """The label sets of every time series in a snappy-compressed remote-write v1 WriteRequest."""
    out: list[dict[str, str]] = []
    for number, series in _fields(snappy_decompress(body)):
        if number != 1 or not isinstance(series, bytes):
            continue
        labels: dict[str, str] = {}
        for field, label in _fields(series):
            if field == 1 and isinstance(label, bytes):
                parts = dict(_fields(label))
                name, value = parts.get(1, b""), parts.get(2, b"")
                if isinstance(name, bytes) and isinstance(value, bytes):
                    labels[name.decode()] = value.decode()
        out.append(labels)
    return out


class Receiver:
    """An HTTP server on loopback that records the series it is sent."""

    def __init__(self) -> None:
        self.series: list[dict[str, str]] = []
        received = self.series

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.extend(series_labels(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def names(self) -> set[str]:
        return {labels.get("__name__", "") for labels in self.series}
