"""Real OpenTelemetry SDK traffic toward the agent, with a ledger of what was sent.

Every value that must never reach a backend contains :data:`SECRET`, so a search of the received bytes
finds any leak, whatever the key or the place (span, span event, log attribute, log body).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

SECRET = "s3cr3t-e2e-7f3a91"
CRITICAL = "payment-service"
SERVICES = ("frontend", "orders-service", "inventory-service", "search-service")
ROUTES = ("/orders/1", "/orders/2")
HEALTH_ROUTE = "/healthz"
PHASE_KEY = "test.phase"

# Attributes carrying secrets, as instrumentations write them; after the gateway none may carry SECRET.
SECRET_ATTRIBUTES: dict[str, str] = {
    "password": SECRET,
    "http.request.header.authorization": f"Bearer {SECRET}",
    "db.statement": f"SELECT id FROM users WHERE name = 'ann' AND password='{SECRET}'",
    "db.query.text": f"SELECT id FROM users WHERE name = 'ann' AND password='{SECRET}'",
    "user.email": f"{SECRET}@example.com",
}
DELETED_KEYS = ("password", "http.request.header.authorization")


@dataclass
class SentTrace:
    trace_id: str  # 32 hex digits
    spans: int
    error: bool
    critical: bool
    sent_at: float
    whole_critical: bool = False  # every span from the critical service

    @property
    def deterministic(self) -> bool:
        """Kept by a policy that does not depend on chance (errors, critical service)."""
        return self.error or self.critical


@dataclass
class Ledger:
    traces: dict[str, SentTrace] = field(default_factory=dict)
    health_spans: int = 0
    logs: int = 0
    spans_by_route: dict[str, int] = field(default_factory=dict)

    @property
    def spans(self) -> int:
        return sum(t.spans for t in self.traces.values())


class Sdk:
    """One TracerProvider and LoggerProvider per service, each exporting OTLP/gRPC to the agent."""

    def __init__(self, endpoint: str, phase: str) -> None:
        self.phase = phase
        self.tracers: dict[str, trace.Tracer] = {}
        self.providers: list[TracerProvider] = []
        self.log_providers: list[LoggerProvider] = []
        self.loggers: dict[str, Any] = {}
        for service in (*SERVICES, CRITICAL):
            resource = Resource.create({"service.name": service, PHASE_KEY: phase})
            tp = TracerProvider(resource=resource)
            tp.add_span_processor(
                BatchSpanProcessor(
                    OTLPSpanExporter(endpoint=endpoint, insecure=True),
                    max_queue_size=100_000,
                    max_export_batch_size=512,
                    schedule_delay_millis=200,
                )
            )
            lp = LoggerProvider(resource=resource)
            lp.add_log_record_processor(
                BatchLogRecordProcessor(OTLPLogExporter(endpoint=endpoint, insecure=True), schedule_delay_millis=200)
            )
            self.providers.append(tp)
            self.log_providers.append(lp)
            self.tracers[service] = tp.get_tracer("otelstack.e2e")
            self.loggers[service] = lp.get_logger("otelstack.e2e")

    def flush(self) -> None:
        for p in self.providers:
            assert p.force_flush(30_000), "SDK could not flush its spans to the agent"
        for lp in self.log_providers:
            assert lp.force_flush(30_000), "SDK could not flush its logs to the agent"

    def shutdown(self) -> None:
        for p in self.providers:
            p.shutdown()
        for lp in self.log_providers:
            lp.shutdown()


@contextmanager
def sdk(endpoint: str, phase: str) -> Iterator[Sdk]:
    s = Sdk(endpoint, phase)
    try:
        yield s
    finally:
        s.shutdown()


def send_trace(s: Sdk, ledger: Ledger, rng: random.Random) -> SentTrace:
    """One trace of 3–5 spans: a server span, children, sometimes a hop into the critical service."""
    critical = rng.random() < 0.15
    error = rng.random() < 0.12
    service = rng.choice(SERVICES)
    route = rng.choice(ROUTES)
    n_spans = rng.randint(3, 5)
    tracer = s.tracers[service]
    with tracer.start_as_current_span("GET /orders/{id}", kind=SpanKind.SERVER) as root:
        root.set_attribute("http.request.method", "GET")
        root.set_attribute("http.route", route)
        root.set_attribute("http.response.status_code", 500 if error else 200)
        ledger.spans_by_route[route] = ledger.spans_by_route.get(route, 0) + 1
        if rng.random() < 0.5:
            root.set_attributes(SECRET_ATTRIBUTES)
            root.add_event("auth", {"password": SECRET, "http.request.header.authorization": f"Bearer {SECRET}"})
        for i in range(n_spans - 1):
            child_service = CRITICAL if critical and i == 0 else service
            child = s.tracers[child_service]
            kind = SpanKind.CLIENT if i % 2 == 0 else SpanKind.INTERNAL
            with child.start_as_current_span(f"step-{i}", kind=kind) as span:
                if kind is SpanKind.CLIENT:
                    span.set_attributes({"rpc.system": "grpc", "rpc.service": "Inventory", "rpc.method": "GetStock"})
                span.set_attribute("db.statement", SECRET_ATTRIBUTES["db.statement"])
                span.set_attribute("db.query.text", SECRET_ATTRIBUTES["db.query.text"])
                span.add_event("query", {"password": SECRET, "db.statement": SECRET_ATTRIBUTES["db.statement"]})
                if error and i == n_spans - 2:
                    span.set_status(Status(StatusCode.ERROR, "boom"))
        if error:
            root.set_status(Status(StatusCode.ERROR, "downstream failed"))
        trace_id = format(root.get_span_context().trace_id, "032x")
    sent = SentTrace(trace_id, n_spans, error, critical, time.monotonic())
    ledger.traces[trace_id] = sent
    return sent


def send_critical_trace(s: Sdk, ledger: Ledger, rng: random.Random) -> SentTrace:
    """A trace of 3–5 spans all from the critical service: every span is kept by the critical-service
    policy on its own, so however the trace is split on the way, the count of spans kept is exact."""
    n_spans = rng.randint(3, 5)
    tracer = s.tracers[CRITICAL]
    with tracer.start_as_current_span("POST /pay", kind=SpanKind.SERVER) as root:
        root.set_attribute("http.request.method", "POST")
        root.set_attribute("http.route", "/pay")
        root.set_attribute("http.response.status_code", 200)
        for i in range(n_spans - 1):
            with tracer.start_as_current_span(f"charge-{i}", kind=SpanKind.CLIENT):
                pass
        trace_id = format(root.get_span_context().trace_id, "032x")
    sent = SentTrace(trace_id, n_spans, error=False, critical=True, sent_at=time.monotonic(), whole_critical=True)
    ledger.traces[trace_id] = sent
    return sent


def send_health_span(s: Sdk, ledger: Ledger) -> None:
    """A health-check request: the gateway's filter drops it (no trace, no span metrics)."""
    with s.tracers[SERVICES[0]].start_as_current_span("GET /healthz", kind=SpanKind.SERVER) as span:
        span.set_attribute("http.route", HEALTH_ROUTE)
        span.set_attribute("http.request.method", "GET")
        span.set_attribute("http.response.status_code", 200)
    ledger.health_spans += 1


def send_logs(s: Sdk, ledger: Ledger, rng: random.Random, count: int) -> None:
    """Log records with secrets in attributes, in text bodies and in structured (map) bodies."""
    for i in range(count):
        service = rng.choice((*SERVICES, CRITICAL))
        logger = s.loggers[service]
        shape = i % 3
        body: Any
        if shape == 0:
            body = f"login failed for ann password={SECRET} from 10.0.0.7"
        elif shape == 1:
            body = {"event": "login", "password": SECRET, "http.request.header.authorization": f"Bearer {SECRET}"}
        else:
            body = f"upstream call with Authorization: Bearer {SECRET}"
        logger.emit(
            body=body,
            severity_number=SeverityNumber.WARN,
            severity_text="WARN",
            attributes={"password": SECRET, "http.request.header.authorization": f"Bearer {SECRET}", "seq": i},
        )
        ledger.logs += 1


def send_error_trace_with_logs(s: Sdk, ledger: Ledger, service: str, logs: int) -> SentTrace:
    """A failed request: a server span and a client span (with the secret-bearing attributes), both ERROR, and
    ``logs`` ERROR log records emitted inside the client span, so the SDK stamps them with its trace and span
    id (the trace → logs link)."""
    tracer, logger = s.tracers[service], s.loggers[service]
    with tracer.start_as_current_span("POST /checkout", kind=SpanKind.SERVER) as root:
        root.set_attribute("http.request.method", "POST")
        root.set_attribute("http.route", "/checkout")
        root.set_attribute("http.response.status_code", 502)
        with tracer.start_as_current_span("charge", kind=SpanKind.CLIENT) as span:
            span.set_attributes(SECRET_ATTRIBUTES)  # redacted on the way: the stores must not hold the secret
            for i in range(logs):
                logger.emit(
                    body=f"charge failed ({i}): upstream refused, password={SECRET}",
                    severity_number=SeverityNumber.ERROR,
                    severity_text="ERROR",
                    attributes={"attempt": i},
                )
                ledger.logs += 1
            span.set_status(Status(StatusCode.ERROR, "upstream refused"))
        root.set_status(Status(StatusCode.ERROR, "charge failed"))
        trace_id = format(root.get_span_context().trace_id, "032x")
    sent = SentTrace(trace_id, 2, error=True, critical=service == CRITICAL, sent_at=time.monotonic())
    ledger.traces[trace_id] = sent
    return sent
