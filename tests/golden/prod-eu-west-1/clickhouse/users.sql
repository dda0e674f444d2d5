-- otelstack ClickHouse users (prod): applied on every run. Passwords are secret references, resolved to SHA-256 by the runner at apply time; this file never holds a password or a hash.

CREATE ROLE IF NOT EXISTS otelstack_exporter;

GRANT INSERT ON `otel`.`otel_traces`, INSERT ON `otel`.`otel_logs`, INSERT ON `otel`.`otel_metrics_gauge`, INSERT ON `otel`.`otel_metrics_sum`, INSERT ON `otel`.`otel_metrics_histogram`, INSERT ON `otel`.`otel_metrics_exponential_histogram`, INSERT ON `otel`.`otel_metrics_summary`, SHOW COLUMNS ON `otel`.`otel_logs` TO otelstack_exporter WITH REPLACE OPTION;

CREATE ROLE IF NOT EXISTS otelstack_reader;

ALTER ROLE otelstack_reader SETTINGS readonly = 2;

GRANT SELECT ON `otel`.`otel_traces`, SELECT ON `otel`.`otel_logs`, SELECT ON `otel`.`otel_metrics_gauge`, SELECT ON `otel`.`otel_metrics_sum`, SELECT ON `otel`.`otel_metrics_histogram`, SELECT ON `otel`.`otel_metrics_exponential_histogram`, SELECT ON `otel`.`otel_metrics_summary`, SELECT ON `otel`.`otel_traces_trace_id_ts` TO otelstack_reader WITH REPLACE OPTION;

CREATE USER IF NOT EXISTS `otel_writer` IDENTIFIED WITH sha256_hash BY '${sha256:env:OTELSTACK_CLICKHOUSE_PASSWORD}' DEFAULT DATABASE `otel`;

ALTER USER `otel_writer` IDENTIFIED WITH sha256_hash BY '${sha256:env:OTELSTACK_CLICKHOUSE_PASSWORD}';

REVOKE ALL ON *.* FROM `otel_writer`;

GRANT otelstack_exporter TO `otel_writer` WITH REPLACE OPTION;

ALTER USER `otel_writer` DEFAULT ROLE otelstack_exporter;

CREATE USER IF NOT EXISTS `grafana_reader` IDENTIFIED WITH sha256_hash BY '${sha256:env:OTELSTACK_CLICKHOUSE_READER_PASSWORD}' DEFAULT DATABASE `otel`;

ALTER USER `grafana_reader` IDENTIFIED WITH sha256_hash BY '${sha256:env:OTELSTACK_CLICKHOUSE_READER_PASSWORD}';

REVOKE ALL ON *.* FROM `grafana_reader`;

GRANT otelstack_reader TO `grafana_reader` WITH REPLACE OPTION;

ALTER USER `grafana_reader` DEFAULT ROLE otelstack_reader;
