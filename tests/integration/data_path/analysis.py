"""Reading what the sinks received: spans, log records and metric data points as plain Python."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from tests.integration.data_path.sink import Received


def value(v: Any) -> Any:
    """An OTLP AnyValue as a Python value (maps as dicts, arrays as lists)."""
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "kvlist_value":
        return {kv.key: value(kv.value) for kv in v.kvlist_value.values}
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    return getattr(v, kind)


def attrs(kvs: Iterable[Any]) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in kvs}


@dataclass(frozen=True)
class Span:
    listener: str
    resource: dict[str, Any]
    trace_id: str
    name: str
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    error: bool


@dataclass(frozen=True)
class LogRecord:
    listener: str
    resource: dict[str, Any]
    attributes: dict[str, Any]
    body: Any


@dataclass(frozen=True)
class Point:
    listener: str
    request: int  # index of the export request it came in (identity is per export)
    resource: dict[str, Any]
    metric: str
    attributes: dict[str, Any]
    value: float
    start: int


def spans(items: Iterable[Received]) -> Iterator[Span]:
    for r in items:
        for rs in r.request.resource_spans:
            res = attrs(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    yield Span(
                        r.listener,
                        res,
                        s.trace_id.hex(),
                        s.name,
                        attrs(s.attributes),
                        [attrs(e.attributes) for e in s.events],
                        s.status.code == 2,  # STATUS_CODE_ERROR
                    )


def log_records(items: Iterable[Received]) -> Iterator[LogRecord]:
    for r in items:
        for rl in r.request.resource_logs:
            res = attrs(rl.resource.attributes)
            for sl in rl.scope_logs:
                for lr in sl.log_records:
                    yield LogRecord(r.listener, res, attrs(lr.attributes), value(lr.body))


def sum_points(items: Iterable[Received]) -> Iterator[Point]:
    """Data points of Sum metrics (span metrics' calls counter is one)."""
    for index, r in enumerate(items):
        for rm in r.request.resource_metrics:
            res = attrs(rm.resource.attributes)
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.WhichOneof("data") != "sum":
                        continue
                    for dp in m.sum.data_points:
                        v = dp.as_int if dp.WhichOneof("value") == "as_int" else dp.as_double
                        yield Point(
                            r.listener, index, res, m.name, attrs(dp.attributes), float(v), dp.start_time_unix_nano
                        )


def metric_names(items: Iterable[Received]) -> set[str]:
    return {m.name for r in items for rm in r.request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}


def table(title: str, header: tuple[str, ...], rows: Iterable[tuple[Any, ...]]) -> str:
    """A small fixed-width table for the test output (pytest -s)."""
    body = [tuple(str(c) for c in row) for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    line = "  ".join("-" * w for w in widths)
    out = [f"\n{title}", "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), line]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(out)
