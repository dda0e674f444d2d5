"""Runbook configs: the emergency overlay and the safe-minimal configs (seed 000 runbooks, §19)."""

from __future__ import annotations

import copy

from otelstack.collector.blocks import Config, cid, memory_limiter
from otelstack.collector.hygiene import emergency_filter
from otelstack.collector.sampling import tail_sampling
from otelstack.model.spec import PlatformSpec


def apply_emergency(config: Config, spec: PlatformSpec) -> Config:
    """Low-severity logs (and the services ``drop_services_regex`` names) dropped, sampling cut.

    Applies to any profile: the filter goes right after ``memory_limiter`` in traces and logs
    pipelines (dropping early saves the most), and a tail-sampling processor, where present, keeps
    errors and critical services under ``emergency.keep_spans_per_second`` and
    ``emergency.sampling_percentage`` of the rest.
    """
    out = copy.deepcopy(config)
    em = spec.emergency
    p_filter = cid("processor", "filter", "emergency")
    em_filter = emergency_filter(em.drop_services_regex, em.drop_log_severity_below)
    out["processors"][p_filter] = em_filter
    p_sample = cid("processor", "tail_sampling")
    if p_sample in out["processors"]:
        out["processors"][p_sample] = tail_sampling(spec.sampling.tail, emergency=em)
    mem = cid("processor", "memory_limiter")
    for name, pipeline in out["service"]["pipelines"].items():
        signal = name.split("/")[0]
        if f"{signal[:-1]}_conditions" not in em_filter:  # traces → trace_conditions, logs → log_conditions
            continue
        procs = list(pipeline.get("processors", []))
        at = procs.index(mem) + 1 if mem in procs else 0
        procs.insert(at, p_filter)
        pipeline["processors"] = procs
    return out


def safe_minimal(config: Config, spec: PlatformSpec, memory_limit_mib: int) -> Config:
    """The smallest config that still moves data securely: same receivers' OTLP, memory_limiter, batch,
    the same exporters' transport (TLS and auth kept), redaction kept (secrets never reach a backend),
    no sampling, no other transforms, no extra receivers.

    It is derived from the full profile so endpoints, TLS, auth and redaction can never drift from it.
    """
    otlp = cid("receiver", "otlp")
    mem = cid("processor", "memory_limiter")
    batch = cid("processor", "batch")
    redact = cid("processor", "transform", "redact")
    processors: Config = {mem: memory_limiter(memory_limit_mib), batch: {}}
    if redact in config["processors"]:
        processors[redact] = copy.deepcopy(config["processors"][redact])
    keep_extensions = {k: v for k, v in config["extensions"].items() if not k.startswith(cid("extension", "opamp"))}
    pipelines: Config = {}
    exporters: Config = {}
    for name, pipeline in config["service"]["pipelines"].items():
        outs = [x for x in pipeline["exporters"] if x in config["exporters"]]
        if not outs or otlp not in pipeline["receivers"]:
            continue
        signal = name.split("/")[0]
        chain = [mem, redact, batch] if redact in processors and signal in ("traces", "logs") else [mem, batch]
        pipelines[signal] = {"receivers": [otlp], "processors": chain, "exporters": outs}
        for x in outs:
            exporters[x] = copy.deepcopy(config["exporters"][x])
    return {
        "extensions": keep_extensions,
        "receivers": {otlp: copy.deepcopy(config["receivers"][otlp])},
        "processors": processors,
        "exporters": exporters,
        "service": {
            "extensions": list(keep_extensions),
            "pipelines": pipelines,
            "telemetry": copy.deepcopy(config["service"]["telemetry"]),
        },
    }
