"""The typed platform spec: one environment of the otelstack platform."""

from otelstack.model.spec import (
    AgentTier,
    Backends,
    ExpectedLoad,
    GatewayResolver,
    GatewayTier,
    PlatformSpec,
    Retention,
    Sampling,
    Security,
    SizeKnob,
    TailSampling,
    TlsMode,
)

__all__ = [
    "AgentTier",
    "Backends",
    "ExpectedLoad",
    "GatewayResolver",
    "GatewayTier",
    "PlatformSpec",
    "Retention",
    "Sampling",
    "Security",
    "SizeKnob",
    "TailSampling",
    "TlsMode",
]
