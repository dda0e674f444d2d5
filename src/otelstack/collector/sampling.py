"""Tail-sampling policies from the spec.

Top-level ``tail_sampling`` policies are OR-ed: a trace is kept if any policy keeps it. Two
consequences the seeds get wrong and we do not copy:

* Weights need a ``composite`` policy with its own ``composite_sub_policy`` list and a
  ``rate_allocation``; listing weighted policies at the top level OR-s them and ignores the weights.
* An OR-ed ``rate_limiting`` policy *adds* up to N spans/s; it never caps the others. We render it as
  what it is, a baseline (``sampling.tail.baseline_spans_per_second``). A cap on everything kept is
  ``sampling.tail.composite.max_total_spans_per_second``.
"""

from __future__ import annotations

from otelstack.collector.blocks import Config
from otelstack.model.spec import Emergency, TailSampling


def tail_sampling(tail: TailSampling, *, emergency: Emergency | None = None) -> Config:
    """The processor config; in an emergency, :func:`_emergency_policies` replace the normal ones."""
    policies = _emergency_policies(tail, emergency) if emergency is not None else _policies(tail)
    return {
        "decision_wait": tail.decision_wait,
        "num_traces": tail.num_traces,
        "expected_new_traces_per_sec": tail.expected_new_traces_per_sec,
        # Spans that arrive after their trace left memory (an agent's retry after a gateway restart)
        # follow the decision taken without them, instead of starting a second, partial decision.
        "decision_cache": {"sampled_cache_size": tail.num_traces, "non_sampled_cache_size": tail.num_traces * 2},
        "policies": policies,
    }


def _policies(tail: TailSampling) -> list[Config]:
    weighted: list[Config] = []
    if tail.keep_errors:
        weighted.append(_errors())
    if tail.latency_threshold_ms:
        weighted.append({"name": "latency", "type": "latency", "latency": {"threshold_ms": tail.latency_threshold_ms}})
    weighted.append(_probabilistic(tail.probabilistic_percentage))

    always: list[Config] = []
    if tail.critical_services:
        always.append(_critical(tail.critical_services))
    if tail.keep_debug_attribute:
        always.append(
            {"name": "debug", "type": "string_attribute", "string_attribute": {"key": "debug", "values": ["true"]}}
        )
    if tail.baseline_spans_per_second:
        always.append(
            {
                "name": "baseline",
                "type": "rate_limiting",
                "rate_limiting": {"spans_per_second": tail.baseline_spans_per_second},
            }
        )

    if tail.composite is None:
        return [*weighted, *always]
    weights = {
        "errors": tail.composite.errors,
        "latency": tail.composite.latency,
        "probabilistic": tail.composite.probabilistic,
    }
    composite: Config = {
        "name": "weighted",
        "type": "composite",
        "composite": {
            "max_total_spans_per_second": tail.composite.max_total_spans_per_second,
            "policy_order": [p["name"] for p in weighted],
            "composite_sub_policy": weighted,
            "rate_allocation": [{"policy": p["name"], "percent": round(weights[p["name"]])} for p in weighted],
        },
    }
    return [composite, *always]


def _errors() -> Config:
    return {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}}


def _critical(services: list[str]) -> Config:
    return {
        "name": "critical-services",
        "type": "string_attribute",
        "string_attribute": {"key": "service.name", "values": list(services)},
    }


def _emergency_policies(tail: TailSampling, emergency: Emergency) -> list[Config]:
    """Errors and critical services still kept, under a cap (a composite with half the rate each, or
    all of it for errors when no service is critical), OR-ed with a small probabilistic share of the rest.
    Latency, debug and baseline policies are dropped: under pressure only what an incident needs stays."""
    keep = [_errors()] + ([_critical(tail.critical_services)] if tail.critical_services else [])
    share = 100 // len(keep)
    capped: Config = {
        "name": "emergency-keep",
        "type": "composite",
        "composite": {
            "max_total_spans_per_second": emergency.keep_spans_per_second,
            "policy_order": [p["name"] for p in keep],
            "composite_sub_policy": keep,
            "rate_allocation": [{"policy": p["name"], "percent": share} for p in keep],
        },
    }
    return [capped, _probabilistic(emergency.sampling_percentage)]


def _probabilistic(percentage: float) -> Config:
    return {"name": "probabilistic", "type": "probabilistic", "probabilistic": {"sampling_percentage": percentage}}
