"""Gateway tier: mTLS + auth ingress, tail sampling, spanmetrics, redaction, fan-out to the backends."""

from __future__ import annotations

from otelstack.backends.loki import tenant_headers
from otelstack.collector.blocks import (
    Config,
    Paths,
    cid,
    client_tls,
    env_ref,
    file_storage,
    health_check_extension,
    memory_limiter,
    retry_on_failure,
    sending_queue,
    server_tls,
    telemetry,
)
from otelstack.collector.hygiene import (
    cardinality_transform,
    health_filter,
    redaction_transform,
    span_route_transform,
)
from otelstack.collector.opamp import opamp_extension
from otelstack.collector.sampling import tail_sampling
from otelstack.model.spec import PlatformSpec
from otelstack.security.layout import OTLP_GRPC_PORT, OTLP_HTTP_PORT
from otelstack.sizing import size_platform


def render_gateway(spec: PlatformSpec, paths: Paths, *, opamp_extension_enabled: bool) -> Config:
    sizing = size_platform(spec)
    hop = spec.security.tls.agent_to_gateway
    backend_tls = client_tls(spec.security.tls.gateway_to_backends, paths, spec)

    ext_health = cid("extension", "health_check")
    ext_queue = cid("extension", "file_storage", "queue")
    ext_auth = cid("extension", "bearertokenauth", "ingest")
    extensions: Config = {
        ext_health: health_check_extension("0.0.0.0"),
        ext_queue: file_storage(paths.queue_dir),
    }
    auth = spec.security.receiver_auth.kind == "bearer"
    if auth:
        extensions[ext_auth] = {"token": env_ref(spec.security.receiver_auth.token)}
    if opamp_extension_enabled:
        extensions[cid("extension", "opamp")] = opamp_extension(spec, paths)

    otlp_rx = cid("receiver", "otlp")
    grpc: Config = {
        "endpoint": f"0.0.0.0:{OTLP_GRPC_PORT}",
        "max_recv_msg_size_mib": spec.tiers.gateway.max_recv_msg_size_mib,
    }
    http: Config = {"endpoint": f"0.0.0.0:{OTLP_HTTP_PORT}"}
    tls = server_tls(hop, paths, spec)
    for proto in (grpc, http):
        if tls:
            proto["tls"] = dict(tls)
        if auth:
            proto["auth"] = {"authenticator": ext_auth}

    p_mem = cid("processor", "memory_limiter")
    p_health = cid("processor", "filter", "health")
    p_routes = cid("processor", "transform", "routes")
    p_redact = cid("processor", "transform", "redact")
    p_sample = cid("processor", "tail_sampling")
    p_card = cid("processor", "transform", "cardinality")
    p_resource = cid("processor", "resource", "gateway")
    p_batch = cid("processor", "batch")
    resource_attrs: list[Config] = [
        {"key": "deployment.environment.name", "value": spec.environment, "action": "insert"}
    ]
    if spec.cluster_name:
        resource_attrs.append({"key": "k8s.cluster.name", "value": spec.cluster_name, "action": "insert"})
    processors: Config = {
        p_mem: memory_limiter(sizing.gateway.memory_limit_mib),
        p_health: health_filter(spec.cardinality),
        p_routes: span_route_transform(spec.cardinality),
        p_redact: redaction_transform(spec.redaction),
        p_sample: tail_sampling(spec.sampling.tail),
        p_card: cardinality_transform(spec.cardinality),
        p_resource: {"attributes": resource_attrs},
        p_batch: {"timeout": "1s", "send_batch_size": 8192, "send_batch_max_size": 16384},
    }

    c_spanmetrics = cid("connector", "spanmetrics")
    connectors: Config = {
        c_spanmetrics: {
            "histogram": {
                "explicit": {
                    "buckets": ["5ms", "10ms", "25ms", "50ms", "100ms", "250ms", "500ms", "1s", "2.5s", "5s", "10s"]
                }
            },
            "dimensions": [
                {"name": "http.request.method"},
                {"name": "http.response.status_code"},
                {"name": "http.route"},
                {"name": "rpc.method"},
            ],
            "exemplars": {"enabled": True},
            "metrics_flush_interval": "15s",
            "aggregation_cardinality_limit": 10000,
        }
    }

    queue = sending_queue(ext_queue, sizing.gateway.queue_size)
    exporters: Config = {}
    traces_out: list[str] = []
    metrics_out: list[str] = []
    logs_out: list[str] = []
    b = spec.backends
    if b.tempo.enabled:
        x = cid("exporter", "otlp", "tempo")
        exporters[x] = {
            "endpoint": b.tempo.endpoint,
            "tls": dict(backend_tls),
            "compression": "gzip",
            "sending_queue": dict(queue),
            "retry_on_failure": retry_on_failure(),
        }
        traces_out.append(x)
    if b.loki.enabled:
        x = cid("exporter", "otlphttp", "loki")
        exporters[x] = {
            "endpoint": b.loki.endpoint,
            "tls": dict(backend_tls),
            # Loki refuses a push without its tenant where auth_enabled (staging, prod): 401 "no org id".
            **({"headers": headers} if (headers := tenant_headers(spec)) else {}),
            "compression": "gzip",
            "sending_queue": dict(queue),
            "retry_on_failure": retry_on_failure(),
        }
        logs_out.append(x)
    if b.prometheus.enabled:
        x = cid("exporter", "prometheusremotewrite")
        exporters[x] = {
            "endpoint": b.prometheus.endpoint,
            "tls": dict(backend_tls),
            "resource_to_telemetry_conversion": {"enabled": False},
            "retry_on_failure": retry_on_failure(),
        }
        metrics_out.append(x)
    if b.clickhouse.enabled:
        x = cid("exporter", "clickhouse")
        exporters[x] = {
            "endpoint": b.clickhouse.endpoint,
            "database": b.clickhouse.database,
            "username": b.clickhouse.username,
            "password": env_ref(b.clickhouse.password),
            "create_schema": False,  # the schema (with TTL per retention tier) is owned by otelstack
            **_clickhouse_tls(backend_tls),
            "timeout": b.clickhouse.timeout,
            "sending_queue": dict(queue),
            "retry_on_failure": retry_on_failure(),
        }
        for out in (traces_out, metrics_out, logs_out):
            out.append(x)

    # Span metrics see every span, before tail sampling (so they count all traffic), with routes
    # already normalised (so the connector aggregates /orders/1 and /orders/2 into one series).
    pipelines: Config = {
        "traces/spanmetrics": {
            "receivers": [otlp_rx],
            "processors": [p_mem, p_health, p_routes],
            "exporters": [c_spanmetrics],
        },
    }
    if traces_out:
        pipelines["traces"] = {
            "receivers": [otlp_rx],
            "processors": [p_mem, p_health, p_routes, p_redact, p_sample, p_resource, p_batch],
            "exporters": traces_out,
        }
    metrics_targets = metrics_out or [cid("exporter", "nop")]
    pipelines["metrics"] = {
        "receivers": [otlp_rx],
        "processors": [p_mem, p_card, p_resource, p_batch],
        "exporters": metrics_targets,
    }
    pipelines["metrics/spanmetrics"] = {
        "receivers": [c_spanmetrics],
        "processors": [p_mem, p_resource, p_batch],
        "exporters": metrics_targets,
    }
    if logs_out:
        pipelines["logs"] = {
            "receivers": [otlp_rx],
            "processors": [p_mem, p_redact, p_resource, p_batch],
            "exporters": logs_out,
        }
    if not metrics_out:
        exporters[cid("exporter", "nop")] = {}

    return {
        "extensions": extensions,
        "receivers": {otlp_rx: {"protocols": {"grpc": grpc, "http": http}}},
        "processors": processors,
        "connectors": connectors,
        "exporters": exporters,
        "service": {
            "extensions": list(extensions),
            "pipelines": pipelines,
            "telemetry": telemetry(spec, supervised=not opamp_extension_enabled),
        },
    }


def _clickhouse_tls(backend_tls: Config) -> Config:
    """The exporter's ``tls`` (the platform CA, client certificates with mTLS); TLS itself is switched
    on by the endpoint (``?secure=true`` or https), which the spec requires outside dev."""
    return {} if backend_tls.get("insecure") else {"tls": dict(backend_tls)}
