"""Redaction, health-check filtering and cardinality controls, as OTTL the pinned release accepts."""

from __future__ import annotations

import re

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


# Attribute names that semantic conventions renamed: a rule for either name covers both, so spans of
# older and newer instrumentation are scrubbed alike.
SEMCONV_RENAMES = {
    "db.statement": "db.query.text",
    "http.url": "url.full",
    "http.target": "url.path",
    "http.method": "http.request.method",
    "net.peer.name": "server.address",
}
_RENAMED_FROM = {new: old for old, new in SEMCONV_RENAMES.items()}


def both_names(key: str) -> list[str]:
    other = SEMCONV_RENAMES.get(key) or _RENAMED_FROM.get(key)
    return [key, other] if other else [key]


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _redaction_statements(redaction: Redaction, context: str) -> list[str]:
    def attr(key: str) -> str:
        return f"{context}.{_attr(key)}"

    deleted = _unique([name for k in redaction.delete_keys for name in both_names(k)])
    hashed = _unique([name for k in redaction.hash_keys for name in both_names(k)])
    statements = [f"delete_key({context}.attributes, {ottl_string(k)})" for k in deleted]
    statements += [f"set({attr(k)}, SHA256({attr(k)})) where {attr(k)} != nil" for k in hashed]
    statements += _unique(
        [
            f"replace_pattern({attr(name)}, {ottl_string(p.pattern)}, {ottl_string(collector_escape(p.replacement))})"
            for p in redaction.patterns
            for name in both_names(p.attribute)
        ]
    )
    return statements


def body_key_pattern(keys: list[str]) -> str:
    """RE2: ``key=value``, ``key: value`` and ``"key":"value"`` in free text, for any of ``keys``."""
    names = "|".join(re.escape(k) for k in keys)
    return rf"""(?i)((?:{names})["']?\s*[:=]\s*)("[^"]*"|'[^']*'|[^"'\s,&;]+)"""


BEARER_PATTERN = r"(?i)(bearer\s+)[A-Za-z0-9\-._~+/]+=*"


def _body_statements(redaction: Redaction) -> list[str]:
    """Log bodies: structured bodies lose the deleted keys, text bodies have their values masked."""
    deleted = _unique([name for k in redaction.delete_keys for name in both_names(k)])
    text = "IsString(log.body)"
    statements = [f"delete_key(log.body, {ottl_string(k)}) where IsMap(log.body)" for k in deleted]
    masked = ottl_string(collector_escape("${1}***"))
    for pattern in (body_key_pattern(deleted), BEARER_PATTERN):
        statements.append(f"replace_pattern(log.body, {ottl_string(pattern)}, {masked}) where {text}")
    statements += [
        f"replace_pattern(log.body, {ottl_string(p.pattern)}, {ottl_string(collector_escape(p.replacement))}) "
        f"where {text}"
        for p in redaction.patterns
    ]
    return statements


def redaction_transform(redaction: Redaction) -> Config:
    """Delete, hash and pattern-replace PII on spans, span events, log records and log bodies.

    One ``transform`` processor covers every context, so span events are scrubbed too (the seeds'
    GenAI redaction used log statements in a traces pipeline, which never touched them). The
    ``attributes`` processor's ``update`` has no pattern support, so patterns use ``replace_pattern``.

    Span and span-event statements are two groups. In one list the processor infers one context for all
    of them — ``spanevent``, the only one that parses both — and runs the span statements once per span
    event: a span without events keeps its secrets (the real collector and trace store showed it; see
    tests/integration/test_rendered_ottl.py).
    """
    return {
        "error_mode": "ignore",
        "trace_statements": [
            {"statements": _redaction_statements(redaction, "span")},
            {"statements": _redaction_statements(redaction, "spanevent")},
        ],
        "log_statements": [*_redaction_statements(redaction, "log"), *_body_statements(redaction)],
    }


def health_filter(cardinality: Cardinality) -> Config:
    """Drop spans of health/readiness/metrics endpoints (server spans carry http.route or url.path)."""
    conditions = []
    for route in cardinality.health_routes:
        conditions.append(f"span.{_attr('http.route')} == {ottl_string(route)}")
        conditions.append(f"span.{_attr('url.path')} == {ottl_string(route)}")
    return {"error_mode": "ignore", "trace_conditions": conditions}


def route_statements(cardinality: Cardinality, context: str) -> list[str]:
    return [
        f"replace_pattern({context}.{_attr('http.route')}, {ottl_string(pattern)}, "
        f"{ottl_string(collector_escape(repl))})"
        for pattern, repl in sorted(cardinality.route_patterns.items())
    ]


def span_route_transform(cardinality: Cardinality) -> Config:
    """Normalise ``http.route`` on spans, before ``span_metrics`` aggregates them.

    Rewriting data points after the connector has aggregated would turn ``/orders/1`` and ``/orders/2``
    into two cumulative series with the same labels (an identity conflict downstream); rewriting the
    spans first makes the connector aggregate them into one series.
    """
    return {"error_mode": "ignore", "trace_statements": route_statements(cardinality, "span")}


def cardinality_transform(cardinality: Cardinality) -> Config:
    """Normalise routes and drop per-request attributes on the data points of application metrics."""
    statements = route_statements(cardinality, "datapoint")
    statements += [f"delete_key(datapoint.attributes, {ottl_string(k)})" for k in cardinality.drop_metric_attributes]
    return {"error_mode": "ignore", "metric_statements": statements}


# Words that mark a log line of severity WARN or above when no parser set its severity (file logs).
SEVERE_WORDS = r"(?i)\b(warn|warning|err|error|crit|critical|alert|emerg|emergency|fatal|panic)\b"


def emergency_filter(drop_services_regex: str | None, severity_floor: str) -> Config:
    """Drop logs below ``severity_floor`` — and, when a regex is given, the named services' spans and logs.

    File logs carry no parsed severity (``SEVERITY_NUMBER_UNSPECIFIED``); a filter that spared them would
    spare nearly every host log, so an unspecified record is dropped unless its text names a severity of
    WARN or above.
    """
    log = [
        f"log.severity_number > SEVERITY_NUMBER_UNSPECIFIED and log.severity_number < SEVERITY_NUMBER_{severity_floor}",
        "log.severity_number == SEVERITY_NUMBER_UNSPECIFIED and not (IsString(log.body) and "
        f"IsMatch(log.body, {ottl_string(SEVERE_WORDS)}))",
    ]
    config: Config = {"error_mode": "ignore", "log_conditions": log}
    if drop_services_regex:
        service = f'IsMatch(resource.attributes["service.name"], {ottl_string(drop_services_regex)})'
        config["trace_conditions"] = [service]
        config["log_conditions"] = [service, *log]
    return config
