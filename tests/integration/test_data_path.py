"""The data path, proven end to end: SDK → agent → (mTLS, bearer, trace-ID load balancing) → 2 gateways →
OTLP sinks and the real Prometheus (remote write: span metrics with exemplars), with the real otelcol-contrib
running the configs otelstack renders and Prometheus running its rendered flags and rules.

Everything listens on 127.0.0.1 only. Run with figures: ``.venv/bin/pytest -s tests/integration/test_data_path.py``
(docs/collector.md, "The data path, proven"). Skipped only when the real binary has not been built
(``make binaries``; ``make test`` builds it first); without a built Prometheus the gateways keep remote
write off and its test is skipped.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import random
import secrets
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from otelstack.backends.promtools import locate_tool
from otelstack.model.loader import load_spec
from tests.integration import backend_process
from tests.integration.data_path import analysis
from tests.integration.data_path.collectors import Collector, Ports, find_collector, free_port, localise, render
from tests.integration.data_path.collectors import write_environment as write_env
from tests.integration.data_path.sink import OtlpSink, Received
from tests.integration.data_path.traffic import (
    CRITICAL,
    DELETED_KEYS,
    PHASE_KEY,
    SECRET,
    SERVICES,
    Ledger,
    Sdk,
    send_critical_trace,
    send_error_trace_with_logs,
    send_health_span,
    send_logs,
    send_trace,
)
from tests.integration.pki_helpers import LabPki, make_pki

BINARY = find_collector()
PROMETHEUS = locate_tool("prometheus")
LOG_STORE = locate_tool("victoria-logs")  # Loki's module is AGPL: the nearest real OTLP log store stands in
TRACE_STORE = locate_tool("jaeger")  # Tempo's module is AGPL: the nearest real OTLP trace store stands in
pytestmark = pytest.mark.skipif(
    BINARY is None, reason="the real otelcol-contrib is not built: run `make binaries` (.cache/bin/otelcol-contrib)"
)

ENV = "e2e"
PROBABILISTIC_PERCENT = 20.0
DECISION_WAIT_S = 3
TRACES = 300
SDK_LOGS = 60
FILE_LOG_MARK = "e2e-filelog"
GATEWAYS = ("gw-a", "gw-b")  # the agent's static resolver names both
OVERLOAD_GATEWAY = "gw-c"  # not behind the agent: driven directly past its memory_limiter
# The overload gateway's memory_limiter. The spec cannot size a gateway below 1024 MiB (sizing's floor),
# so this host's collector_overrides sets the limiter itself.
OVERLOAD_LIMITER = {"check_interval": "1s", "limit_mib": 160, "spike_limit_mib": 40}
SINK_METRICS_EXPORTER = "otlp_grpc/metrics_sink"
SINK_LOGS_EXPORTER = "otlp_http/logs_sink"
SINK_TRACES_EXPORTER = "otlp_grpc/traces_sink"


def platform(
    gateways: list[str], opamp_port: int, app_log: Path, sinks: tuple[str, str], remote_write: str | None
) -> dict[str, Any]:
    """configs/e2e/platform.yaml: an environment like dev, but on this machine's loopback.

    allow_insecure only for the loopback hops a VM keeps on one host (SDK → agent) and for the plaintext
    test sinks standing in for the backends; agent → gateway is mTLS with the bearer token, as rendered
    for staging and prod. Prometheus remote write goes to the real Prometheus at ``remote_write`` (off when
    none is built); ClickHouse is off (no server runs here: its schema is proven on chDB).
    """
    return {
        "size": "small",
        "security": {
            "allow_insecure": True,
            "tls": {
                "apps_to_agent": "insecure",
                "agent_to_gateway": "mtls",
                "gateway_to_backends": "insecure",
                "collectors_to_opamp": "insecure",
            },
            # Nothing listens there: the *-static profiles' opamp extension just keeps retrying.
            "opamp": {"endpoint": f"ws://127.0.0.1:{opamp_port}/v1/opamp"},
        },
        "tiers": {
            "agent": {
                "memory_limit_mib": 128,  # the smallest agent the spec allows: memory_limiter 102 MiB
                "log_include": [str(app_log)],
                "log_exclude": [],
                "resolver": {"kind": "static", "hostnames": gateways},
            }
        },
        "sampling": {
            "tail": {
                "decision_wait": f"{DECISION_WAIT_S}s",
                "num_traces": 10000,
                "probabilistic_percentage": PROBABILISTIC_PERCENT,
                "critical_services": [CRITICAL],
            }
        },
        "backends": {
            "clickhouse": {"enabled": False},
            "prometheus": {"endpoint": remote_write} if remote_write else {"enabled": False},
            "tempo": {"endpoint": sinks[0]},
            "loki": {"endpoint": sinks[1]},
        },
    }


def gateway_host(
    configs: Path,
    sink_grpc: str,
    sink_http: str,
    limiter: dict[str, Any] | None = None,
    log_store: str | None = None,
    trace_store: str | None = None,
) -> dict[str, Any]:
    """One gateway's host level: Tempo points at the real trace store (``trace_store``) and Loki at the
    real log store (``log_store``), each at the gateway's own sink when there is no store; every metrics
    pipeline (span metrics, the agents' metrics) — and, where a store is used, the traces or logs pipeline —
    also exports to the OTLP sink through collector_overrides (the tests read every export there; a store
    holds only what it accepted). The pipelines are read from a first render, so the override follows the
    renderer's pipeline layout instead of repeating it."""
    tempo, loki = trace_store or sink_grpc, log_store or sink_http
    host: dict[str, Any] = {"backends": {"tempo": {"endpoint": tempo}, "loki": {"endpoint": loki}}}
    base = render(configs, ENV, "gateway-static", host)
    copies = {
        "metrics": SINK_METRICS_EXPORTER,
        **({"logs": SINK_LOGS_EXPORTER} if log_store else {}),
        **({"traces": SINK_TRACES_EXPORTER} if trace_store else {}),
    }

    def copy_to(name: str) -> str | None:
        signal = name.split("/")[0]
        # The sampled traces only: traces/spanmetrics ends in the span_metrics connector, not in Tempo.
        return copies.get(signal) if signal != "traces" or name == "traces" else None

    pipelines = {
        name: {"exporters": [*pipeline["exporters"], sink]}
        for name, pipeline in base["service"]["pipelines"].items()
        if (sink := copy_to(name))
    }
    exporters: dict[str, Any] = {SINK_METRICS_EXPORTER: {"endpoint": sink_grpc, "tls": {"insecure": True}}}
    if log_store:
        exporters[SINK_LOGS_EXPORTER] = {"endpoint": sink_http}
    if trace_store:
        exporters[SINK_TRACES_EXPORTER] = {"endpoint": sink_grpc, "tls": {"insecure": True}}
    overrides: dict[str, Any] = {"exporters": exporters, "service": {"pipelines": pipelines}}
    if limiter:
        overrides["processors"] = {"memory_limiter": limiter}
    return {**host, "collector_overrides": {"gateway": overrides}}


@dataclass
class Stack:
    agent: Collector
    gateways: dict[str, Collector]  # gw-a, gw-b, gw-c
    sink: OtlpSink
    pki: LabPki
    token: str
    app_log: Path
    gateway_config: dict[str, Any]
    prometheus: backend_process.Prometheus | None
    log_store: backend_process.VictoriaLogs | None
    trace_store: backend_process.Jaeger | None

    def received(self, signal: str, phase: str | None = None) -> list[Received]:
        items = self.sink.recorder.of(signal)
        if phase is None:
            return items
        return [r for r in items if _has_phase(r, phase)]


def _has_phase(r: Received, phase: str) -> bool:
    groups = {
        "traces": "resource_spans",
        "logs": "resource_logs",
        "metrics": "resource_metrics",
    }[r.signal]
    for group in getattr(r.request, groups):
        for kv in group.resource.attributes:
            if kv.key == PHASE_KEY and kv.value.string_value == phase:
                return True
    return False


def _collector(
    name: str, config: dict[str, Any], tmp: Path, pki: LabPki, env: dict[str, str], ports: Ports | None = None
) -> Collector:
    ports = ports or Ports.allocate()
    workdir = tmp / name
    changes = localise(config, ports=ports, tls_dir=pki.ca.parent, state_dir=workdir / "state")
    assert BINARY is not None
    return Collector(name, BINARY, config, ports, workdir, env, changes)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("data-path")
    pki = make_pki(tmp / "tls")
    token = secrets.token_hex(16)
    env = {"OTELSTACK_INGEST_TOKEN": token, "OTELSTACK_OPAMP_TOKEN": secrets.token_hex(8)}
    app_log = tmp / "app.log"
    app_log.write_text("before the agent started: not collected (file_log starts at the end)\n")
    sink = OtlpSink()

    names = (*GATEWAYS, OVERLOAD_GATEWAY)
    gateway_ports = {name: Ports.allocate() for name in names}
    sinks = {name: (sink.grpc_listener(name, free_port()), sink.http_listener(name, free_port())) for name in names}
    hostnames = [f"127.0.0.1:{gateway_ports[g].otlp_grpc}" for g in GATEWAYS]
    prometheus_port, log_store_port = free_port(), free_port()
    jaeger_ports = (free_port(), free_port(), free_port())  # OTLP/gRPC, query HTTP, query gRPC
    trace_store_url = f"127.0.0.1:{jaeger_ports[0]}"
    log_store_url = f"http://127.0.0.1:{log_store_port}{backend_process.VICTORIA_LOGS_OTLP}"
    remote_write = f"http://127.0.0.1:{prometheus_port}/api/v1/write" if PROMETHEUS else None
    configs = write_env(tmp, ENV, platform(hostnames, free_port(), app_log, sinks[GATEWAYS[0]], remote_write))

    gateways: dict[str, Collector] = {}
    gateway_config: dict[str, Any] = {}
    for name in names:
        limiter = OVERLOAD_LIMITER if name == OVERLOAD_GATEWAY else None
        host = gateway_host(
            configs,
            *sinks[name],
            limiter,
            log_store_url if LOG_STORE else None,
            trace_store_url if TRACE_STORE else None,
        )
        config = render(configs, ENV, "gateway-static", host)
        if name == GATEWAYS[0]:
            gateway_config = copy.deepcopy(config)
        gateways[name] = _collector(name, config, tmp, pki, env, gateway_ports[name])

    agent = _collector("agent", render(configs, ENV, "agent-vm-static"), tmp, pki, env)
    print(analysis.table("localised (rendered value -> test value), agent", ("change",), ((c,) for c in agent.changes)))
    started = time.monotonic()
    everyone = [*gateways.values(), agent]
    backends = contextlib.ExitStack()
    try:
        prometheus, log_store, trace_store = None, None, None
        if TRACE_STORE:
            trace_store = backends.enter_context(backend_process.jaeger(TRACE_STORE, tmp / "jaeger", *jaeger_ports))
        if LOG_STORE:
            log_store = backends.enter_context(
                backend_process.victoria_logs(LOG_STORE, tmp / "victoria-logs", log_store_port)
            )
        if PROMETHEUS:
            spec = load_spec(configs, ENV)
            prometheus = backends.enter_context(
                backend_process.prometheus(PROMETHEUS, spec, tmp / "prometheus", prometheus_port)
            )
        for g in gateways.values():
            g.start()
        ready = {g.name: g.wait_ready() for g in gateways.values()}
        agent.start()
        ready[agent.name] = agent.wait_ready()
        print(
            analysis.table(
                f"collectors ready ({BINARY})",
                ("collector", "ready after s", "health", "self-metrics"),
                (
                    (n, f"{s:.1f}", gateways.get(n, agent).ports.health, gateways.get(n, agent).ports.metrics)
                    for n, s in ready.items()
                ),
            )
        )
        # file_log skips what the file held when first seen (start_at: end): write test lines only after.
        assert _wait(lambda: bool(agent.log_lines("Started watching file")), 10, step=0.1), agent.log_tail()
        print(f"stack up in {time.monotonic() - started:.1f}s")
        yield Stack(agent, gateways, sink, pki, token, app_log, gateway_config, prometheus, log_store, trace_store)
    finally:
        for c in everyone:
            c.stop()
        sink.close()
        backends.close()


def _wait(condition: Any, timeout: float, step: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return bool(condition())


# --- the main run: 300 traces, health checks, logs -----------------------------------------------------


@dataclass
class MainRun:
    ledger: Ledger
    spans: list[analysis.Span]
    logs: list[analysis.LogRecord]
    file_logs: list[analysis.LogRecord]
    metric_requests: list[Received]
    seconds: float


def _calls_metric(requests: list[Received]) -> str | None:
    names = [n for n in analysis.metric_names(requests) if n.endswith(".calls") or n == "calls"]
    return names[0] if names else None


def _span_metric_total(requests: list[Received], phase: str) -> float:
    """Calls counted by the latest span-metrics export of each gateway (cumulative counters)."""
    name = _calls_metric(requests)
    total = 0.0
    for gw in GATEWAYS:
        mine = [r for r in requests if r.listener == gw and name in analysis.metric_names([r])]
        if mine:
            total += sum(
                p.value
                for p in analysis.sum_points(mine[-1:])
                if p.metric == name and p.resource.get(PHASE_KEY) == phase
            )
    return total


@pytest.fixture(scope="module")
def main_run(stack: Stack) -> MainRun:
    phase = "main"
    rng = random.Random(20260818)
    ledger = Ledger()
    started = time.monotonic()
    s = Sdk(stack.agent.otlp_grpc, phase)
    try:
        for i in range(TRACES):
            send_trace(s, ledger, rng)
            if i % 15 == 0:
                send_health_span(s, ledger)
        send_logs(s, ledger, rng, SDK_LOGS)
        with stack.app_log.open("a") as f:
            for i in range(10):
                f.write(f"{FILE_LOG_MARK} {i} user=ann password={SECRET} Authorization: Bearer {SECRET}\n")
        s.flush()
    finally:
        s.shutdown()

    expected_kept = [t for t in ledger.traces.values() if t.deterministic]

    def traces_in() -> bool:
        seen = {sp.trace_id for sp in analysis.spans(stack.received("traces", phase))}
        return all(t.trace_id in seen for t in expected_kept)

    def logs_in() -> bool:
        recs = list(analysis.log_records(stack.sink.recorder.of("logs")))
        sdk = sum(1 for r in recs if r.resource.get(PHASE_KEY) == phase)
        files = sum(1 for r in recs if FILE_LOG_MARK in str(r.body))
        return sdk >= ledger.logs and files >= 10

    def metrics_in() -> bool:
        return _span_metric_total(stack.received("metrics", phase), phase) >= ledger.spans

    _wait(traces_in, 45)
    _wait(logs_in, 20)
    _wait(metrics_in, 45, step=1.0)  # span metrics flush every 15 s
    time.sleep(DECISION_WAIT_S + 2)  # stragglers: anything late would show up as a split or extra trace

    all_logs = list(analysis.log_records(stack.sink.recorder.of("logs")))
    print(
        f"\nmain run: {len(ledger.traces)} traces ({ledger.spans} spans) from {len(SERVICES) + 1} services, "
        f"{ledger.health_spans} health checks, {ledger.logs} SDK logs, 10 file lines; "
        f"{time.monotonic() - started:.1f}s until every sink had them"
    )
    return MainRun(
        ledger=ledger,
        spans=list(analysis.spans(stack.received("traces", phase))),
        logs=[r for r in all_logs if r.resource.get(PHASE_KEY) == phase],
        file_logs=[r for r in all_logs if FILE_LOG_MARK in str(r.body)],
        metric_requests=stack.received("metrics", phase),
        seconds=time.monotonic() - started,
    )


def test_every_trace_lands_whole_on_one_gateway(main_run: MainRun) -> None:
    by_trace: dict[str, set[str]] = defaultdict(set)
    spans_in: Counter[str] = Counter()
    for sp in main_run.spans:
        by_trace[sp.trace_id].add(sp.listener)
        spans_in[sp.trace_id] += 1
    per_gateway = Counter(next(iter(gws)) for gws in by_trace.values() if len(gws) == 1)
    split = [t for t, gws in by_trace.items() if len(gws) > 1]
    partial = [t for t, n in spans_in.items() if t in main_run.ledger.traces and n != main_run.ledger.traces[t].spans]
    print(
        analysis.table(
            "1. trace-ID load balancing (traces received at the sinks, main run)",
            ("gateway", "traces", "spans"),
            [(g, per_gateway[g], sum(1 for sp in main_run.spans if sp.listener == g)) for g in GATEWAYS]
            + [("at both gateways", len(split), ""), ("incomplete traces", len(partial), "")],
        )
    )
    assert not split, f"traces seen at both gateways: {split[:5]}"
    assert all(per_gateway[g] > 0 for g in GATEWAYS), f"a gateway received no trace: {dict(per_gateway)}"
    assert not partial, f"traces kept with missing spans: {partial[:5]}"


def test_tail_sampling_keeps_errors_critical_and_the_configured_share(main_run: MainRun) -> None:
    kept = {sp.trace_id for sp in main_run.spans}
    sent = main_run.ledger.traces
    errors = [t for t in sent.values() if t.error]
    critical = [t for t in sent.values() if t.critical]
    rest = [t for t in sent.values() if not t.deterministic]
    kept_rest = sum(1 for t in rest if t.trace_id in kept)
    p = PROBABILISTIC_PERCENT / 100
    mean, sigma = len(rest) * p, math.sqrt(len(rest) * p * (1 - p))
    health = [sp for sp in main_run.spans if sp.attributes.get("http.route") == "/healthz"]
    unknown = kept - set(sent)
    print(
        analysis.table(
            "2. tail sampling (main run)",
            ("class", "sent", "kept", "expected"),
            [
                ("error traces", len(errors), sum(t.trace_id in kept for t in errors), len(errors)),
                (f"{CRITICAL} traces", len(critical), sum(t.trace_id in kept for t in critical), len(critical)),
                (
                    "other traces",
                    len(rest),
                    f"{kept_rest} ({100 * kept_rest / max(1, len(rest)):.1f} %)",
                    f"{mean:.1f} ± 4σ={4 * sigma:.1f} ({PROBABILISTIC_PERCENT:g} %)",
                ),
                ("health-check spans", main_run.ledger.health_spans, len(health), 0),
            ],
        )
    )
    assert all(t.trace_id in kept for t in errors), "an error trace was not kept"
    assert all(t.trace_id in kept for t in critical), f"a {CRITICAL} trace was not kept"
    assert abs(kept_rest - mean) <= 4 * sigma, f"kept {kept_rest} of {len(rest)}; expected {mean:.1f} ± {4 * sigma:.1f}"
    assert not health, "health-check spans reached the trace backend"
    assert not unknown, f"traces that were never sent: {sorted(unknown)[:3]}"


def _leaks(value: Any) -> bool:
    return SECRET in str(value)


def test_redaction_leaves_no_secret(main_run: MainRun) -> None:
    spans, logs, files = main_run.spans, main_run.logs, main_run.file_logs
    events = [e for sp in spans for e in sp.events]
    text_bodies = [r for r in logs if isinstance(r.body, str)]
    map_bodies = [r for r in logs if isinstance(r.body, dict)]
    places: list[tuple[str, int, int, int]] = [
        (
            "span attributes",
            len(spans),
            sum(_leaks(sp.attributes) for sp in spans),
            sum(any(k in sp.attributes for k in DELETED_KEYS) for sp in spans),
        ),
        (
            "span event attributes",
            len(events),
            sum(_leaks(e) for e in events),
            sum(any(k in e for k in DELETED_KEYS) for e in events),
        ),
        (
            "log attributes (SDK)",
            len(logs),
            sum(_leaks(r.attributes) for r in logs),
            sum(any(k in r.attributes for k in DELETED_KEYS) for r in logs),
        ),
        ("log bodies, text (SDK)", len(text_bodies), sum(_leaks(r.body) for r in text_bodies), 0),
        (
            "log bodies, map (SDK)",
            len(map_bodies),
            sum(_leaks(r.body) for r in map_bodies),
            sum(any(k in r.body for k in DELETED_KEYS) for r in map_bodies),
        ),
        ("log bodies, file_log", len(files), sum(_leaks(r.body) for r in files), 0),
    ]
    db = [sp.attributes for sp in spans if "db.statement" in sp.attributes or "db.query.text" in sp.attributes]
    masked = {k: sum("password='***'" in str(a.get(k, "")) for a in db) for k in ("db.statement", "db.query.text")}
    emails = [sp.attributes["user.email"] for sp in spans if "user.email" in sp.attributes]
    print(
        analysis.table(
            "3. redaction (received at the sinks, main run)",
            ("where", "items", "containing the secret", "carrying a deleted key"),
            places,
        )
    )
    print(
        f"   db spans {len(db)}: db.statement masked {masked['db.statement']}, db.query.text masked "
        f"{masked['db.query.text']}; user.email values {len(emails)}, hashed {sum(len(e) == 64 for e in emails)}"
    )
    assert spans and events and logs and files, "nothing to check: no spans, events or logs arrived"
    for where, items, leaked, deleted in places:
        assert leaked == 0 and deleted == 0, f"{where}: {leaked} of {items} carry the secret, {deleted} a deleted key"
    assert masked["db.statement"] == masked["db.query.text"] == len(db)
    assert all(len(e) == 64 for e in emails)


def test_span_metrics_dimensions_and_identity(stack: Stack, main_run: MainRun) -> None:
    requests = main_run.metric_requests
    name = _calls_metric(requests)
    assert name, f"no span metrics among {sorted(analysis.metric_names(requests))}"
    configured = [d["name"] for d in stack.gateway_config["connectors"]["span_metrics"]["dimensions"]]
    points = [p for p in analysis.sum_points(requests) if p.metric == name]
    server = [p for p in points if p.attributes.get("span.kind") == "SPAN_KIND_SERVER"]
    client = [p for p in points if p.attributes.get("span.kind") == "SPAN_KIND_CLIENT"]
    on_server = {d: sum(d in p.attributes for p in server) for d in configured if not d.startswith("rpc.")}
    routes = Counter(str(p.attributes.get("http.route")) for p in server)
    # Identity: within one export, one data point per (metric, resource, attributes).
    seen: dict[tuple[Any, ...], float] = {}
    duplicates, conflicts = 0, 0
    for p in points:
        key = (p.listener, p.request, p.metric, tuple(sorted(p.resource.items())), tuple(sorted(p.attributes.items())))
        if key in seen:
            duplicates += 1
            conflicts += seen[key] != p.value
        seen[key] = p.value
    total = _span_metric_total(requests, "main")
    print(
        analysis.table(
            f"4. span metrics ({name}; every export of the main run)",
            ("figure", "value"),
            [
                ("spans sent (health checks excluded)", main_run.ledger.spans),
                ("calls counted (latest export of each gateway)", int(total)),
                ("server-span data points", len(server)),
                *((f"  with dimension {d}", f"{n} of {len(server)}") for d, n in on_server.items()),
                *((f"  http.route={r}", n) for r, n in sorted(routes.items())),
                ("client-span data points with rpc.method", f"{sum('rpc.method' in p.attributes for p in client)}"),
                ("same series twice in one export", duplicates),
                ("  of which with different values (identity conflict)", conflicts),
            ],
        )
    )
    for d in ("http.request.method", "http.response.status_code", "http.route", "rpc.method"):
        assert d in configured, f"dimension {d} is not configured"
    for d in ("http.request.method", "http.response.status_code", "http.route"):
        assert on_server[d] == len(server) > 0, f"dimension {d} missing on server span metrics"
    assert any(p.attributes.get("rpc.method") == "GetStock" for p in client), "rpc.method dimension missing"
    assert set(routes) == {"/orders/{id}"}, f"routes not normalised before span metrics: {dict(routes)}"
    assert duplicates == 0, f"{duplicates} series appear twice in one export ({conflicts} with different values)"
    assert total == main_run.ledger.spans, "span metrics did not count every span (they see all, before sampling)"


# --- the real Prometheus: span metrics by remote write, with exemplars pointing at kept traces -------------

CALLS_SERIES = "traces_span_metrics_calls_total"
DURATION_BUCKETS = "traces_span_metrics_duration_milliseconds_bucket"
REMOTE_WRITE_FAILED = "otelcol_exporter_send_failed_metric_points"


def test_span_metrics_and_exemplars_reach_the_real_prometheus(stack: Stack, main_run: MainRun) -> None:
    """Both gateways compute span metrics for the same services and remote-write them to one Prometheus.
    Each series carries its gateway's ``collector.instance.id`` (the connector's own dimension, which
    otelstack validate refuses to exclude): Prometheus takes every sample (no "duplicate sample for
    timestamp" refusals, which the exporter drops as permanent), the calls summed over the gateways are the
    spans sent, and the duration histogram's exemplars name trace ids of this run, among them traces the
    trace backend kept — the metric → trace link Grafana follows."""
    if stack.prometheus is None:
        pytest.skip("prometheus is not built: `make binaries`")
    prom = stack.prometheus
    total_query = f"sum({CALLS_SERIES})"

    def counted() -> float:
        result = prom.query(total_query)
        return float(result[0]["value"][1]) if result else 0.0

    _wait(lambda: counted() >= main_run.ledger.spans, 60, step=1.0)
    time.sleep(3)  # one more flush would show up as a count above the spans sent
    by_instance = {
        r["metric"].get("collector_instance_id", ""): float(r["value"][1])
        for r in prom.query(f"sum by (collector_instance_id) ({CALLS_SERIES})")
    }
    services = {r["metric"]["service_name"] for r in prom.query(f"sum by (service_name) ({CALLS_SERIES})")}
    exemplars = prom.exemplars(DURATION_BUCKETS)
    exemplar_traces = {e["labels"].get("trace_id", "") for e in exemplars}
    kept = {sp.trace_id for sp in main_run.spans}
    failed = {
        g: sum(
            sample.value
            for sample in stack.gateways[g].metrics()
            if sample.name == REMOTE_WRITE_FAILED and "remote_write" in sample.labels.get("exporter", "")
        )
        for g in GATEWAYS
    }
    print(
        analysis.table(
            f"4b. the real Prometheus ({PROMETHEUS}): span metrics by remote write (main run)",
            ("figure", "value"),
            [
                ("spans sent (health checks excluded)", main_run.ledger.spans),
                *(
                    (f"calls in Prometheus, collector_instance_id={i or '(none)'}", int(n))
                    for i, n in by_instance.items()
                ),
                ("services with calls series", len(services)),
                ("exemplars on the duration histogram", len(exemplars)),
                ("  naming a trace of this run", len(exemplar_traces & set(main_run.ledger.traces))),
                ("  naming a trace the trace backend kept", len(exemplar_traces & kept)),
                *((f"remote-write points refused, {g}", int(n)) for g, n in failed.items()),
            ],
        )
    )
    # One series set per gateway (the load balancer gave both of them traces of every service).
    assert len(by_instance) == len(GATEWAYS) and "" not in by_instance, f"not told apart by gateway: {by_instance}"
    assert sum(by_instance.values()) == main_run.ledger.spans, "Prometheus does not hold every span's call"
    assert services == {*SERVICES, CRITICAL}, services
    assert all(n == 0 for n in failed.values()), f"Prometheus refused remote-written points: {failed}"
    assert exemplars, "no exemplar reached Prometheus (exemplar storage, the connector's exemplars)"
    assert exemplar_traces <= set(main_run.ledger.traces), "exemplars name traces that were never sent"
    assert exemplar_traces & kept, "no exemplar points at a trace the trace backend holds"


# --- one failed request, followed from the trace to its logs and its exemplar ------------------------------

CORRELATED_PHASE = "correlated"
CORRELATED_LOGS = 3


@pytest.fixture(scope="module")
def correlated(stack: Stack) -> str:
    """The trace id of one failed checkout whose client span logged CORRELATED_LOGS errors, once the trace
    backend's sink holds the trace."""
    ledger = Ledger()
    s = Sdk(stack.agent.otlp_grpc, CORRELATED_PHASE)
    try:
        sent = send_error_trace_with_logs(s, ledger, SERVICES[1], CORRELATED_LOGS)
        s.flush()
    finally:
        s.shutdown()

    def trace_in() -> bool:
        return any(sp.trace_id == sent.trace_id for sp in analysis.spans(stack.received("traces", CORRELATED_PHASE)))

    assert _wait(trace_in, 30), "the error trace did not reach the trace backend (tail sampling keeps errors)"
    return sent.trace_id


def test_a_failed_request_is_found_by_its_trace_id_in_every_store(stack: Stack, correlated: str) -> None:
    """The links Grafana follows, on real stores: the trace store returns the failed trace by its id, the
    logs the SDK wrote inside the failed span are found in the log store by that id (redacted on the way),
    and Prometheus holds an exemplar of the span metrics naming it."""
    if stack.log_store is None or stack.prometheus is None or stack.trace_store is None:
        pytest.skip("jaeger, victoria-logs or prometheus is not built: `make binaries`")
    traces, store, prom = stack.trace_store, stack.log_store, stack.prometheus
    found: list[dict[str, Any]] = []
    spans: list[dict[str, Any]] = []

    def trace_in() -> bool:
        spans[:] = traces.spans_of(correlated)
        return len(spans) >= 2

    def logs_in() -> bool:
        found[:] = store.query(f'trace_id:"{correlated}"')
        return len(found) >= CORRELATED_LOGS

    def exemplar_in() -> bool:
        return any(e["labels"].get("trace_id") == correlated for e in prom.exemplars(DURATION_BUCKETS))

    _wait(trace_in, 30)
    _wait(logs_in, 30)
    _wait(exemplar_in, 45, step=1.0)  # span metrics flush every 15 s
    exemplar = exemplar_in()
    print(
        analysis.table(
            f"4c. one failed request (trace {correlated}) on the real stores",
            ("store", "found"),
            [
                (f"trace store ({TRACE_STORE}): spans of the trace", len(spans)),
                ("  of them with the secret", sum(SECRET in json.dumps(sp) for sp in spans)),
                (f"log store ({LOG_STORE}): records with trace_id", len(found)),
                ("  of them with the secret", sum(SECRET in json.dumps(r) for r in found)),
                (f"Prometheus: exemplar naming the trace on {DURATION_BUCKETS}", exemplar),
            ],
        )
    )
    assert sorted(sp["name"] for sp in spans) == ["POST /checkout", "charge"], spans
    assert not any(SECRET in json.dumps(sp) for sp in spans), "a secret reached the trace store"
    assert len(found) == CORRELATED_LOGS, found
    assert all(r.get("service.name") == SERVICES[1] for r in found), found
    assert not any(SECRET in json.dumps(r) for r in found), "a secret reached the log store"
    assert exemplar, "no exemplar in Prometheus names the failed request's trace"


# --- a gateway killed with SIGKILL while traffic flows ----------------------------------------------------

KILL_AT_S, RESTART_AT_S, TRAFFIC_S = 3.0, 8.0, 14.0
# What a SIGKILLed gateway can lose: spans it accepted (so the agent's queue let go of them) and still held
# in memory — the tail-sampling buffer (decision_wait) and the batch processor (1 s) — plus delivery slack.
IN_MEMORY_WINDOW_S = DECISION_WAIT_S + 1 + 2
LATE_SPANS = "otelcol_processor_tail_sampling_sampling_late_span_age_count"


def test_gateway_sigkill_loses_no_queued_span(stack: Stack) -> None:
    """Half the traces are all-critical (every span kept on its own: exact counts however a trace is split
    on the way), half are the main run's mixed traces (whose error/critical ones are figures only)."""
    phase = "kill"
    victim = stack.gateways[GATEWAYS[1]]
    rng = random.Random(99)
    ledger = Ledger()
    moments: dict[str, float] = {}
    restarter: threading.Thread | None = None

    def restart() -> None:
        victim.start()
        victim.wait_ready()
        moments["ready"] = time.monotonic()

    s = Sdk(stack.agent.otlp_grpc, phase)
    t0 = time.monotonic()
    try:
        while (elapsed := time.monotonic() - t0) < TRAFFIC_S:
            for _ in range(3):
                send_critical_trace(s, ledger, rng)
                send_trace(s, ledger, rng)
            if "kill" not in moments and elapsed >= KILL_AT_S:
                victim.kill()
                moments["kill"] = time.monotonic()
            if "restart" not in moments and elapsed >= RESTART_AT_S:
                moments["restart"] = time.monotonic()
                restarter = threading.Thread(target=restart)
                restarter.start()
            time.sleep(0.2)
        s.flush()
    finally:
        s.shutdown()
        if restarter:
            restarter.join(60)
    assert "ready" in moments, f"{victim.name} did not come back:\n{victim.log_tail()}"
    kill_at, ready_at = moments["kill"], moments["ready"]
    exact = [t for t in ledger.traces.values() if t.whole_critical]
    mixed = [t for t in ledger.traces.values() if not t.whole_critical and t.deterministic]

    def received() -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = defaultdict(Counter)
        for sp in analysis.spans(stack.received("traces", phase)):
            out[sp.trace_id][sp.listener] += 1
        return out

    # Everything sent after the kill must arrive (agent queue + retry); then a little longer for stragglers.
    _wait(lambda: all(t.trace_id in received() for t in exact if t.sent_at > kill_at), 60, step=1.0)
    time.sleep(DECISION_WAIT_S + 2)
    got = received()

    def spans_in(t: Any) -> int:
        return sum(got.get(t.trace_id, Counter()).values())

    def row(label: str, group: list[Any]) -> tuple[Any, ...]:
        return (
            label,
            len(group),
            sum(t.spans for t in group),
            sum(1 for t in group if t.trace_id in got),
            sum(min(spans_in(t), t.spans) for t in group),
            sum(t.spans - min(spans_in(t), t.spans) for t in group),
            sum(max(0, spans_in(t) - t.spans) for t in group),
        )

    def windows(group: list[Any]) -> list[tuple[str, list[Any]]]:
        return [
            ("sent before the kill", [t for t in group if t.sent_at <= kill_at]),
            ("sent while down", [t for t in group if kill_at < t.sent_at <= ready_at]),
            ("sent after the restart", [t for t in group if t.sent_at > ready_at]),
        ]

    late = victim.metric_sum(LATE_SPANS)
    print(
        analysis.table(
            f"5. SIGKILL of {victim.name} at +{kill_at - t0:.1f}s, ready again at +{ready_at - t0:.1f}s",
            ("traces", "count", "spans sent", "traces received", "spans received", "spans lost", "duplicates"),
            [row(f"all-critical, {w}", g) for w, g in windows(exact)]
            + [row("all-critical, total", exact)]
            + [row(f"mixed error/critical, {w}", g) for w, g in windows(mixed)],
        )
    )
    lost = [t for t in exact if spans_in(t) < t.spans]
    ages = sorted(round(kill_at - t.sent_at, 2) for t in lost)
    mixed_lost_after = [t for t in mixed if t.sent_at > kill_at and spans_in(t) < t.spans]
    print(
        f"   all-critical traces lost were sent {ages} s before the kill (in-memory window {IN_MEMORY_WINDOW_S}s); "
        f"mixed error/critical traces sent after the kill and not kept whole: {len(mixed_lost_after)}; "
        f"late spans at the restarted {victim.name} (arrived after their trace's decision): {late:.0f}"
    )
    assert victim.alive() and all(g.alive() for g in stack.gateways.values()) and stack.agent.alive()
    after_kill = [t for t in exact if t.sent_at > kill_at]
    assert all(spans_in(t) >= t.spans for t in after_kill), "spans sent while the gateway was down or after were lost"
    assert all(kill_at - t.sent_at <= IN_MEMORY_WINDOW_S for t in lost), (
        f"lost traces older than the gateway's in-memory window ({IN_MEMORY_WINDOW_S}s): {ages}"
    )


# --- bounded overload: memory_limiter refuses, nothing crashes ----------------------------------------------

FLOOD_S, FLOOD_THREADS, FLOOD_SPANS, FLOOD_ATTR_BYTES = 10.0, 6, 3000, 1024


def _flood_request(phase: str, rng: random.Random) -> trace_service_pb2.ExportTraceServiceRequest:
    filler = "x" * FLOOD_ATTR_BYTES
    resource = resource_pb2.Resource(
        attributes=[
            common_pb2.KeyValue(key="service.name", value=common_pb2.AnyValue(string_value="flood-service")),
            common_pb2.KeyValue(key=PHASE_KEY, value=common_pb2.AnyValue(string_value=phase)),
        ]
    )
    now = time.time_ns()
    spans = [
        trace_pb2.Span(
            trace_id=rng.randbytes(16),
            span_id=rng.randbytes(8),
            name="flood",
            kind=trace_pb2.Span.SPAN_KIND_INTERNAL,
            start_time_unix_nano=now,
            end_time_unix_nano=now + 1000,
            attributes=[common_pb2.KeyValue(key="filler", value=common_pb2.AnyValue(string_value=filler))],
        )
        for _ in range(FLOOD_SPANS)
    ]
    return trace_service_pb2.ExportTraceServiceRequest(
        resource_spans=[trace_pb2.ResourceSpans(resource=resource, scope_spans=[trace_pb2.ScopeSpans(spans=spans)])]
    )


def _flood(channel: grpc.Channel, metadata: list[tuple[str, str]], request: Any) -> Counter[str]:
    """FLOOD_THREADS clients sending large OTLP requests back to back for FLOOD_S seconds (bounded)."""
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)  # type: ignore[no-untyped-call]
    deadline = time.monotonic() + FLOOD_S

    def client() -> Counter[str]:
        codes: Counter[str] = Counter()
        for _ in range(10_000):
            if time.monotonic() >= deadline:
                break
            try:
                stub.Export(request, metadata=metadata, timeout=10)
                codes["OK"] += 1
            except grpc.RpcError as exc:
                codes[exc.code().name] += 1
        return codes

    with ThreadPoolExecutor(FLOOD_THREADS) as pool:
        return sum((f.result() for f in [pool.submit(client) for _ in range(FLOOD_THREADS)]), Counter())


def _refusals(c: Collector) -> dict[str, float]:
    """Self-metrics whose name says refused, summed per name (otelcol_receiver_refused_*, …)."""
    out: dict[str, float] = defaultdict(float)
    for sample in c.metrics():
        if "refused" in sample.name:
            out[sample.name] += sample.value
    return out


def _accepts_again(channel: grpc.Channel, metadata: list[tuple[str, str]], phase: str) -> float | None:
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)  # type: ignore[no-untyped-call]
    small = _flood_request(phase, random.Random(1))
    del small.resource_spans[0].scope_spans[0].spans[1:]
    start = time.monotonic()
    while time.monotonic() - start < 30:
        try:
            stub.Export(small, metadata=metadata, timeout=5)
            return time.monotonic() - start
        except grpc.RpcError:
            time.sleep(0.5)
    return None


REFUSAL_METRICS = ("otelcol_receiver_refused_spans", "otelcol_processor_memory_limiter_refused_spans")


def test_memory_limiter_refuses_under_overload(stack: Stack) -> None:
    """The agent (the spec's smallest, 128 MiB) and a gateway (memory_limiter set small) each driven past
    their memory_limiter by large OTLP requests: they refuse (the client sees it), say so in their own
    metrics (names as scraped from the real binary), stay up and accept again once the flood stops."""
    options = [("grpc.max_send_message_length", 64 << 20)]
    creds = grpc.ssl_channel_credentials(
        root_certificates=stack.pki.ca.read_bytes(),
        private_key=stack.pki.client_key.read_bytes(),
        certificate_chain=stack.pki.client_cert.read_bytes(),
    )
    gw = stack.gateways[OVERLOAD_GATEWAY]
    targets: list[tuple[Collector, grpc.Channel, list[tuple[str, str]]]] = [
        (stack.agent, grpc.insecure_channel(stack.agent.otlp_grpc, options=options), []),
        (
            gw,
            grpc.secure_channel(gw.otlp_grpc, creds, options=options),
            [("authorization", f"Bearer {stack.token}")],
        ),
    ]
    figures: dict[str, dict[str, Any]] = {}
    for collector, channel, metadata in targets:
        limiter = collector.config["processors"]["memory_limiter"]
        with channel:
            before = _refusals(collector)
            request = _flood_request(f"overload-{collector.name}", random.Random(5))
            started = time.monotonic()
            codes = _flood(channel, metadata, request)
            flood_s = time.monotonic() - started
            time.sleep(1.5)  # one check_interval and a scrape
            after = _refusals(collector)
            recovered = _accepts_again(channel, metadata, f"overload-{collector.name}")
        heap = [int(r.get("cur_mem_mib", 0)) for r in collector.log_records("Memory usage")]
        figures[collector.name] = {
            "memory_limiter limit / spike MiB": f"{limiter['limit_mib']} / {limiter['spike_limit_mib']}",
            "flood s": f"{flood_s:.1f}",
            "requests accepted": codes.get("OK", 0),
            "requests refused (status)": ", ".join(f"{n} {c}" for c, n in sorted(codes.items()) if c != "OK"),
            **{f"{name} +": f"{after.get(name, 0) - before.get(name, 0):.0f}" for name in sorted(after)},
            '"Refusing data" log records': len(collector.log_records("Refusing data")),
            "highest heap logged by memory_limiter MiB": max(heap, default=0),
            "peak RSS MiB (VmHWM)": f"{collector.peak_rss_mib():.0f}",
            "alive and healthy": collector.alive() and collector.healthy(),
            "accepts again after s": f"{recovered:.1f}" if recovered is not None else "no",
            "_codes": codes,
            "_grown": {k for k in after if after[k] > before.get(k, 0.0)},
            "_recovered": recovered,
        }
    names = list(figures)
    keys = [k for k in figures[names[0]] if not k.startswith("_")]
    keys += [k for k in figures[names[1]] if not k.startswith("_") and k not in keys]
    print(
        analysis.table(
            f"6. overload: {FLOOD_THREADS} clients, requests of {FLOOD_SPANS} spans × {FLOOD_ATTR_BYTES} B",
            ("figure", *names),
            [(k, *(figures[n].get(k, "") for n in names)) for k in keys],
        )
    )
    for collector, _channel, _metadata in targets:
        f = figures[collector.name]
        refused = sum(n for code, n in f["_codes"].items() if code != "OK")
        assert refused > 0 and f["_codes"].get("UNAVAILABLE", 0) > 0, f"{collector.name}: not refused: {f['_codes']}"
        assert collector.alive() and collector.healthy(), f"{collector.name} did not survive:\n{collector.log_tail()}"
        assert set(REFUSAL_METRICS) <= f["_grown"], f"{collector.name}: refusal metrics that grew: {f['_grown']}"
        assert f["_recovered"] is not None, f"{collector.name} still refuses 30 s after the overload ended"
    assert all(c.alive() for c in stack.gateways.values())
