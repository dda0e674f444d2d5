"""The real backend programs on loopback, started from otelstack's renders: the rendered flags with only the
paths and listen addresses moved into a scratch directory (:func:`localised`), the process waited on until
ready (:func:`start`), and Prometheus' HTTP API (:class:`Prometheus`)."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from otelstack.backends.prometheus import render_prometheus
from otelstack.model.spec import PlatformSpec

LOOPBACK = "127.0.0.1"
VICTORIA_LOGS_OTLP = "/insert/opentelemetry"  # an otlp_http exporter's base URL there (it appends /v1/logs)


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def localised(flags: str, replace: Mapping[str, str]) -> list[str]:
    """The rendered ``flags.txt`` with the named flags' values replaced (and nothing else changed)."""
    out = []
    for flag in flags.split():
        name = flag.split("=", 1)[0]
        out.append(f"{name}={replace[name]}" if name in replace else flag)
    return out


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} not ready:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def start(binary: str, flags: list[str], log: Path, ready_url: str) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``binary flags…`` (output to ``log``) until the block ends; ready when ``ready_url`` answers 200."""
    with log.open("wb") as out:
        proc = subprocess.Popen([binary, *flags], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(ready_url, proc, log)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def write_files(work: Path, files: Mapping[str, str]) -> None:
    for rel, text in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(text)


@dataclass(frozen=True)
class Prometheus:
    url: str
    log: Path

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's vector: [{"metric": {...}, "value": [ts, "v"]}, ...]."""
        answer = get_json(f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
        assert answer["status"] == "success", answer
        return list(answer["data"]["result"])

    def exemplars(self, promql: str, seconds: float = 3600) -> list[dict[str, Any]]:
        """Every exemplar of the selected series over the last ``seconds``: {"labels", "value", "timestamp"}."""
        now = time.time()
        params = urllib.parse.urlencode({"query": promql, "start": now - seconds, "end": now + 60})
        answer = get_json(f"{self.url}/api/v1/query_exemplars?{params}")
        assert answer["status"] == "success", answer
        return [e for series in answer["data"] for e in series["exemplars"]]


@contextlib.contextmanager
def prometheus(binary: str, spec: PlatformSpec, work: Path, port: int) -> Iterator[Prometheus]:
    """The real Prometheus on ``127.0.0.1:port`` from the spec's render: its flags (receivers, exemplar
    storage, retention) and config with the rules loaded; the scrape jobs and Alertmanager are left out (the
    platform hosts they name are not on this machine)."""
    files = render_prometheus(spec)
    write_files(work, files)
    config = yaml.safe_load((work / "prometheus/prometheus.yml").read_text())
    config["scrape_configs"] = []
    config.pop("alerting", None)
    (work / "prometheus/prometheus.yml").write_text(yaml.safe_dump(config))
    flags = localised(
        (work / "prometheus/flags.txt").read_text(),
        {
            "--config.file": str(work / "prometheus/prometheus.yml"),
            "--storage.tsdb.path": str(work / "prom-data"),
            "--web.listen-address": f"{LOOPBACK}:{port}",
        },
    )
    url = f"http://{LOOPBACK}:{port}"
    log = work / "prometheus.log"
    with start(binary, flags, log, f"{url}/-/ready"):
        yield Prometheus(url, log)


@dataclass(frozen=True)
class VictoriaLogs:
    """VictoriaLogs' LogsQL query API (the log store the data-path test ends the gateways' Loki exporter in)."""

    url: str
    log: Path

    def query(self, logsql: str) -> list[dict[str, Any]]:
        params = urllib.parse.urlencode({"query": logsql})
        with urllib.request.urlopen(f"{self.url}/select/logsql/query?{params}", timeout=10) as resp:
            return [json.loads(line) for line in resp.read().decode().splitlines() if line.strip()]


@contextlib.contextmanager
def victoria_logs(binary: str, work: Path, port: int) -> Iterator[VictoriaLogs]:
    work.mkdir(parents=True, exist_ok=True)
    url = f"http://{LOOPBACK}:{port}"
    flags = [f"-httpListenAddr={LOOPBACK}:{port}", f"-storageDataPath={work / 'data'}", "-retentionPeriod=1d"]
    log = work / "victoria-logs.log"
    with start(binary, flags, log, f"{url}/health"):
        yield VictoriaLogs(url, log)


@dataclass(frozen=True)
class Jaeger:
    """Jaeger v2's query API (the trace store the data-path test ends the gateways' Tempo exporter in)."""

    query_url: str
    otlp_grpc: str  # host:port of its OTLP/gRPC receiver
    log: Path

    def spans_of(self, trace_id: str) -> list[dict[str, Any]]:
        """The spans stored for ``trace_id`` (OTLP JSON), none when the trace is unknown."""
        try:
            answer = get_json(f"{self.query_url}/api/v3/traces/{trace_id}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return []
            raise
        return [
            span
            for rs in answer.get("result", {}).get("resourceSpans", [])
            for ss in rs.get("scopeSpans", [])
            for span in ss.get("spans", [])
        ]


def jaeger_config(otlp_port: int, query_port: int, query_grpc_port: int) -> dict[str, Any]:
    """Jaeger v2 (a collector distribution) with in-memory storage: OTLP/gRPC in, the query API out, on
    loopback only and without its own telemetry listener."""
    storage = "memory_store"
    return {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query"],
            "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["jaeger_storage_exporter"]}},
            "telemetry": {"metrics": {"level": "none"}},
        },
        "extensions": {
            "jaeger_storage": {"backends": {storage: {"memory": {"max_traces": 100000}}}},
            "jaeger_query": {
                "storage": {"traces": storage},
                "http": {"endpoint": f"{LOOPBACK}:{query_port}"},
                "grpc": {"endpoint": f"{LOOPBACK}:{query_grpc_port}"},
            },
        },
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"{LOOPBACK}:{otlp_port}"}}}},
        "exporters": {"jaeger_storage_exporter": {"trace_storage": storage}},
    }


@contextlib.contextmanager
def jaeger(binary: str, work: Path, otlp_port: int, query_port: int, query_grpc_port: int) -> Iterator[Jaeger]:
    work.mkdir(parents=True, exist_ok=True)
    config = work / "jaeger.yaml"
    config.write_text(yaml.safe_dump(jaeger_config(otlp_port, query_port, query_grpc_port), sort_keys=False))
    url = f"http://{LOOPBACK}:{query_port}"
    log = work / "jaeger.log"
    with start(binary, [f"--config={config}"], log, f"{url}/api/services"):
        yield Jaeger(url, f"{LOOPBACK}:{otlp_port}", log)
