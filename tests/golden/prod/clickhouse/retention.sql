-- otelstack ClickHouse retention (prod): re-applied whenever its statements change (spec.retention); recorded likewise.
-- Layout: github.com/open-telemetry/opentelemetry-collector-contrib/exporter/clickhouseexporter@v0.159.0 (the exporter runs with create_schema: false).
-- TTL per retention tier: moves TO VOLUME with a storage policy, DELETE at the total.

ALTER TABLE `otel`.`otel_traces` MODIFY TTL toDateTime(Timestamp) + toIntervalDay(365) DELETE;

ALTER TABLE `otel`.`otel_traces_trace_id_ts` MODIFY TTL Start + toIntervalDay(365) DELETE;

ALTER TABLE `otel`.`otel_logs` MODIFY TTL toDateTime(Timestamp) + toIntervalDay(30) DELETE;

ALTER TABLE `otel`.`otel_metrics_gauge` MODIFY TTL toDateTime(TimeUnix) + toIntervalDay(395) DELETE;

ALTER TABLE `otel`.`otel_metrics_sum` MODIFY TTL toDateTime(TimeUnix) + toIntervalDay(395) DELETE;

ALTER TABLE `otel`.`otel_metrics_histogram` MODIFY TTL toDateTime(TimeUnix) + toIntervalDay(395) DELETE;

ALTER TABLE `otel`.`otel_metrics_exponential_histogram` MODIFY TTL toDateTime(TimeUnix) + toIntervalDay(395) DELETE;

ALTER TABLE `otel`.`otel_metrics_summary` MODIFY TTL toDateTime(TimeUnix) + toIntervalDay(395) DELETE;
