-- A service's error spans in a time range, and the ERROR-or-worse logs of their traces (from any service) within each trace's window: from its first to its last span start (the trace-id lookup table), widened by two minutes each side for spans that log after they start (Grafana's default trace-to-logs shift).
WITH error_traces AS (
    SELECT TraceId, min(Timestamp) AS FirstError
    FROM `otel`.otel_traces
    WHERE ServiceName = {service:String} AND StatusCode = 'Error'
      AND Timestamp >= {start:DateTime} AND Timestamp < {end:DateTime}
    GROUP BY TraceId
), windows AS (
    SELECT TraceId, min(Start) AS Start, max(End) AS End
    FROM `otel`.otel_traces_trace_id_ts
    WHERE TraceId IN (SELECT TraceId FROM error_traces)
    GROUP BY TraceId
)
SELECT
    l.Timestamp AS Timestamp,
    l.TraceId AS TraceId,
    l.SpanId AS SpanId,
    l.ServiceName AS ServiceName,
    l.SeverityText AS SeverityText,
    l.SeverityNumber AS SeverityNumber,
    l.Body AS Body
FROM `otel`.otel_logs AS l
INNER JOIN windows AS w ON l.TraceId = w.TraceId
WHERE l.SeverityNumber >= 17
  AND l.Timestamp >= {start:DateTime} - INTERVAL 1 HOUR AND l.Timestamp < {end:DateTime} + INTERVAL 1 HOUR
  AND l.Timestamp >= w.Start - INTERVAL 2 MINUTE AND l.Timestamp < w.End + INTERVAL 2 MINUTE
ORDER BY l.Timestamp;
