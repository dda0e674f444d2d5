"""Sizing follows the stated formulas and reproduces the seeds' worked examples."""

from __future__ import annotations

import math

import pytest

from otelstack.model import PlatformSpec
from otelstack.sizing import SPANS_PER_GATEWAY, size_platform, sizing_markdown


def spec(**load: int) -> PlatformSpec:
    base = {"log_records_per_second": 0, "active_series": 0}
    return PlatformSpec.model_validate(
        {"environment": "prod", "load": {**base, **load}, "tiers": {"gateway": {"max_replicas": 100}}}
    )


@pytest.mark.parametrize(("spans", "collectors"), [(10_000, 2), (50_000, 5), (100_000, 10), (500_000, 50)])
def test_seed_formula_collectors_equal_spans_times_two_over_20k(spans: int, collectors: int) -> None:
    # seed 000 L6211: collectors = spans/s × 2 / 20k; its table's "25+" at 500k is the seed's error (50).
    sized = size_platform(spec(spans_per_second=spans)).gateway
    assert sized.replicas == max(2, collectors)
    assert sized.replicas == max(2, math.ceil(spans * 2 / SPANS_PER_GATEWAY))


def test_replicas_respect_bounds_and_fixed_count() -> None:
    big = spec(spans_per_second=10_000_000)
    assert size_platform(big).gateway.replicas == big.tiers.gateway.max_replicas == 100
    fixed = PlatformSpec.model_validate({"environment": "prod", "tiers": {"gateway": {"replicas": 7}}})
    assert size_platform(fixed).gateway.replicas == 7


def test_size_knob_scales_headroom() -> None:
    small = PlatformSpec.model_validate({"environment": "prod", "size": "small", "load": {"spans_per_second": 100_000}})
    large = small.model_copy(update={"size": "xlarge"})
    assert size_platform(small).gateway.replicas < size_platform(large).gateway.replicas


def test_memory_limits_are_coherent() -> None:
    sized = size_platform(spec(spans_per_second=50_000)).gateway
    assert sized.memory_limiter_limit_mib == int(sized.memory_limit_mib * 0.8)
    assert sized.memory_limiter_spike_mib == sized.memory_limiter_limit_mib // 4
    assert sized.gomemlimit_mib <= sized.memory_limit_mib
    assert sized.memory_request_mib <= sized.memory_limit_mib
    assert sized.cpu_request <= sized.cpu_limit


def test_more_load_per_replica_means_more_memory() -> None:
    fixed = {"environment": "prod", "tiers": {"gateway": {"replicas": 2}}}
    low = size_platform(PlatformSpec.model_validate({**fixed, "load": {"spans_per_second": 1_000}}))
    high = size_platform(PlatformSpec.model_validate({**fixed, "load": {"spans_per_second": 20_000}}))
    assert high.gateway.memory_limit_mib > low.gateway.memory_limit_mib


def test_storage_matches_the_seed_example_before_sampling() -> None:
    # seed 000 L6235-6249: 10k spans/s × 1 KB × 86,400 s at 10:1 ≈ 86 GB/day (here: 100 % kept).
    s = PlatformSpec.model_validate(
        {
            "environment": "dev",
            "security": {"allow_insecure": True},
            "load": {"spans_per_second": 10_000, "average_span_bytes": 1000},
            "sampling": {"head": {"ratio": 1.0}, "tail": {"probabilistic_percentage": 100}},
        }
    )
    tempo = next(r for r in size_platform(s).storage if r.backend == "tempo")
    assert tempo.gb_per_day == pytest.approx(86.4, rel=0.01)
    assert tempo.gb_retained == pytest.approx(86.4 * s.retention.traces.hot_days, rel=0.01)


def test_disabled_backends_have_no_storage_rows() -> None:
    s = PlatformSpec.model_validate({"environment": "prod", "backends": {"clickhouse": {"enabled": False}}})
    assert {r.backend for r in size_platform(s).storage} == {"tempo", "loki", "prometheus"}


def test_markdown_report_lists_both_tiers_and_every_backend() -> None:
    text = sizing_markdown(size_platform(spec(spans_per_second=50_000)))
    assert "| gateway | 5 |" in text and "| agent |" in text
    for backend in ("tempo", "loki", "prometheus", "clickhouse"):
        assert f"| {backend} |" in text
