"""OTLP sinks standing in for Tempo, Loki and Prometheus at the end of the gateways' exporters.

They are not stand-ins for a backend's behaviour: they only receive OTLP (gRPC, and HTTP/protobuf for the
Loki-shaped ``otlp_http`` exporter), record every request under the name of the listener that got it, and
answer success. Each gateway gets its own listeners, so the test knows which gateway sent what.
Loopback only.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

HOST = "127.0.0.1"

REQUEST_TYPES: dict[str, Any] = {
    "traces": trace_service_pb2.ExportTraceServiceRequest,
    "metrics": metrics_service_pb2.ExportMetricsServiceRequest,
    "logs": logs_service_pb2.ExportLogsServiceRequest,
}
RESPONSE_TYPES: dict[str, Any] = {
    "traces": trace_service_pb2.ExportTraceServiceResponse,
    "metrics": metrics_service_pb2.ExportMetricsServiceResponse,
    "logs": logs_service_pb2.ExportLogsServiceResponse,
}


@dataclass(frozen=True)
class Received:
    listener: str  # e.g. "gw-a": which gateway's exporter delivered it
    signal: str  # traces | metrics | logs
    request: Any  # the decoded Export*ServiceRequest
    at: float


@dataclass
class Recorder:
    """Every request received by every listener, in arrival order (thread-safe)."""

    items: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, listener: str, signal: str, request: Any) -> None:
        with self._lock:
            self.items.append(Received(listener, signal, request, time.monotonic()))

    def of(self, signal: str, listener: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.items if r.signal == signal and (listener is None or r.listener == listener)]


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, record: Callable[[str, Any], None]) -> None:
        self._record = record

    def Export(self, request: Any, context: Any) -> Any:
        self._record("traces", request)
        return trace_service_pb2.ExportTraceServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, record: Callable[[str, Any], None]) -> None:
        self._record = record

    def Export(self, request: Any, context: Any) -> Any:
        self._record("metrics", request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


class _Logs(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, record: Callable[[str, Any], None]) -> None:
        self._record = record

    def Export(self, request: Any, context: Any) -> Any:
        self._record("logs", request)
        return logs_service_pb2.ExportLogsServiceResponse()


class OtlpSink:
    """gRPC and HTTP OTLP listeners on loopback, all recording into one :class:`Recorder`."""

    def __init__(self) -> None:
        self.recorder = Recorder()
        self._grpc: list[grpc.Server] = []
        self._http: list[ThreadingHTTPServer] = []

    def grpc_listener(self, name: str, port: int) -> str:
        """Serve OTLP/gRPC (traces, metrics, logs) on 127.0.0.1:port; returns host:port."""

        def record(signal: str, request: Any) -> None:
            self.recorder.add(name, signal, request)

        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8), options=[("grpc.max_receive_message_length", 64 << 20)]
        )
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(record), server)  # type: ignore[no-untyped-call]
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(record), server)  # type: ignore[no-untyped-call]
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(_Logs(record), server)  # type: ignore[no-untyped-call]
        bound = server.add_insecure_port(f"{HOST}:{port}")
        if bound != port:
            raise RuntimeError(f"sink {name}: could not listen on {HOST}:{port}")
        server.start()
        self._grpc.append(server)
        return f"{HOST}:{port}"

    def http_listener(self, name: str, port: int, base_path: str = "/otlp") -> str:
        """Serve OTLP/HTTP protobuf at ``base_path``/v1/{traces,metrics,logs}; returns the base URL."""
        recorder = self.recorder

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                signal = self.path.removeprefix(base_path).removeprefix("/v1/")
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding", "") == "gzip":
                    body = gzip.decompress(body)
                if signal not in REQUEST_TYPES or self.headers.get("Content-Type") != "application/x-protobuf":
                    self.send_error(400, f"sink {name}: unexpected {self.path} {self.headers.get('Content-Type')}")
                    return
                recorder.add(name, signal, REQUEST_TYPES[signal].FromString(body))
                reply = RESPONSE_TYPES[signal]().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer((HOST, port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name=f"sink-{name}", daemon=True).start()
        self._http.append(server)
        return f"http://{HOST}:{port}{base_path}"

    def close(self) -> None:
        for g in self._grpc:
            g.stop(grace=None)
        for h in self._http:
            h.shutdown()
            h.server_close()
