"""Helpers of the end-to-end data-path test: OTLP sinks, the collector processes, SDK traffic."""
