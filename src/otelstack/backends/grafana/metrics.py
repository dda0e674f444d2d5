"""Every metric name a dashboard panel queries, in one place, with where it comes from.

Dashboards import the names from here and a test checks each panel's queries against ``known_metrics``:
the collector's own metrics (the pinned release's Prometheus endpoint on :8888), the gateway's span
metrics as the gateway render configures the connector, Tempo's metrics generator, the backends' own
metrics and the OpAMP server's fleet metrics.
"""

from __future__ import annotations

from typing import Any

from otelstack.model.spec import PlatformSpec

# --- the collector's own metrics (v0.159.0, service.telemetry.metrics level detailed, :8888) ------------
# Read off the real v0.159.0 binary's Prometheus endpoint after traffic (tests/backends/test_grafana.py does it
# again): this release exposes its own metrics WITHOUT the `_total` and unit suffixes (e.g.
# otelcol_receiver_accepted_spans, otelcol_process_memory_rss), and Prometheus stores them as exposed.
SIGNAL_ITEMS = {"traces": "spans", "metrics": "metric_points", "logs": "log_records"}
RECEIVER_ACCEPTED = {s: f"otelcol_receiver_accepted_{i}" for s, i in SIGNAL_ITEMS.items()}
RECEIVER_REFUSED = {s: f"otelcol_receiver_refused_{i}" for s, i in SIGNAL_ITEMS.items()}
RECEIVER_FAILED = {s: f"otelcol_receiver_failed_{i}" for s, i in SIGNAL_ITEMS.items()}
EXPORTER_SENT = {s: f"otelcol_exporter_sent_{i}" for s, i in SIGNAL_ITEMS.items()}
EXPORTER_FAILED = {s: f"otelcol_exporter_send_failed_{i}" for s, i in SIGNAL_ITEMS.items()}
# Only exposed once a full queue has refused an item, so not seen in a short run; same naming scheme.
EXPORTER_ENQUEUE_FAILED = {s: f"otelcol_exporter_enqueue_failed_{i}" for s, i in SIGNAL_ITEMS.items()}
QUEUE_SIZE = "otelcol_exporter_queue_size"
QUEUE_CAPACITY = "otelcol_exporter_queue_capacity"
PROCESSOR_INCOMING = "otelcol_processor_incoming_items"
PROCESSOR_OUTGOING = "otelcol_processor_outgoing_items"
PROCESS_RSS = "otelcol_process_memory_rss"
PROCESS_CPU = "otelcol_process_cpu_seconds"
PROCESS_UPTIME = "otelcol_process_uptime"
UP = "up"  # Prometheus' own per-target series

# The names a short run with traffic through a receiver, a processor and a failing queued exporter shows.
COLLECTOR_METRICS_SEEN = frozenset(
    [
        *RECEIVER_ACCEPTED.values(),
        *RECEIVER_REFUSED.values(),
        *RECEIVER_FAILED.values(),
        *EXPORTER_SENT.values(),
        *EXPORTER_FAILED.values(),
        QUEUE_SIZE,
        QUEUE_CAPACITY,
        PROCESSOR_INCOMING,
        PROCESSOR_OUTGOING,
        PROCESS_RSS,
        PROCESS_CPU,
        PROCESS_UPTIME,
    ]
)
COLLECTOR_METRICS = COLLECTOR_METRICS_SEEN | frozenset(EXPORTER_ENQUEUE_FAILED.values())

# --- Tempo's metrics generator (service-graphs, span-metrics processors) --------------------------------
SERVICE_GRAPH_REQUESTS = "traces_service_graph_request_total"
SERVICE_GRAPH_FAILED = "traces_service_graph_request_failed_total"
SERVICE_GRAPH_SERVER_SECONDS = "traces_service_graph_request_server_seconds_bucket"
TEMPO_SPANMETRICS_CALLS = "traces_spanmetrics_calls_total"
TEMPO_SPANMETRICS_LATENCY = "traces_spanmetrics_latency_bucket"
TEMPO_GENERATOR_METRICS = frozenset(
    [
        SERVICE_GRAPH_REQUESTS,
        SERVICE_GRAPH_FAILED,
        SERVICE_GRAPH_SERVER_SECONDS,
        TEMPO_SPANMETRICS_CALLS,
        TEMPO_SPANMETRICS_LATENCY,
    ]
)

# --- the backends' own metrics (their /metrics endpoints, scraped by Prometheus) ------------------------
LOKI_LINES_RECEIVED = "loki_distributor_lines_received_total"
LOKI_BYTES_RECEIVED = "loki_distributor_bytes_received_total"
LOKI_DISCARDED = "loki_discarded_samples_total"
LOKI_REQUEST_DURATION = "loki_request_duration_seconds_count"
LOKI_STREAMS = "loki_ingester_memory_streams"
TEMPO_SPANS_RECEIVED = "tempo_distributor_spans_received_total"
TEMPO_DISCARDED = "tempo_discarded_spans_total"
TEMPO_REQUEST_DURATION = "tempo_request_duration_seconds_count"
TEMPO_LIVE_TRACES = "tempo_ingester_live_traces"
CLICKHOUSE_INSERTED_ROWS = "ClickHouseProfileEvents_InsertedRows"
CLICKHOUSE_FAILED_QUERIES = "ClickHouseProfileEvents_FailedQuery"
CLICKHOUSE_DISK_AVAILABLE = "ClickHouseAsyncMetrics_DiskAvailable_default"
CLICKHOUSE_DISK_TOTAL = "ClickHouseAsyncMetrics_DiskTotal_default"
CLICKHOUSE_PARTS = "ClickHouseAsyncMetrics_MaxPartCountForPartition"
BACKEND_METRICS = frozenset(
    [
        LOKI_LINES_RECEIVED,
        LOKI_BYTES_RECEIVED,
        LOKI_DISCARDED,
        LOKI_REQUEST_DURATION,
        LOKI_STREAMS,
        TEMPO_SPANS_RECEIVED,
        TEMPO_DISCARDED,
        TEMPO_REQUEST_DURATION,
        TEMPO_LIVE_TRACES,
        CLICKHOUSE_INSERTED_ROWS,
        CLICKHOUSE_FAILED_QUERIES,
        CLICKHOUSE_DISK_AVAILABLE,
        CLICKHOUSE_DISK_TOTAL,
        CLICKHOUSE_PARTS,
    ]
)

# --- the OpAMP server's fleet metrics (src/otelstack/opamp/metrics.py) ----------------------------------
FLEET_TOTAL = "agent_fleet_total"
FLEET_COMPLIANT = "otelstack_opamp_agent_config_compliant"
FLEET_LAST_SEEN = "otelstack_opamp_agent_last_seen_timestamp_seconds"
ROLLOUT_PROGRESS = "otelstack_opamp_rollout_progress_ratio"
ROLLOUT_WAVE = "otelstack_opamp_rollout_wave"
OPAMP_METRICS = frozenset([FLEET_TOTAL, FLEET_COMPLIANT, FLEET_LAST_SEEN, ROLLOUT_PROGRESS, ROLLOUT_WAVE])

# Unit suffixes the Prometheus translation appends (the remote-write exporter's default).
_UNIT_SUFFIX = {"ms": "milliseconds", "s": "seconds", "us": "microseconds", "ns": "nanoseconds"}


class SpanMetrics:
    """The gateway's span-metrics series names, from the connector config the gateway render writes."""

    def __init__(self, connector: dict[str, Any]) -> None:
        namespace = str(connector.get("namespace", "traces.span.metrics"))
        unit = str(connector.get("histogram", {}).get("unit", "ms"))
        base = namespace.replace(".", "_")
        self.calls = f"{base}_calls_total"
        duration = f"{base}_duration_{_UNIT_SUFFIX[unit]}"
        self.duration_bucket = f"{duration}_bucket"
        self.duration_count = f"{duration}_count"
        self.duration_sum = f"{duration}_sum"
        # Thresholds in the histogram's unit: the SLO's latency objective is written in it.
        self.unit = unit

    @property
    def names(self) -> frozenset[str]:
        return frozenset([self.calls, self.duration_bucket, self.duration_count, self.duration_sum])


def gateway_span_metrics(spec: PlatformSpec) -> SpanMetrics:
    """Span metrics as configured in the gateway render for this spec."""
    from otelstack.collector.blocks import Paths
    from otelstack.collector.gateway import render_gateway
    from otelstack.security.layout import VM

    config = render_gateway(spec, Paths.for_vm(VM), opamp_extension_enabled=False)
    connectors = [
        v for k, v in config.get("connectors", {}).items() if k.split("/")[0] in ("span_metrics", "spanmetrics")
    ]
    if len(connectors) != 1:
        raise ValueError(f"the gateway render has {len(connectors)} span-metrics connectors; dashboards expect one")
    return SpanMetrics(connectors[0])


def known_metrics(spec: PlatformSpec) -> frozenset[str]:
    """Every metric name a dashboard may query for this spec."""
    return (
        COLLECTOR_METRICS
        | TEMPO_GENERATOR_METRICS
        | BACKEND_METRICS
        | OPAMP_METRICS
        | gateway_span_metrics(spec).names
        | {UP}
    )
