"""The collector metric names the rules use, read off the real otelcol-contrib's :8888 while data flows.

The collector runs a small config shaped like the platform's (memory_limiter, span metrics, a load-balancing
exporter, exporters with sending queues toward an address where nothing listens, so that sends fail and a
one-slot queue overflows) with the Prometheus pull reader the renders use. Every ``otelcol_*`` name in the
rendered rules must then be on :8888. Skipped only when the binary has not been built (``make binaries``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from otelstack.backends.rules import render_rules
from otelstack.model.spec import PlatformSpec
from tests.integration.data_path.collectors import find_collector, free_port

BINARY = find_collector()
pytestmark = pytest.mark.skipif(BINARY is None, reason="the real otelcol-contrib is not built: run `make binaries`")
LOOPBACK = "127.0.0.1"


def _config(http: int, health: int, metrics: int, dead: int) -> dict[str, object]:
    queue = {"enabled": True, "queue_size": 1, "num_consumers": 1}
    retry = {"enabled": True, "initial_interval": "5s", "max_interval": "5s", "max_elapsed_time": "10s"}
    dead_exporter = {"endpoint": f"{LOOPBACK}:{dead}", "tls": {"insecure": True}, "sending_queue": queue}
    return {
        "extensions": {"health_check": {"endpoint": f"{LOOPBACK}:{health}"}},
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"{LOOPBACK}:{http}"}}}},
        "processors": {"memory_limiter": {"check_interval": "1s", "limit_mib": 400, "spike_limit_mib": 100}},
        "connectors": {"span_metrics": {}},
        "exporters": {
            "otlp_grpc/down": {**dead_exporter, "retry_on_failure": retry},
            "load_balancing": {
                "routing_key": "traceID",
                "protocol": {"otlp": {"tls": {"insecure": True}}},
                "resolver": {"static": {"hostnames": [f"{LOOPBACK}:{dead}"]}},
            },
        },
        "service": {
            "extensions": ["health_check"],
            "telemetry": {
                "metrics": {
                    "level": "detailed",
                    "readers": [{"pull": {"exporter": {"prometheus": {"host": LOOPBACK, "port": metrics}}}}],
                }
            },
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["memory_limiter"],
                    "exporters": ["otlp_grpc/down", "load_balancing", "span_metrics"],
                },
                "metrics": {
                    "receivers": ["otlp", "span_metrics"],
                    "processors": ["memory_limiter"],
                    "exporters": ["otlp_grpc/down"],
                },
                "logs": {"receivers": ["otlp"], "processors": ["memory_limiter"], "exporters": ["otlp_grpc/down"]},
            },
        },
    }


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


def _post(url: str, body: dict[str, object]) -> None:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with contextlib.suppress(urllib.error.HTTPError):  # 503 once the one-slot queue is full: as wanted
        urllib.request.urlopen(request, timeout=5).read()


def _traffic(base: str, rounds: int) -> None:
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "probe"}}]}
    for i in range(rounds):
        now = time.time_ns()
        span = {
            "traceId": os.urandom(16).hex(),
            "spanId": os.urandom(8).hex(),
            "name": "GET /probe",
            "kind": 2,
            "startTimeUnixNano": str(now - 5_000_000),
            "endTimeUnixNano": str(now),
            "status": {"code": 2 if i % 3 == 0 else 1},
        }
        _post(f"{base}/v1/traces", {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": [span]}]}]})
        record = {"timeUnixNano": str(now), "body": {"stringValue": "probe"}}
        _post(f"{base}/v1/logs", {"resourceLogs": [{"resource": resource, "scopeLogs": [{"logRecords": [record]}]}]})
        point = {"asDouble": 1.0, "timeUnixNano": str(now)}
        metric = {"name": "probe.gauge", "gauge": {"dataPoints": [point]}}
        _post(
            f"{base}/v1/metrics",
            {"resourceMetrics": [{"resource": resource, "scopeMetrics": [{"metrics": [metric]}]}]},
        )


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[str]]:
    work: Path = tmp_path_factory.mktemp("collector-names")
    http, health, metrics, dead = free_port(), free_port(), free_port(), free_port()
    config = work / "config.yaml"
    config.write_text(yaml.safe_dump(_config(http, health, metrics, dead)))
    log = (work / "collector.log").open("wb")
    proc = subprocess.Popen([str(BINARY), f"--config={config}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while _get(f"http://{LOOPBACK}:{health}/")[0] != 200:
            assert proc.poll() is None, (work / "collector.log").read_text()
            assert time.monotonic() < deadline, "the collector did not become healthy"
            time.sleep(0.2)
        _traffic(f"http://{LOOPBACK}:{http}", 20)
        names: set[str] = set()
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:  # until the failed sends after retries have been counted
            status, text = _get(f"http://{LOOPBACK}:{metrics}/metrics")
            assert status == 200
            names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and line[0] != "#"}
            if rule_metric_names() <= names:
                break
            time.sleep(1)
        yield names
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def rule_metric_names() -> set[str]:
    text = "".join(v for k, v in render_rules(PlatformSpec(environment="dev")).items() if "/rules/" in k)
    return set(re.findall(r"\botelcol_[a-z_]+", text))


def test_the_rules_use_collector_metrics() -> None:
    used = rule_metric_names()
    assert "otelcol_exporter_queue_size" in used and "otelcol_loadbalancer_num_backends" in used
    assert len(used) >= 12


def test_every_collector_metric_the_rules_use_is_exposed(exposed: set[str]) -> None:
    missing = sorted(rule_metric_names() - exposed)
    assert not missing, f"the rules use names the real collector does not expose: {missing}"


def test_the_collector_serves_counters_without_the_total_suffix(exposed: set[str]) -> None:
    """Why the rules write otelcol_exporter_send_failed_spans and not …_total: the pull reader's names."""
    assert "otelcol_receiver_accepted_spans" in exposed
    assert "otelcol_receiver_accepted_spans_total" not in exposed
    assert "otelcol_process_memory_rss" in exposed
