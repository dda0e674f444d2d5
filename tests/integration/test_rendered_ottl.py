"""The OTTL otelstack renders, run by the real collector on real records.

`validate` proves a statement parses; only running it proves it does what its name says. Each test
takes processors from a rendered gateway config, wires them between an OTLP/HTTP receiver on loopback
and the `debug` exporter (verbosity detailed), posts OTLP/JSON records and reads what came out of the
collector's log. Nothing but the wiring around the rendered processors is written here.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from otelstack.dist.locate import locate
from otelstack.model import PlatformSpec
from otelstack.render import build_collector

SEVERITY = {"UNSPECIFIED": 0, "INFO": 9, "WARN": 13, "ERROR": 17}


def spec(**over: Any) -> PlatformSpec:
    return PlatformSpec.model_validate({"environment": "prod", **over})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Collector:
    """The real otelcol-contrib with the given processors per pipeline, debug exporter, OTLP/HTTP in."""

    def __init__(self, tmp: Path, processors: dict[str, Any], pipelines: dict[str, Any], **extra: Any) -> None:
        exe = locate("otelcol-contrib")
        if exe is None:
            pytest.fail("otelcol-contrib is not built: run `make binaries`")
        self.port = free_port()
        config = {
            "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{self.port}"}}}},
            "processors": processors,
            "exporters": {"debug": {"verbosity": "detailed"}},
            **extra,
            "service": {"telemetry": {"metrics": {"level": "none"}}, "pipelines": pipelines},
        }
        path = tmp / "config.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.log = tmp / "collector.log"
        self._out = self.log.open("w")
        self.proc = subprocess.Popen([exe, f"--config={path}"], stdout=self._out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while "Everything is ready" not in self.log.read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"collector did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def post(self, signal: str, body: dict[str, Any]) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/v1/{signal}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200

    def output(self, marker: str, count: int, timeout: float = 20) -> str:
        """The log once it holds ``count`` lines containing ``marker`` (or at the timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text()
            if text.count(marker) >= count:
                return text
            time.sleep(0.2)
        return self.log.read_text()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._out.close()


@pytest.fixture
def tmp() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="otelstack-ottl-") as d:
        yield Path(d)


def value(v: Any) -> dict[str, Any]:
    if isinstance(v, dict):
        return {"kvlistValue": {"values": [{"key": k, "value": value(x)} for k, x in v.items()]}}
    return {"stringValue": str(v)}


def attrs(d: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": value(v)} for k, v in d.items()]


def logs(service: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceLogs": [
            {
                "resource": {"attributes": attrs({"service.name": service})},
                "scopeLogs": [{"logRecords": records}],
            }
        ]
    }


def record(body: Any, severity: str = "UNSPECIFIED", **attributes: Any) -> dict[str, Any]:
    return {"severityNumber": SEVERITY[severity], "body": value(body), "attributes": attrs(attributes)}


def log_bodies(text: str) -> list[str]:
    return re.findall(r"^Body: (.*)$", text, flags=re.M)


def test_emergency_filter_drops_low_severity_and_unparsed_quiet_file_logs(tmp: Path) -> None:
    config = build_collector(spec(emergency={"drop_services_regex": "batch-.*"}), "gateway", "emergency")
    collector = Collector(
        tmp,
        {"filter/emergency": config["processors"]["filter/emergency"]},
        {"logs": {"receivers": ["otlp"], "processors": ["filter/emergency"], "exporters": ["debug"]}},
    )
    try:
        collector.post(
            "logs",
            logs(
                "api",
                [
                    record("info-keep-me-not", "INFO"),
                    record("warn-kept", "WARN"),
                    record("error-kept", "ERROR"),
                    record("file line: disk error while writing", "UNSPECIFIED"),
                    record("file line: GET /index 200", "UNSPECIFIED"),
                ],
            ),
        )
        collector.post("logs", logs("batch-nightly", [record("batch-error-dropped", "ERROR")]))
        collector.post("logs", logs("api", [record("sentinel WARNING last", "WARN")]))
        text = collector.output("sentinel", 1)
    finally:
        collector.stop()
    bodies = log_bodies(text)
    print("emergency filter kept:", bodies)
    assert bodies == [
        "Str(warn-kept)",
        "Str(error-kept)",
        "Str(file line: disk error while writing)",
        "Str(sentinel WARNING last)",
    ]


def test_redaction_scrubs_log_attributes_text_and_map_bodies(tmp: Path) -> None:
    config = build_collector(spec(), "gateway")
    collector = Collector(
        tmp,
        {"transform/redact": config["processors"]["transform/redact"]},
        {"logs": {"receivers": ["otlp"], "processors": ["transform/redact"], "exporters": ["debug"]}},
    )
    try:
        collector.post(
            "logs",
            logs(
                "api",
                [
                    record("login password=hunter2 ok", password="p1", **{"user.email": "a@b.c"}),
                    record({"password": "p2", "user": "u"}),
                    record("GET / Authorization: Bearer abc.def-ghi"),
                    record("q", **{"db.query.text": "select 1 where password='p3'"}),
                    record('{"api_key": "k e y", "n": 1}'),
                ],
            ),
        )
        text = collector.output("LogRecord #4", 1)
    finally:
        collector.stop()
    print(text[text.find("LogRecord #0") :][:2500])
    for secret in ("hunter2", "p1", "p2", "abc.def-ghi", "'p3'", "k e y", "a@b.c"):
        assert secret not in text.split("ResourceLog #0", 1)[-1], f"{secret!r} reached the exporter"
    assert "Str(login password=*** ok)" in text
    assert "Authorization: Bearer ***" in text
    assert "password='***'" in text
    assert 'Body: Map({"user":"u"})' in text, "a map body keeps what is not secret"


def test_routes_are_normalised_on_spans_so_span_metrics_aggregate_one_series(tmp: Path) -> None:
    config = build_collector(spec(), "gateway")
    span_metrics = dict(config["connectors"]["span_metrics"])
    span_metrics["metrics_flush_interval"] = "1s"  # the rendered 15 s, shortened for the test only
    chain = ["transform/routes", "transform/redact"]
    collector = Collector(
        tmp,
        {name: config["processors"][name] for name in chain},
        {
            "traces": {"receivers": ["otlp"], "processors": chain, "exporters": ["debug", "span_metrics"]},
            "metrics": {"receivers": ["span_metrics"], "exporters": ["debug"]},
        },
        connectors={"span_metrics": span_metrics},
    )
    now = time.time_ns()
    spans = [
        {
            "traceId": f"{i + 1:032x}",
            "spanId": f"{i + 1:016x}",
            "name": "GET /orders/{id}",
            "kind": 2,
            "startTimeUnixNano": str(now),
            "endTimeUnixNano": str(now + 5_000_000),
            "attributes": attrs(
                {
                    "http.route": f"/orders/{i + 1}",
                    "http.request.method": "GET",
                    "password": "span-secret",
                    "db.query.text": "update u set password='q1'",
                }
            ),
            "events": [{"name": "e", "timeUnixNano": str(now), "attributes": attrs({"password": "event-secret"})}],
        }
        for i in range(2)
    ]
    body = {
        "resourceSpans": [
            {"resource": {"attributes": attrs({"service.name": "orders"})}, "scopeSpans": [{"spans": spans}]}
        ]
    }
    try:
        collector.post("traces", body)
        text = collector.output("traces.span.metrics.calls", 2)
    finally:
        collector.stop()
    for secret in ("span-secret", "event-secret", "'q1'"):
        assert secret not in text, f"{secret!r} reached the exporter"
    assert "/orders/1" not in text and "/orders/2" not in text
    # The connector's first cumulative point of a series is 0 (a start marker); the second flush counts.
    calls = text[text.rindex("traces.span.metrics.calls") :]
    calls = calls[: calls.find("Metric #", 1) if "Metric #" in calls[1:] else len(calls)]
    points = re.findall(r"NumberDataPoints #\d+", calls)
    print("span metrics, calls:", calls[:1500])
    assert len(points) == 1, "one series for both orders, not two with the same labels"
    assert "-> http.route: Str(/orders/{id})" in calls
    assert re.search(r"^Value: 2$", calls, flags=re.M), "both spans counted"


def test_redaction_scrubs_spans_without_events_as_well_as_spans_with_them(tmp: Path) -> None:
    """Span and span-event statements in one list make the processor infer the spanevent context, which runs
    the span statements once per event: a span without events passed with its secrets. The render keeps
    them in two groups; the real collector proves both kinds of span are scrubbed."""
    config = build_collector(spec(), "gateway")
    collector = Collector(
        tmp,
        {"transform/redact": config["processors"]["transform/redact"]},
        {"traces": {"receivers": ["otlp"], "processors": ["transform/redact"], "exporters": ["debug"]}},
    )
    now = time.time_ns()
    secrets_ = {
        "password": "plain-secret",
        "http.request.header.authorization": "Bearer header-secret",
        "db.query.text": "update u set password='query-secret'",
        "user.email": "mail-secret@example.com",
    }

    def span(i: int, events: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "traceId": f"{i + 1:032x}",
            "spanId": f"{i + 1:016x}",
            "name": f"span-{i}",
            "kind": 3,
            "startTimeUnixNano": str(now),
            "endTimeUnixNano": str(now + 1_000_000),
            "attributes": attrs(secrets_),
            "events": events,
        }

    event = {"name": "e", "timeUnixNano": str(now), "attributes": attrs({"password": "event-secret"})}
    body = {
        "resourceSpans": [
            {
                "resource": {"attributes": attrs({"service.name": "checkout"})},
                "scopeSpans": [{"spans": [span(0, []), span(1, [event])]}],
            }
        ]
    }
    try:
        collector.post("traces", body)
        text = collector.output("span-1", 1)
    finally:
        collector.stop()
    print(text[text.find("Span #0") :][:2000])
    assert "span-0" in text and "span-1" in text
    for secret in ("plain-secret", "header-secret", "'query-secret'", "mail-secret", "event-secret"):
        assert secret not in text, f"{secret!r} reached the exporter"
    assert text.count("password='***'") == 2, "both spans' query text masked"
