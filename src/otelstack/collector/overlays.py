"""Runbook configs: the emergency overlay and the safe-minimal configs (seed 000 runbooks, §19)."""

from __future__ import annotations

import copy

from otelstack.collector.blocks import Config, cid, memory_limiter
from otelstack.collector.hygiene import emergency_filter
from otelstack.collector.sampling import tail_sampling
from otelstack.model.spec import PlatformSpec


def apply_emergency(config: Config, spec: PlatformSpec) -> Config:
    """Sampling to the emergency percentage, non-critical services and low-severity logs dropped.

    Applies to any profile: the filter goes right after ``memory_limiter`` in traces and logs
    pipelines (dropping early saves the most), and a tail-sampling processor, where present, keeps
    only its probabilistic policy at ``emergency.sampling_percentage``.
    """
    out = copy.deepcopy(config)
    em = spec.emergency
    p_filter = cid("processor", "filter", "emergency")
    out["processors"][p_filter] = emergency_filter(em.drop_services_regex, em.drop_log_severity_below)
    p_sample = cid("processor", "tail_sampling")
    if p_sample in out["processors"]:
        out["processors"][p_sample] = tail_sampling(spec.sampling.tail, emergency_percentage=em.sampling_percentage)
    mem = cid("processor", "memory_limiter")
    for name, pipeline in out["service"]["pipelines"].items():
        if name.split("/")[0] not in ("traces", "logs"):
            continue
        procs = list(pipeline.get("processors", []))
        at = procs.index(mem) + 1 if mem in procs else 0
        procs.insert(at, p_filter)
        pipeline["processors"] = procs
    return out


def safe_minimal(config: Config, spec: PlatformSpec, memory_limit_mib: int) -> Config:
    """The smallest config that still moves data securely: same receivers' OTLP, memory_limiter, batch,
    the same exporters' transport (TLS and auth kept), no sampling, no transforms, no extra receivers.

    It is derived from the full profile so endpoints, TLS and auth can never drift from it.
    """
    otlp = cid("receiver", "otlp")
    mem = cid("processor", "memory_limiter")
    batch = cid("processor", "batch")
    keep_extensions = {k: v for k, v in config["extensions"].items() if not k.startswith(cid("extension", "opamp"))}
    pipelines: Config = {}
    exporters: Config = {}
    for name, pipeline in config["service"]["pipelines"].items():
        outs = [x for x in pipeline["exporters"] if x in config["exporters"]]
        if not outs or otlp not in pipeline["receivers"]:
            continue
        signal = name.split("/")[0]
        pipelines[signal] = {"receivers": [otlp], "processors": [mem, batch], "exporters": outs}
        for x in outs:
            exporters[x] = copy.deepcopy(config["exporters"][x])
    return {
        "extensions": keep_extensions,
        "receivers": {otlp: copy.deepcopy(config["receivers"][otlp])},
        "processors": {mem: memory_limiter(memory_limit_mib), batch: {}},
        "exporters": exporters,
        "service": {
            "extensions": list(keep_extensions),
            "pipelines": pipelines,
            "telemetry": copy.deepcopy(config["service"]["telemetry"]),
        },
    }
