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

    spans_per_second: int = Field(1000, ge=0, description="expected spans/s before sampling")
    log_records_per_second: int = Field(1000, ge=0, description="expected log records/s")
    active_series: int = Field(100_000, ge=0, description="expected active metric series")
    agents: int = Field(10, ge=0, description="number of agent-tier collectors (nodes or VMs)")
    average_span_bytes: int = Field(1024, ge=64, le=65536, description="average encoded span size")
    average_log_bytes: int = Field(512, ge=32, le=65536, description="average encoded log record size")
    average_sample_bytes: int = Field(
        150, ge=16, le=4096, description="average metric data point size in ClickHouse before compression"
    )
    scrape_interval_seconds: int = Field(15, ge=1, le=600, description="interval at which series produce data points")


# --- tiers --------------------------------------------------------------------------------------


class GatewayResolver(Strict):
    """How agents find gateways for trace-ID load balancing."""

    kind: Literal["static", "dns", "k8s"] = Field(
        "dns", description="static (hostnames), dns (one name, all gateways) or k8s (headless service)"
    )
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
    cpu_limit: float = Field(0.5, gt=0, le=64, description="CPU limit of an agent (cores)")
    log_include: list[str] = Field(
        default_factory=lambda: ["/var/log/syslog", "/var/log/messages", "/var/log/*/*.log"],
        description="VM file logs to tail (filelog include globs)",
    )
    log_exclude: list[str] = Field(
        default_factory=lambda: ["/var/log/otelcol-contrib/*.log"],
        description="VM file logs never tailed (filelog exclude globs)",
    )
    host_metrics_interval: Duration = "30s"
    kubelet_interval: Duration = "30s"
    resolver: GatewayResolver = Field(default_factory=lambda: GatewayResolver())


class GatewayTier(Strict):
    replicas: int | None = Field(None, ge=2, le=200, description="fixed replica count; default: from sizing")
    min_replicas: int = Field(2, ge=2, le=200, description="lower bound for sizing and autoscaling (at least 2)")
    max_replicas: int = Field(10, ge=2, le=500, description="upper bound for sizing and autoscaling")
    memory_limit_mib: int | None = Field(None, ge=512, le=262144, description="default: from sizing")
    cpu_limit: float | None = Field(None, gt=0, le=64, description="default: from sizing")
    max_recv_msg_size_mib: int = Field(16, ge=1, le=256, description="largest OTLP gRPC message a gateway accepts")
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
    enabled: bool = Field(True, description="export traces, metrics and logs to ClickHouse")
    endpoint: str = Field(
        "tcp://clickhouse.observability.internal:9440?secure=true",
        description="tcp://, clickhouse://, http:// or https:// URL; use ?secure=true or https for TLS",
    )
    database: str = Field("otel", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="database holding the otel_* tables")
    username: str = Field("otel_writer", description="ClickHouse user the gateways write as")
    password: SecretRef = Field(
        "env:OTELSTACK_CLICKHOUSE_PASSWORD", description="reference to the password (env:NAME or file:/path)"
    )
    timeout: Duration = Field("10s", description="insert timeout")

    @field_validator("endpoint")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v, ("tcp", "clickhouse", "http", "https"))


class TempoBackend(Strict):
    enabled: bool = Field(True, description="export traces to Tempo over OTLP gRPC")
    endpoint: HostPort = Field("tempo.observability.internal:4317", description="Tempo distributor OTLP gRPC host:port")


class LokiBackend(Strict):
    enabled: bool = Field(True, description="export logs to Loki's native OTLP endpoint")
    endpoint: str = Field(
        "https://loki.observability.internal:3100/otlp",
        description="Loki OTLP base URL (the exporter appends /v1/logs)",
    )

    @field_validator("endpoint")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v, ("http", "https"))


class PrometheusBackend(Strict):
    enabled: bool = Field(True, description="export metrics by Prometheus remote write")
    endpoint: str = Field("https://prometheus.observability.internal:9090/api/v1/write", description="remote-write URL")

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

    apps_to_agent: TlsMode = Field(TlsMode.INSECURE, description="SDKs → agent: insecure means node-local plaintext")
    agent_to_gateway: TlsMode = Field(TlsMode.MTLS, description="agent → gateway (trace-ID load balancing)")
    gateway_to_backends: TlsMode = Field(TlsMode.TLS, description="gateway → ClickHouse, Tempo, Loki, Prometheus")
    collectors_to_opamp: TlsMode = Field(TlsMode.TLS, description="supervisors and collectors → OpAMP server")


class ReceiverAuth(Strict):
    """Authentication on the gateway's OTLP receivers (in addition to mTLS)."""

    kind: Literal["bearer", "none"] = Field(
        "bearer", description="bearer: gateways require a token from agents; none: mTLS only"
    )
    token: SecretRef = Field(
        "env:OTELSTACK_INGEST_TOKEN", description="reference to the ingest token (env:NAME or file:/path)"
    )


class OpampClient(Strict):
    """Where collectors find the OpAMP server."""

    endpoint: str = Field(
        "wss://opamp.observability.internal:4320/v1/opamp",
        description="OpAMP server URL (ws://, wss://, http://, https://), path /v1/opamp",
    )
    token: SecretRef = Field("env:OTELSTACK_OPAMP_TOKEN", description="reference to the OpAMP bearer token")

    @field_validator("endpoint")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v, ("ws", "wss", "http", "https"))


class Security(Strict):
    allow_insecure: bool = Field(False, description="allow plaintext hops; refused in staging and prod")
    tls: HopTls = Field(default_factory=lambda: HopTls())
    receiver_auth: ReceiverAuth = Field(default_factory=lambda: ReceiverAuth())
    opamp: OpampClient = Field(default_factory=lambda: OpampClient())
    tls_min_version: Literal["1.2", "1.3"] = Field("1.3", description="lowest TLS version on every hop")
    cert_reload_interval: Duration = Field(
        "1h", description="how often collectors re-read certificates (rotation without restart)"
    )


# --- sampling -----------------------------------------------------------------------------------


class HeadSampling(Strict):
    """What SDKs and operator-injected agents are told (OTEL_TRACES_SAMPLER[_ARG])."""

    sampler: Literal["parentbased_traceidratio", "parentbased_always_on", "always_on"] = Field(
        "parentbased_traceidratio", description="OTEL_TRACES_SAMPLER given to SDKs and injected agents"
    )
    ratio: float = Field(1.0, ge=0, le=1, description="OTEL_TRACES_SAMPLER_ARG (0–1)")


class CompositeWeights(Strict):
    """Rate allocation for a composite tail-sampling policy, in percent of the total rate."""

    max_total_spans_per_second: int = Field(1000, ge=1, description="cap on spans/s kept by the weighted policies")
    errors: int = Field(50, ge=0, le=100, description="percent of the cap for error traces")
    latency: int = Field(30, ge=0, le=100, description="percent of the cap for slow traces")
    probabilistic: int = Field(20, ge=0, le=100, description="percent of the cap for the probabilistic share")

    @model_validator(mode="after")
    def _sum(self) -> CompositeWeights:
        total = self.errors + self.latency + self.probabilistic
        if total > 100:
            raise ValueError(f"composite weights add up to {total} %, at most 100 % is allowed")
        return self


class TailSampling(Strict):
    decision_wait: Duration = Field("10s", description="time from a trace's first span to its sampling decision")
    num_traces: int = Field(100_000, ge=1000, description="traces kept in memory awaiting a decision")
    expected_new_traces_per_sec: int = Field(1000, ge=1, description="sizing hint for the tail-sampling map")
    keep_errors: bool = Field(True, description="keep every trace with an ERROR span")
    latency_threshold_ms: int | None = Field(
        1000, ge=1, description="keep traces at least this slow (null: no latency policy)"
    )
    probabilistic_percentage: Percentage = Field(10, description="share of the remaining traces kept (0–100)")
    critical_services: list[Annotated[str, Field(pattern=SERVICE_NAME.pattern)]] = Field(
        default_factory=list, description="service.name values whose traces are always kept"
    )
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
    attribute: str = Field(description="attribute whose value is rewritten")
    pattern: str = Field(description="regular expression (RE2 syntax)")
    replacement: str = Field(description="replacement; ${1} refers to a group")

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
        ],
        description="attributes deleted from spans, span events and log records",
    )
    hash_keys: list[str] = Field(
        default_factory=lambda: ["user.email", "email"], description="attributes replaced by their SHA-256"
    )
    patterns: list[PatternRedaction] = Field(
        default_factory=lambda: [
            PatternRedaction(attribute="db.statement", pattern="password='[^']*'", replacement="password='***'"),
            PatternRedaction(attribute="url.full", pattern="([?&](password|token|key)=)[^&]*", replacement="${1}***"),
        ],
        description="regex replacements inside attribute values",
    )


class Cardinality(Strict):
    drop_metric_attributes: list[str] = Field(
        default_factory=lambda: ["user.id", "request.id", "request_id", "session_id", "trace_id"],
        description="per-request attributes deleted from metric data points",
    )
    route_patterns: dict[str, str] = Field(
        default_factory=lambda: {"/users/[0-9]+": "/users/{id}", "/orders/[0-9]+": "/orders/{id}"},
        description="regex → replacement applied to http.route on metric data points",
    )
    health_routes: list[str] = Field(
        default_factory=lambda: ["/health", "/healthz", "/ready", "/readyz", "/metrics"],
        description="routes whose spans are dropped (health, readiness, metrics)",
    )


class Emergency(Strict):
    sampling_percentage: Percentage = Field(
        1, description="tail sampling in the emergency overlay (only a probabilistic policy)"
    )
    drop_services_regex: str = Field(
        "non-critical-.*", description="services whose spans and logs the emergency overlay drops"
    )
    drop_log_severity_below: Literal["WARN", "ERROR"] = Field(
        "WARN", description="logs below this severity are dropped in an emergency"
    )


# --- retention ----------------------------------------------------------------------------------


class SignalRetention(Strict):
    hot_days: int = Field(7, ge=1, description="days on fast storage")
    warm_days: int = Field(30, ge=0, description="days on slower storage (0: none)")
    cold_days: int = Field(90, ge=0, description="days on object storage (0: none)")
    archive_days: int = Field(365, ge=0, description="days in compressed archive (0: none)")

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

    agent: dict[str, Any] = Field(
        default_factory=dict, description="collector-config map merged over every agent config"
    )
    gateway: dict[str, Any] = Field(
        default_factory=dict, description="collector-config map merged over every gateway config"
    )


# --- the environment ----------------------------------------------------------------------------


class PlatformSpec(Strict):
    environment: str = Field(description="environment name; taken from the directory (configs/<env>/)")
    region: str | None = Field(None, description="region/cluster; taken from the directory (configs/<env>/<region>/)")
    cluster_name: str | None = Field(None, description="k8s.cluster.name added to all telemetry when set")
    load: ExpectedLoad = Field(default_factory=lambda: ExpectedLoad())
    size: SizeKnob = Field(
        SizeKnob.MEDIUM, description="headroom knob: safety factor 1.5/2/3/4 over expected load (docs/sizing.md)"
    )
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
