-- Every span of one trace, reading only the time range the lookup table gives for it.
WITH (
    SELECT (min(Start), max(End)) FROM `otel`.otel_traces_trace_id_ts WHERE TraceId = {trace_id:String}
) AS trace_window
SELECT
    Timestamp, TraceId, SpanId, ParentSpanId, ServiceName, SpanName, SpanKind, Duration, StatusCode, StatusMessage
FROM `otel`.otel_traces
WHERE TraceId = {trace_id:String}
  AND Timestamp >= trace_window.1 AND Timestamp < trace_window.2 + INTERVAL 1 SECOND
ORDER BY Timestamp;
