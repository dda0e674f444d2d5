"""Pydantic model of one environment. Every model a user writes forbids unknown keys.

Defaults here are the platform's opinion (seed figures with their defects fixed); the ``configs/``
hierarchy overrides them per environment and region.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
SECRET_REF = re.compile(r"^(env:[A-Z_][A-Z0-9_]*|file:/[^\s]+)$")
DURATION = re.compile(r"^\d+(ms|s|m|h)$")
SERVICE_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


class Strict(BaseModel):
    """Base for everything a user writes: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


Percentage = Annotated[float, Field(ge=0, le=100)]
Duration = Annotated[str, Field(pattern=DURATION.pattern, description="e.g. 500ms, 10s, 5m, 1h")]
SecretRef = Annotated[
    str,
    Field(
        pattern=SECRET_REF.pattern,
        description="a reference, never the secret: env:NAME (upper-case variable) or file:/absolute/path",
    ),
]
HostPort = Annotated[str, Field(pattern=r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$", description="host:port")]


class TlsMode(StrEnum):
    """TLS on one hop. ``insecure`` is plaintext and only allowed where ``security.allow_insecure``."""

    MTLS = "mtls"
    TLS = "tls"
    INSECURE = "insecure"


class SizeKnob(StrEnum):
    """One knob that scales headroom: the safety factor applied to the expected load."""

    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"
    XLARGE = "xlarge"


# --- load ---------------------------------------------------------------------------------------


class ExpectedLoad(Strict):
    """Expected steady-state load of the environment, before sampling."""

    spans_per_second: int = Field(1000, ge=0)
    log_records_per_second: int = Field(1000, ge=0)
    active_series: int = Field(100_000, ge=0)
    agents: int = Field(10, ge=0, description="number of agent-tier collectors (nodes or VMs)")
    average_span_bytes: int = Field(1024, ge=64, le=65536)
    average_log_bytes: int = Field(512, ge=32, le=65536)
    average_sample_bytes: int = Field(150, ge=16, le=4096)
    scrape_interval_seconds: int = Field(15, ge=1, le=600)


# --- tiers --------------------------------------------------------------------------------------


class GatewayResolver(Strict):
    """How agents find gateways for trace-ID load balancing."""

    kind: Literal["static", "dns", "k8s"] = "dns"
    hostnames: list[str] = Field(default_factory=list, description="static: gateway hosts (port is 4317)")
    dns_name: str = Field("otel-gateway.observability.internal", description="dns: name resolving to all gateways")
    k8s_service: str = Field("otel-gateway-headless.observability", description="k8s: headless service name.namespace")
    otlp_target: str | None = Field(
        None, description="static: one address (VIP) for metrics and logs; default: the first hostname"
    )

    @model_validator(mode="after")
    def _static_needs_hosts(self) -> GatewayResolver:
        if self.kind == "static" and not self.hostnames:
            raise ValueError("resolver kind 'static' needs at least one entry in hostnames")
        return self


class AgentTier(Strict):
    memory_limit_mib: int = Field(512, ge=128, le=65536, description="container/unit memory limit")
    cpu_limit: float = Field(0.5, gt=0, le=64)
    log_include: list[str] = Field(
        default_factory=lambda: ["/var/log/syslog", "/var/log/messages", "/var/log/*/*.log"],
        description="VM file logs to tail (filelog include globs)",
    )
    log_exclude: list[str] = Field(default_factory=lambda: ["/var/log/otelcol-contrib/*.log"])
    host_metrics_interval: Duration = "30s"
    kubelet_interval: Duration = "30s"
    resolver: GatewayResolver = Field(default_factory=lambda: GatewayResolver())


class GatewayTier(Strict):
    replicas: int | None = Field(None, ge=2, le=200, description="fixed replica count; default: from sizing")
    min_replicas: int = Field(2, ge=2, le=200)
    max_replicas: int = Field(10, ge=2, le=500)
    memory_limit_mib: int | None = Field(None, ge=512, le=262144, description="default: from sizing")
    cpu_limit: float | None = Field(None, gt=0, le=64, description="default: from sizing")
    max_recv_msg_size_mib: int = Field(16, ge=1, le=256)
    queue_dir_gib: int = Field(10, ge=1, le=10000, description="disk for persistent sending queues per gateway")

    @model_validator(mode="after")
    def _replica_bounds(self) -> GatewayTier:
        if self.min_replicas > self.max_replicas:
            raise ValueError(f"min_replicas ({self.min_replicas}) is above max_replicas ({self.max_replicas})")
        return self


class Tiers(Strict):
    agent: AgentTier = Field(default_factory=lambda: AgentTier())
    gateway: GatewayTier = Field(default_factory=lambda: GatewayTier())


# --- backends -----------------------------------------------------------------------------------


def _check_url(value: str, schemes: tuple[str, ...]) -> str:
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"{value!r} is not a URL with scheme {' or '.join(schemes)} and a host")
    return value


class ClickHouseBackend(Strict):
    enabled: bool = True
    endpoint: str = "tcp://clickhouse.observability.internal:9440?secure=true"
    database: str = Field("otel", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    username: str = "otel_writer"
    password: SecretRef = "env:OTELSTACK_CLICKHOUSE_PASSWORD"
    timeout: Duration = "10s"

    @field_validator("endpoint")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v, ("tcp", "clickhouse", "http", "https"))


class TempoBackend(Strict):
    enabled: bool = True
    endpoint: HostPort = "tempo.observability.internal:4317"


class LokiBackend(Strict):
    enabled: bool = True
    endpoint: str = "https://loki.observability.internal:3100/otlp"

    @field_validator("endpoint")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v, ("http", "https"))


class PrometheusBackend(Strict):
    enabled: bool = True
    endpoint: str = "https://prometheus.observability.internal:9090/api/v1/write"

    @field_validator("endpoint")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v, ("http", "https"))


class Backends(Strict):
    clickhouse: ClickHouseBackend = Field(default_factory=lambda: ClickHouseBackend())
    tempo: TempoBackend = Field(default_factory=lambda: TempoBackend())
    loki: LokiBackend = Field(default_factory=lambda: LokiBackend())
    prometheus: PrometheusBackend = Field(default_factory=lambda: PrometheusBackend())


# --- security -----------------------------------------------------------------------------------


class HopTls(Strict):
    """TLS per hop. ``apps_to_agent: insecure`` is node-local plaintext: VM agents then bind loopback only,
    Kubernetes agents accept pods of their own node (confined by the node-local NetworkPolicy)."""

    apps_to_agent: TlsMode = TlsMode.INSECURE
    agent_to_gateway: TlsMode = TlsMode.MTLS
    gateway_to_backends: TlsMode = TlsMode.TLS
    collectors_to_opamp: TlsMode = TlsMode.TLS


class ReceiverAuth(Strict):
    """Authentication on the gateway's OTLP receivers (in addition to mTLS)."""

    kind: Literal["bearer", "none"] = "bearer"
    token: SecretRef = "env:OTELSTACK_INGEST_TOKEN"


class OpampClient(Strict):
    """Where collectors find the OpAMP server."""

    endpoint: str = "wss://opamp.observability.internal:4320/v1/opamp"
    token: SecretRef = "env:OTELSTACK_OPAMP_TOKEN"

    @field_validator("endpoint")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v, ("ws", "wss", "http", "https"))


class Security(Strict):
    allow_insecure: bool = Field(False, description="allow plaintext hops; refused in staging and prod")
    tls: HopTls = Field(default_factory=lambda: HopTls())
    receiver_auth: ReceiverAuth = Field(default_factory=lambda: ReceiverAuth())
    opamp: OpampClient = Field(default_factory=lambda: OpampClient())
    tls_min_version: Literal["1.2", "1.3"] = "1.3"
    cert_reload_interval: Duration = "1h"


# --- sampling -----------------------------------------------------------------------------------


class HeadSampling(Strict):
    """What SDKs and operator-injected agents are told (OTEL_TRACES_SAMPLER[_ARG])."""

    sampler: Literal["parentbased_traceidratio", "parentbased_always_on", "always_on"] = "parentbased_traceidratio"
    ratio: float = Field(1.0, ge=0, le=1)


class CompositeWeights(Strict):
    """Rate allocation for a composite tail-sampling policy, in percent of the total rate."""

    max_total_spans_per_second: int = Field(1000, ge=1)
    errors: int = Field(50, ge=0, le=100)
    latency: int = Field(30, ge=0, le=100)
    probabilistic: int = Field(20, ge=0, le=100)

    @model_validator(mode="after")
    def _sum(self) -> CompositeWeights:
        total = self.errors + self.latency + self.probabilistic
        if total > 100:
            raise ValueError(f"composite weights add up to {total} %, at most 100 % is allowed")
        return self


class TailSampling(Strict):
    decision_wait: Duration = "10s"
    num_traces: int = Field(100_000, ge=1000)
    expected_new_traces_per_sec: int = Field(1000, ge=1)
    keep_errors: bool = True
    latency_threshold_ms: int | None = Field(1000, ge=1)
    probabilistic_percentage: Percentage = 10
    critical_services: list[Annotated[str, Field(pattern=SERVICE_NAME.pattern)]] = Field(default_factory=list)
    keep_debug_attribute: bool = Field(True, description='keep traces with attribute debug="true"')
    baseline_spans_per_second: int | None = Field(
        None, ge=1, description="also keep up to N spans/s of any traffic (an OR-ed rate_limiting policy)"
    )
    composite: CompositeWeights | None = Field(
        None, description="weights and a global cap: errors/latency/probabilistic as one composite policy"
    )


class Sampling(Strict):
    head: HeadSampling = Field(default_factory=lambda: HeadSampling())
    tail: TailSampling = Field(default_factory=lambda: TailSampling())


# --- data hygiene -------------------------------------------------------------------------------


class PatternRedaction(Strict):
    attribute: str
    pattern: str
    replacement: str

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"pattern {v!r} is not a valid regular expression: {exc}") from exc
        return v


class Redaction(Strict):
    delete_keys: list[str] = Field(
        default_factory=lambda: [
            "http.request.header.authorization",
            "http.request.header.cookie",
            "auth.token",
            "password",
            "api_key",
            "user.credit_card",
            "credit_card",
        ]
    )
    hash_keys: list[str] = Field(default_factory=lambda: ["user.email", "email"])
    patterns: list[PatternRedaction] = Field(
        default_factory=lambda: [
            PatternRedaction(attribute="db.statement", pattern="password='[^']*'", replacement="password='***'"),
            PatternRedaction(attribute="url.full", pattern="([?&](password|token|key)=)[^&]*", replacement="${1}***"),
        ]
    )


class Cardinality(Strict):
    drop_metric_attributes: list[str] = Field(
        default_factory=lambda: ["user.id", "request.id", "request_id", "session_id", "trace_id"]
    )
    route_patterns: dict[str, str] = Field(
        default_factory=lambda: {"/users/[0-9]+": "/users/{id}", "/orders/[0-9]+": "/orders/{id}"},
        description="regex → replacement applied to http.route on metric data points",
    )
    health_routes: list[str] = Field(default_factory=lambda: ["/health", "/healthz", "/ready", "/readyz", "/metrics"])


class Emergency(Strict):
    sampling_percentage: Percentage = 1
    drop_services_regex: str = "non-critical-.*"
    drop_log_severity_below: Literal["WARN", "ERROR"] = "WARN"


# --- retention ----------------------------------------------------------------------------------


class SignalRetention(Strict):
    hot_days: int = Field(7, ge=1)
    warm_days: int = Field(30, ge=0)
    cold_days: int = Field(90, ge=0)
    archive_days: int = Field(365, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> SignalRetention:
        tiers = [self.hot_days, self.warm_days, self.cold_days, self.archive_days]
        nonzero = [d for d in tiers if d]
        if nonzero != sorted(nonzero):
            raise ValueError(f"retention tiers must not shrink from hot to archive: {tiers}")
        return self

    @property
    def total_days(self) -> int:
        return max(self.hot_days, self.warm_days, self.cold_days, self.archive_days)


class Retention(Strict):
    traces: SignalRetention = Field(default_factory=lambda: SignalRetention())
    logs: SignalRetention = Field(
        default_factory=lambda: SignalRetention(hot_days=7, warm_days=30, cold_days=0, archive_days=0)
    )
    metrics: SignalRetention = Field(
        default_factory=lambda: SignalRetention(hot_days=15, warm_days=90, cold_days=395, archive_days=0)
    )


class CollectorOverrides(Strict):
    """Escape hatch: raw collector-config maps deep-merged over the rendered config (then validated)."""

    agent: dict[str, Any] = Field(default_factory=dict)
    gateway: dict[str, Any] = Field(default_factory=dict)


# --- the environment ----------------------------------------------------------------------------


class PlatformSpec(Strict):
    environment: str
    region: str | None = None
    cluster_name: str | None = None
    load: ExpectedLoad = Field(default_factory=lambda: ExpectedLoad())
    size: SizeKnob = SizeKnob.MEDIUM
    tiers: Tiers = Field(default_factory=lambda: Tiers())
    backends: Backends = Field(default_factory=lambda: Backends())
    security: Security = Field(default_factory=lambda: Security())
    sampling: Sampling = Field(default_factory=lambda: Sampling())
    redaction: Redaction = Field(default_factory=lambda: Redaction())
    cardinality: Cardinality = Field(default_factory=lambda: Cardinality())
    emergency: Emergency = Field(default_factory=lambda: Emergency())
    retention: Retention = Field(default_factory=lambda: Retention())
    collector_overrides: CollectorOverrides = Field(default_factory=lambda: CollectorOverrides())

    @field_validator("environment")
    @classmethod
    def _env_name(cls, v: str) -> str:
        if not ENV_NAME.match(v):
            raise ValueError(f"{v!r} is not an environment name (lower-case letters, digits and '-')")
        return v

    @model_validator(mode="after")
    def _insecure_only_where_allowed(self) -> PlatformSpec:
        if self.security.allow_insecure and self.environment in ("staging", "prod"):
            raise ValueError(f"security.allow_insecure is refused in {self.environment}: every hop there uses TLS")
        if not self.security.allow_insecure:
            hops = self.security.tls
            for hop in ("agent_to_gateway", "gateway_to_backends", "collectors_to_opamp"):
                if getattr(hops, hop) is TlsMode.INSECURE:
                    raise ValueError(
                        f"security.tls.{hop} is 'insecure' (TLS off) in environment {self.environment!r}; "
                        "allowed: mtls or tls (set security.allow_insecure: true, dev only, to permit plaintext)"
                    )
        return self

    @property
    def insecure_allowed(self) -> bool:
        return self.security.allow_insecure
