-- otelstack ClickHouse 001-database (dev): applied once, recorded with the SHA-256 of its statements; an applied migration never changes.
-- Layout: github.com/open-telemetry/opentelemetry-collector-contrib/exporter/clickhouseexporter@v0.159.0 (the exporter runs with create_schema: false).

CREATE DATABASE IF NOT EXISTS `otel`;
