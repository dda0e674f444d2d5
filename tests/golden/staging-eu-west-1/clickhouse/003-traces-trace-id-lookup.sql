-- otelstack ClickHouse 003-traces-trace-id-lookup (staging): applied once, recorded with the SHA-256 of its statements; an applied migration never changes.
-- Layout: github.com/open-telemetry/opentelemetry-collector-contrib/exporter/clickhouseexporter@v0.159.0 (the exporter runs with create_schema: false).

CREATE TABLE IF NOT EXISTS `otel`.`otel_traces_trace_id_ts`
(
    `TraceId` String CODEC(ZSTD(1)),
    `Start` DateTime CODEC(Delta, ZSTD(1)),
    `End` DateTime CODEC(Delta, ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(Start)
ORDER BY (TraceId, Start)
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS `otel`.`otel_traces_trace_id_ts_mv` TO `otel`.`otel_traces_trace_id_ts`
DEFINER = CURRENT_USER SQL SECURITY DEFINER
AS SELECT TraceId, min(Timestamp) AS Start, max(Timestamp) AS End
FROM `otel`.`otel_traces`
WHERE TraceId != ''
GROUP BY TraceId;
