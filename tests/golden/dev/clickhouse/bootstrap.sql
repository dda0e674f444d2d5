-- otelstack ClickHouse bootstrap (dev): applied on every run (IF NOT EXISTS): the database and the runner's migrations table.
-- Layout: github.com/open-telemetry/opentelemetry-collector-contrib/exporter/clickhouseexporter@v0.159.0 (the exporter runs with create_schema: false).
-- Apply with: python -m otelstack.backends.clickhouse apply (docs/backends/clickhouse.md).

CREATE DATABASE IF NOT EXISTS `otel`;

CREATE TABLE IF NOT EXISTS `otel`.`otelstack_schema_migrations`
(
    `name` String,
    `kind` LowCardinality(String),
    `checksum` String,
    `applied_at` DateTime64(3) DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (name, applied_at);
