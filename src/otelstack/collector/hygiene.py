"""Redaction, health-check filtering and cardinality controls, as OTTL the pinned release accepts."""

from __future__ import annotations

from otelstack.collector.blocks import Config
from otelstack.model.spec import Cardinality, Redaction


def ottl_string(value: str) -> str:
    """A double-quoted OTTL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def collector_escape(value: str) -> str:
    """Escape ``$`` so the collector's config expansion leaves regex replacements alone."""
    return value.replace("$", "$$")


def _attr(key: str) -> str:
    return f"attributes[{ottl_string(key)}]"


def _redaction_statements(redaction: Redaction) -> list[str]:
    statements = [f"delete_key(attributes, {ottl_string(k)})" for k in redaction.delete_keys]
    statements += [f"set({_attr(k)}, SHA256({_attr(k)})) where {_attr(k)} != nil" for k in redaction.hash_keys]
    statements += [
        f"replace_pattern({_attr(p.attribute)}, {ottl_string(p.pattern)}, "
        f"{ottl_string(collector_escape(p.replacement))})"
        for p in redaction.patterns
    ]
    return statements


def redaction_transform(redaction: Redaction) -> Config:
    """Delete, hash and pattern-replace PII on spans, span events and log records.

    One ``transform`` processor covers all three contexts, so span events are scrubbed too (the seeds'
    GenAI redaction used log statements in a traces pipeline, which never touched them). The
    ``attributes`` processor's ``update`` has no pattern support, so patterns use ``replace_pattern``.
    """
    statements = _redaction_statements(redaction)
    return {
        "error_mode": "ignore",
        "trace_statements": [
            {"context": "span", "statements": statements},
            {"context": "spanevent", "statements": statements},
        ],
        "log_statements": [{"context": "log", "statements": statements}],
    }


def health_filter(cardinality: Cardinality) -> Config:
    """Drop spans of health/readiness/metrics endpoints (server spans carry http.route or url.path)."""
    conditions = []
    for route in cardinality.health_routes:
        conditions.append(f"{_attr('http.route')} == {ottl_string(route)}")
        conditions.append(f"{_attr('url.path')} == {ottl_string(route)}")
    return {"error_mode": "ignore", "traces": {"span": conditions}}


def cardinality_transform(cardinality: Cardinality) -> Config:
    """Normalise routes and drop per-request attributes on metric data points."""
    statements = [
        f"replace_pattern({_attr('http.route')}, {ottl_string(pattern)}, {ottl_string(collector_escape(repl))})"
        for pattern, repl in sorted(cardinality.route_patterns.items())
    ]
    statements += [f"delete_key(attributes, {ottl_string(k)})" for k in cardinality.drop_metric_attributes]
    return {"error_mode": "ignore", "metric_statements": [{"context": "datapoint", "statements": statements}]}


def emergency_filter(drop_services_regex: str, severity_floor: str) -> Config:
    """Seed 000 runbook: drop non-critical services' spans and logs below WARN (or ERROR)."""
    service = 'resource.attributes["service.name"]'
    return {
        "error_mode": "ignore",
        "traces": {"span": [f"IsMatch({service}, {ottl_string(drop_services_regex)})"]},
        "logs": {
            "log_record": [
                f"IsMatch({service}, {ottl_string(drop_services_regex)})",
                f"severity_number > SEVERITY_NUMBER_UNSPECIFIED and severity_number < SEVERITY_NUMBER_{severity_floor}",
            ]
        },
    }
