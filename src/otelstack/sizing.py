"""Sizing: replicas, requests/limits, memory_limiter, GOMEMLIMIT, queues and storage from expected load.

Every constant names its source; where the seeds disagree, the choice and the reason are stated here and
in docs/sizing.md. Figures are per environment (the spec's ``load``), before sampling.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from otelstack.model.spec import PlatformSpec, SizeKnob

MIB = 1024 * 1024
GB = 1000**3

# Seed 000 L6222 (20k spans/s per collector, with the L6211 worked example); seeds 001 (10k–50k) and 003
# (~50k) are ranges without a formula. We take the conservative figure that comes with a formula.
SPANS_PER_GATEWAY = 20_000
# Seed 000 L6211: "safety factor 2". The size knob moves it: it is the headroom over expected load.
SAFETY = {SizeKnob.SMALL: 1.5, SizeKnob.MEDIUM: 2.0, SizeKnob.LARGE: 3.0, SizeKnob.XLARGE: 4.0}
# Per 10k spans/s: seed 000 L3628 says 0.5–1 core / 0.5–1 GB, L6227 says 1–2 cores / 1–2 GB. The
# gateway runs tail sampling, spanmetrics and redaction (the heavier end), so: 1 core and 1 GiB,
# plus the tail-sampling buffer computed below and a 512 MiB base.
CORES_PER_10K = 1.0
MIB_PER_10K = 1024
BASE_MIB = 512
# Logs and metrics share the gateways. Cost relative to one span (our assumption, stated in the docs):
LOG_RECORD_COST = 0.5
DATAPOINT_COST = 0.1
# Tail sampling keeps every span of a trace for decision_wait: buffer = rate × wait × size × overhead.
TAIL_BUFFER_OVERHEAD = 2.0
# Compression after ingestion: seed 000 L4015/L6244 (10:1 for ClickHouse); applied to Tempo and Loki
# too for want of a better figure. Prometheus TSDB: ~1.5 bytes per sample (Prometheus storage docs).
COMPRESSION_RATIO = 10.0
PROM_BYTES_PER_SAMPLE = 1.5
# Share of traces kept by the error and latency policies on top of the probabilistic share
# (our assumption: 1 % errors + 1 % slow; seed 000 L5948 uses a 0.1 % error rate).
ERROR_AND_SLOW_SHARE = 0.02
# Queues hold batches; size them to ride out the retry window (max_elapsed_time 300 s) twice over.
OUTAGE_SECONDS = 300
GATEWAY_BATCH = 8192


@dataclass(frozen=True)
class TierSizing:
    replicas: int
    cpu_request: float
    cpu_limit: float
    memory_request_mib: int
    memory_limit_mib: int
    memory_limiter_limit_mib: int
    memory_limiter_spike_mib: int
    gomemlimit_mib: int
    queue_size: int
    spans_per_second_each: int


@dataclass(frozen=True)
class BackendStorage:
    backend: str
    signal: str
    gb_per_day: float
    retention_days: int
    gb_retained: float


@dataclass(frozen=True)
class Sizing:
    environment: str
    safety_factor: float
    span_equivalents_per_second: int
    kept_trace_share: float
    gateway: TierSizing
    agent: TierSizing
    storage: tuple[BackendStorage, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _round_up(value: float, step: int) -> int:
    return int(math.ceil(value / step) * step)


def _limits(memory_limit_mib: int) -> tuple[int, int, int]:
    """memory_limiter hard limit 80 % of the container limit, spike 25 % of that; GOMEMLIMIT = hard limit.

    The limiter's soft limit (hard − spike = 60 %) starts refusing data before the Go GC's target, so
    the process sheds load before it is OOM-killed (seed 000 §5 inconsistency 2: keep them coherent).
    """
    limit = max(64, int(memory_limit_mib * 0.8))
    spike = max(16, limit // 4)
    return limit, spike, limit


def size_platform(spec: PlatformSpec) -> Sizing:
    load = spec.load
    safety = SAFETY[spec.size]
    datapoints_per_second = load.active_series / load.scrape_interval_seconds
    equivalents = (
        load.spans_per_second + LOG_RECORD_COST * load.log_records_per_second + DATAPOINT_COST * datapoints_per_second
    )

    g = spec.tiers.gateway
    needed = math.ceil(equivalents * safety / SPANS_PER_GATEWAY)
    replicas = g.replicas or min(g.max_replicas, max(g.min_replicas, needed))
    per_replica = equivalents * safety / replicas
    span_share = load.spans_per_second * safety / replicas
    wait_s = _seconds(spec.sampling.tail.decision_wait)
    tail_buffer_mib = span_share * wait_s * load.average_span_bytes * TAIL_BUFFER_OVERHEAD / MIB
    memory_limit = g.memory_limit_mib or _round_up(BASE_MIB + MIB_PER_10K * per_replica / 10_000 + tail_buffer_mib, 256)
    memory_limit = max(memory_limit, 1024)
    cpu_limit = g.cpu_limit or max(1.0, math.ceil(CORES_PER_10K * per_replica / 10_000 * 2) / 2)
    limiter, spike, gomem = _limits(memory_limit)

    kept = spec.sampling.head.ratio * min(1.0, spec.sampling.tail.probabilistic_percentage / 100 + ERROR_AND_SLOW_SHARE)
    requests_per_second = max(1.0, per_replica / GATEWAY_BATCH)
    queue_by_outage = math.ceil(requests_per_second * OUTAGE_SECONDS * 2)
    queue_by_disk = int(g.queue_dir_gib * 1024 * MIB / (GATEWAY_BATCH * load.average_span_bytes))
    queue_size = max(1000, min(queue_by_outage, max(queue_by_disk, 1000)))
    gateway = TierSizing(
        replicas=replicas,
        cpu_request=round(cpu_limit / 2, 2),
        cpu_limit=cpu_limit,
        memory_request_mib=memory_limit // 2,
        memory_limit_mib=memory_limit,
        memory_limiter_limit_mib=limiter,
        memory_limiter_spike_mib=spike,
        gomemlimit_mib=gomem,
        queue_size=queue_size,
        spans_per_second_each=int(span_share),
    )

    a = spec.tiers.agent
    agents = max(1, load.agents)
    a_limiter, a_spike, a_gomem = _limits(a.memory_limit_mib)
    agent = TierSizing(
        replicas=agents,
        cpu_request=round(a.cpu_limit / 5, 2),
        cpu_limit=a.cpu_limit,
        memory_request_mib=a.memory_limit_mib // 2,
        memory_limit_mib=a.memory_limit_mib,
        memory_limiter_limit_mib=a_limiter,
        memory_limiter_spike_mib=a_spike,
        gomemlimit_mib=a_gomem,
        queue_size=5000,
        spans_per_second_each=int(load.spans_per_second / agents),
    )
    return Sizing(
        environment=spec.environment,
        safety_factor=safety,
        span_equivalents_per_second=int(equivalents),
        kept_trace_share=round(kept, 4),
        gateway=gateway,
        agent=agent,
        storage=tuple(_storage(spec, kept, datapoints_per_second)),
    )


def _storage(spec: PlatformSpec, kept: float, datapoints_per_second: float) -> list[BackendStorage]:
    load, b, r = spec.load, spec.backends, spec.retention
    day = 86_400
    traces_gb = load.spans_per_second * kept * day * load.average_span_bytes / COMPRESSION_RATIO / GB
    logs_gb = load.log_records_per_second * day * load.average_log_bytes / COMPRESSION_RATIO / GB
    prom_gb = datapoints_per_second * day * PROM_BYTES_PER_SAMPLE / GB
    ch_metrics_gb = datapoints_per_second * day * load.average_sample_bytes / COMPRESSION_RATIO / GB
    rows: list[tuple[bool, str, str, float, int]] = [
        (b.tempo.enabled, "tempo", "traces", traces_gb, r.traces.hot_days),
        (b.clickhouse.enabled, "clickhouse", "traces", traces_gb, r.traces.total_days),
        (b.loki.enabled, "loki", "logs", logs_gb, r.logs.total_days),
        (b.clickhouse.enabled, "clickhouse", "logs", logs_gb, r.logs.total_days),
        (b.prometheus.enabled, "prometheus", "metrics", prom_gb, r.metrics.hot_days),
        (b.clickhouse.enabled, "clickhouse", "metrics", ch_metrics_gb, r.metrics.total_days),
    ]
    return [
        BackendStorage(
            backend=name, signal=signal, gb_per_day=round(gb, 3), retention_days=days, gb_retained=round(gb * days, 1)
        )
        for enabled, name, signal, gb, days in rows
        if enabled
    ]


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for suffix in ("ms", "s", "m", "h"):
        if duration.endswith(suffix):
            return float(duration[: -len(suffix)]) * units[suffix]
    raise ValueError(f"not a duration: {duration!r}")


def sizing_markdown(s: Sizing) -> str:
    g, a = s.gateway, s.agent
    lines = [
        f"# Sizing — {s.environment}",
        "",
        f"Load in span-equivalents/s: {s.span_equivalents_per_second:,} (safety factor {s.safety_factor:g}); "
        f"share of traces kept after head and tail sampling: {s.kept_trace_share:.2%}.",
        "",
        "| tier | replicas | CPU req/limit | memory req/limit (MiB) | memory_limiter limit/spike (MiB) "
        "| GOMEMLIMIT (MiB) | queue size | spans/s each |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, t in (("gateway", g), ("agent", a)):
        lines.append(
            f"| {name} | {t.replicas} | {t.cpu_request:g}/{t.cpu_limit:g} "
            f"| {t.memory_request_mib}/{t.memory_limit_mib} "
            f"| {t.memory_limiter_limit_mib}/{t.memory_limiter_spike_mib} | {t.gomemlimit_mib} | {t.queue_size} "
            f"| {t.spans_per_second_each:,} |"
        )
    lines += ["", "| backend | signal | GB/day | retention (days) | GB retained |", "|---|---|---|---|---|"]
    for st in s.storage:
        lines.append(f"| {st.backend} | {st.signal} | {st.gb_per_day:g} | {st.retention_days} | {st.gb_retained:g} |")
    lines += ["", "Formulas and sources: docs/sizing.md.", ""]
    return "\n".join(lines)
