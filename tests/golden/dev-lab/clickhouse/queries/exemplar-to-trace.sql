-- Histogram data points of one metric in a time range, each exemplar joined to the span it points at.
SELECT
    m.ServiceName AS ServiceName,
    m.MetricName AS MetricName,
    m.TimeUnix AS TimeUnix,
    m.Sum / nullIf(m.Count, 0) AS MeanValue,
    e.Value AS ExemplarValue,
    e.TraceId AS TraceId,
    e.SpanId AS SpanId,
    t.SpanName AS SpanName,
    t.Duration / 1e6 AS DurationMs,
    t.StatusCode AS StatusCode
FROM `otel`.otel_metrics_histogram AS m
ARRAY JOIN m.Exemplars AS e
INNER JOIN `otel`.otel_traces AS t ON t.TraceId = e.TraceId AND t.SpanId = e.SpanId
WHERE m.MetricName = {metric:String}
  AND m.TimeUnix >= {start:DateTime} AND m.TimeUnix < {end:DateTime}
  AND e.TraceId != '00000000000000000000000000000000'
  AND t.Timestamp >= {start:DateTime} - INTERVAL 1 HOUR AND t.Timestamp < {end:DateTime} + INTERVAL 1 HOUR
ORDER BY m.TimeUnix DESC, e.Value DESC
LIMIT 100;
