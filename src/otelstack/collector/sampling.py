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
from otelstack.model.spec import TailSampling


def tail_sampling(tail: TailSampling, *, emergency_percentage: float | None = None) -> Config:
    """The processor config. In an emergency only a probabilistic policy at the given percentage is kept."""
    policies = [_probabilistic(emergency_percentage)] if emergency_percentage is not None else _policies(tail)
    return {
        "decision_wait": tail.decision_wait,
        "num_traces": tail.num_traces,
        "expected_new_traces_per_sec": tail.expected_new_traces_per_sec,
        "policies": policies,
    }


def _policies(tail: TailSampling) -> list[Config]:
    weighted: list[Config] = []
    if tail.keep_errors:
        weighted.append({"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}})
    if tail.latency_threshold_ms:
        weighted.append({"name": "latency", "type": "latency", "latency": {"threshold_ms": tail.latency_threshold_ms}})
    weighted.append(_probabilistic(tail.probabilistic_percentage))

    always: list[Config] = []
    if tail.critical_services:
        always.append(
            {
                "name": "critical-services",
                "type": "string_attribute",
                "string_attribute": {"key": "service.name", "values": list(tail.critical_services)},
            }
        )
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


def _probabilistic(percentage: float) -> Config:
    return {"name": "probabilistic", "type": "probabilistic", "probabilistic": {"sampling_percentage": percentage}}
