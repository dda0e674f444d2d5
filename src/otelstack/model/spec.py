"""Pydantic model of one environment. Every model a user writes forbids unknown keys.

Defaults here are the platform's opinion (seed figures with their defects fixed); the ``configs/``
hierarchy overrides them per environment and region.
"""

from __future__ import annotations

import importlib
import re
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
SECRET_REF = re.compile(r"^(env:[A-Z_][A-Z0-9_]*|file:/[^\s]+)$")
DURATION = re.compile(r"^\d+(ms|s|m|h)$")
SERVICE_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
HOST_PORT = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
OPAMP_PATH = "/v1/opamp"
STRICT_ENVIRONMENTS = ("staging", "prod")  # TLS on every hop, mTLS to gateways, tokens on receivers

# What each pattern means, in words: loader.explain() says this instead of showing the regular expression.
PATTERN_HELP: dict[str, str] = {
    SECRET_REF.pattern: (
        "a secret reference: use env:NAME (an upper-case environment variable) or file:/absolute/path, "
        "never the secret itself"
    ),
    DURATION.pattern: "a duration: a whole number followed by ms, s, m or h, e.g. 500ms, 10s, 5m, 1h",
    HOST_PORT.pattern: "host:port, e.g. tempo.example.internal:4317",
    SERVICE_NAME.pattern: "a service.name: letters, digits, '_', '.' and '-'",
    IDENTIFIER.pattern: "an identifier: a letter or '_', then letters, digits or '_'",
}


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


def _port_in_range(value: str) -> str:
    port = int(value.rsplit(":", 1)[1])
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} in {value!r} is out of range; allowed: 1–65535")
    return value


HostPort = Annotated[str, Field(pattern=HOST_PORT.pattern, description="host:port"), AfterValidator(_port_in_range)]

# Constructs of Python's re that RE2 (Go's regexp, used by the collector and OTTL) refuses.
_RE2_UNSUPPORTED = {
    "ASSERT": "a lookahead/lookbehind ((?=…), (?<=…))",
    "ASSERT_NOT": "a negative lookahead/lookbehind ((?!…), (?<!…))",
    "GROUPREF": "a backreference (\\1, (?P=name))",
    "GROUPREF_EXISTS": "a conditional group ((?(1)…|…))",
    "ATOMIC_GROUP": "an atomic group ((?>…))",
    "POSSESSIVE_REPEAT": "a possessive quantifier (*+, ++, ?+)",
    "AT_END_STRING": "\\Z (write $ or \\z)",
}


_MAXREPEAT: int = getattr(importlib.import_module("re._constants"), "MAXREPEAT", 2**32 - 1)


def _re2_problem(parsed: Any) -> str | None:
    """The first construct RE2 does not support in a parsed Python pattern (re._parser), if any."""
    stack = [parsed]
    while stack:
        node = stack.pop()
        if isinstance(node, tuple | list) or type(node).__name__ == "SubPattern":
            items = list(node)
            if items and type(items[0]).__name__ == "_NamedIntConstant":
                name = str(items[0])
                if name in _RE2_UNSUPPORTED:
                    return _RE2_UNSUPPORTED[name]
                if name == "AT" and len(items) > 1 and str(items[1]) in _RE2_UNSUPPORTED:
                    return _RE2_UNSUPPORTED[str(items[1])]
                if name in ("MAX_REPEAT", "MIN_REPEAT") and len(items) > 1:
                    low, high = items[1][0], items[1][1]
                    if low > 1000 or (high > 1000 and high != _MAXREPEAT):
                        return "a repetition count above 1000 ({n,m} with n or m > 1000)"
            stack.extend(items)
    return None


def check_re2(value: str) -> str:
    """A regular expression the collector (RE2) accepts: it compiles, without Python-only constructs."""
    try:
        re.compile(value)
        parser: Any = importlib.import_module("re._parser")
        parsed = parser.parse(value)
    except (re.error, OverflowError, RecursionError, ValueError) as exc:
        raise ValueError(f"pattern {value!r} is not a valid regular expression: {exc}") from None
    problem = _re2_problem(parsed)
    if problem:
        raise ValueError(
            f"pattern {value!r} uses {problem}, which RE2 (the collector's regular expressions) does not "
            "support; allowed: RE2 syntax, without lookarounds, backreferences, atomic groups, possessive "
            "quantifiers or conditionals"
        )
    return value


Re2Regex = Annotated[str, AfterValidator(check_re2)]


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
    agents: int = Field(10, ge=1, description="number of agent-tier collectors (nodes or VMs), at least 1")
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
            raise ValueError("resolver `kind` is 'static', which needs at least one entry in `hostnames`")
        return self


# journalctl --priority: the syslog level names or their numbers (0 = emerg … 7 = debug).
JOURNAL_PRIORITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")


def _journal_unit(value: str) -> str:
    if not value or any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError(
            f"{value!r} is not a systemd unit name; allowed: a non-empty name or glob without spaces, "
            "e.g. ssh.service or nginx*"
        )
    return value


JournalUnit = Annotated[str, AfterValidator(_journal_unit)]


class JournaldLogs(Strict):
    """VM agents: the systemd journal through ``journalctl`` (the journald receiver), beside the file logs.

    For hosts without rsyslog (no /var/log/syslog: Debian since 12, minimal images). The agent's unit runs
    with the ``adm`` group, which Debian lets read the journal."""

    enabled: bool = Field(False, description="read the systemd journal on VM agents (journald receiver)")
    units: list[JournalUnit] = Field(
        default_factory=list,
        description="only these systemd units (journalctl --unit: a unit name or glob); empty: every unit",
    )
    priority: str = Field(
        "info",
        description="least severe level read (journalctl --priority): emerg, alert, crit, err, warning, "
        "notice, info, debug, or 0–7",
    )

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, v: object) -> str:
        text = str(v).strip().lower() if isinstance(v, str | int) and not isinstance(v, bool) else None
        shown = str(v).lower() if isinstance(v, bool) else repr(v)
        if text is not None and (text in JOURNAL_PRIORITIES or text in {str(n) for n in range(8)}):
            return text
        raise ValueError(
            f"{shown} is not a journal priority; allowed: {', '.join(JOURNAL_PRIORITIES)} or 0–7 (0 = emerg, 7 = debug)"
        )


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
    journald: JournaldLogs = Field(
        default_factory=lambda: JournaldLogs(),
        description="VM agents: the systemd journal beside the file logs, for hosts without rsyslog",
    )
    host_metrics_interval: Duration = "30s"
    kubelet_interval: Duration = "30s"
    kubelet_ca: str = Field(
        "serviceaccount",
        description="how agents verify the kubelet's serving certificate: serviceaccount (the cluster CA; "
        "kubelets with CA-signed serving certificates), file:/path (a CA bundle, e.g. for kubeadm's "
        "self-signed kubelet certificates), or insecure_skip_verify (refused outside dev)",
    )
    resolver: GatewayResolver = Field(default_factory=lambda: GatewayResolver())

    @field_validator("kubelet_ca")
    @classmethod
    def _kubelet_ca(cls, v: str) -> str:
        if v in ("serviceaccount", "insecure_skip_verify") or re.match(r"^file:/\S+$", v):
            return v
        raise ValueError(
            f"{v!r} is not a kubelet CA choice; allowed: serviceaccount, file:/absolute/path, insecure_skip_verify"
        )


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
            raise ValueError(
                f"`min_replicas` = {self.min_replicas} is above `max_replicas` = {self.max_replicas}; "
                "allowed: min_replicas at most max_replicas"
            )
        return self


class Tiers(Strict):
    agent: AgentTier = Field(default_factory=lambda: AgentTier())
    gateway: GatewayTier = Field(default_factory=lambda: GatewayTier())


# --- backends -----------------------------------------------------------------------------------


def _check_url(value: str, schemes: tuple[str, ...], example: str) -> str:
    expected = f"a URL with scheme {' or '.join(schemes)} and a host, e.g. {example}"
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not {expected} ({exc})") from None
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"{value!r} is not {expected}")
    raw_port = parts.netloc.rpartition("]")[2].rpartition(":")[2] if ":" in parts.netloc else ""
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        shown, what = (raw_port, "is out of range") if raw_port.isdigit() else (repr(raw_port), "is not a number")
        raise ValueError(f"port {shown} in {value!r} {what}; allowed: 1–65535")
    return value


_TRUE = ("1", "t", "true")


def clickhouse_plaintext(endpoint: str) -> str | None:
    """Why a ClickHouse endpoint is not TLS-protected and verified, or None when it is."""
    parts = urlsplit(endpoint)
    query = {k.lower(): v.lower() for k, v in parse_qsl(parts.query)}
    if query.get("skip_verify") in _TRUE:
        return "turns off certificate verification (skip_verify)"
    if parts.scheme == "http":
        return "is plain HTTP"
    if parts.scheme in ("tcp", "clickhouse") and query.get("secure") not in _TRUE:
        return "is the plaintext native protocol (no secure=true)"
    return None


class ClickHouseBackend(Strict):
    EXAMPLE: ClassVar[str] = "tcp://clickhouse.example.internal:9440?secure=true"

    enabled: bool = Field(True, description="export traces, metrics and logs to ClickHouse")
    endpoint: str = Field(
        "tcp://clickhouse.observability.internal:9440?secure=true",
        description="tcp://, clickhouse://, http:// or https:// URL; use ?secure=true or https for TLS",
    )
    database: str = Field("otel", pattern=IDENTIFIER.pattern, description="database holding the otel_* tables")
    username: str = Field("otel_writer", description="ClickHouse user the gateways write as")
    password: SecretRef = Field(
        "env:OTELSTACK_CLICKHOUSE_PASSWORD", description="reference to the password (env:NAME or file:/path)"
    )
    timeout: Duration = Field("10s", description="insert timeout")
    reader_username: str = Field(
        "grafana_reader", pattern=IDENTIFIER.pattern, description="ClickHouse user Grafana reads as (SELECT only)"
    )
    reader_password: SecretRef = Field(
        "env:OTELSTACK_CLICKHOUSE_READER_PASSWORD",
        description="reference to the reader's password (env:NAME or file:/path)",
    )
    cluster: str | None = Field(
        None,
        pattern=IDENTIFIER.pattern,
        description="ClickHouse cluster (remote_servers) for ReplicatedMergeTree, ON CLUSTER and Distributed "
        "tables; null: one server, MergeTree",
    )
    storage_policy: str | None = Field(
        None,
        pattern=IDENTIFIER.pattern,
        description="storage policy with volumes hot, warm, cold, archive: data moves between them per "
        "retention tier (TTL … TO VOLUME); null: every tier on the default disk",
    )

    @field_validator("endpoint")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v, ("tcp", "clickhouse", "http", "https"), cls.EXAMPLE)


class TempoStorage(Strict):
    """Where Tempo keeps its blocks: a local directory, or an S3 bucket (credentials from the environment)."""

    kind: Literal["local", "s3"] = Field("local", description="local: a directory on the Tempo host; s3: a bucket")
    bucket: str | None = Field(None, description="s3: bucket name")
    endpoint: HostPort | None = Field(
        None, description="s3: S3 API host:port (HTTPS), e.g. s3.eu-west-1.amazonaws.com:443"
    )

    @model_validator(mode="after")
    def _s3_complete(self) -> TempoStorage:
        if self.kind == "s3" and not (self.bucket and self.endpoint):
            raise ValueError(
                "`backends.tempo.storage.kind` is s3 but `bucket` and `endpoint` are not both set; "
                "allowed: kind s3 with bucket and endpoint (host:port), or kind local"
            )
        return self


class TempoBackend(Strict):
    EXAMPLE: ClassVar[str] = "tempo.example.internal:4317"

    enabled: bool = Field(True, description="export traces to Tempo over OTLP gRPC")
    endpoint: HostPort = Field("tempo.observability.internal:4317", description="Tempo distributor OTLP gRPC host:port")
    storage: TempoStorage = Field(default_factory=lambda: TempoStorage(), description="where Tempo stores blocks")


class LokiBackend(Strict):
    EXAMPLE: ClassVar[str] = "https://loki.example.internal:3100/otlp"

    enabled: bool = Field(True, description="export logs to Loki's native OTLP endpoint")
    endpoint: str = Field(
        "https://loki.observability.internal:3100/otlp",
        description="Loki OTLP base URL (the exporter appends /v1/logs)",
    )

    @field_validator("endpoint")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v, ("http", "https"), cls.EXAMPLE)


class PrometheusBackend(Strict):
    EXAMPLE: ClassVar[str] = "https://prometheus.example.internal:9090/api/v1/write"

    enabled: bool = Field(True, description="export metrics by Prometheus remote write")
    endpoint: str = Field("https://prometheus.observability.internal:9090/api/v1/write", description="remote-write URL")

    @field_validator("endpoint")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_url(v, ("http", "https"), cls.EXAMPLE)


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
        example = f"wss://opamp.example.internal:4320{OPAMP_PATH}"
        v = _check_url(v, ("ws", "wss", "http", "https"), example)
        path = urlsplit(v).path
        if path != OPAMP_PATH:
            raise ValueError(
                f"{v!r} has the path {path or '(none)'!r}; the OpAMP server serves {OPAMP_PATH}: "
                f"write it, e.g. {example}"
            )
        return v


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


Propagator = Literal["tracecontext", "baggage", "b3", "b3multi", "jaeger", "xray", "ottrace"]


class HeadSampling(Strict):
    """What SDKs and operator-injected agents are told (OTEL_TRACES_SAMPLER[_ARG]).

    The platform samples once, at the gateways: SDKs send every span to their node-local agent, span
    metrics are computed from all spans before tail sampling, and tail sampling decides what is kept.
    A head ratio below 1 would compound with the tail share (10 % × 10 % keeps 1 %) and make span
    metrics count low by the same factor, so it is refused (docs/collector.md, "Sampling").
    """

    sampler: Literal["parentbased_always_on", "always_on", "parentbased_traceidratio"] = Field(
        "parentbased_always_on", description="OTEL_TRACES_SAMPLER given to SDKs and injected agents"
    )
    ratio: float = Field(
        1.0, ge=0, le=1, description="OTEL_TRACES_SAMPLER_ARG; must stay 1.0 (sampling is decided at the gateways)"
    )
    propagators: list[Propagator] = Field(
        default_factory=lambda: list[Propagator](["tracecontext", "baggage"]),
        min_length=1,
        description="OTEL_PROPAGATORS given to SDKs and injected agents (W3C trace context and baggage by default)",
    )

    @model_validator(mode="after")
    def _sample_once(self) -> HeadSampling:
        if self.ratio < 1:
            raise ValueError(
                f"ratio is {self.ratio:g}: head sampling below 1.0 compounds with tail sampling and makes span "
                "metrics count low; keep 1.0 and lower sampling.tail.probabilistic_percentage instead"
            )
        return self


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
            raise ValueError(
                f"composite weights add up to {total} %, at most 100 % is allowed: `errors` = {self.errors}, "
                f"`latency` = {self.latency}, `probabilistic` = {self.probabilistic}"
            )
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
    pattern: Re2Regex = Field(description="regular expression (RE2 syntax)")
    replacement: str = Field(description="replacement; ${1} refers to a group")


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
    route_patterns: dict[Re2Regex, str] = Field(
        default_factory=lambda: {"/users/[0-9]+": "/users/{id}", "/orders/[0-9]+": "/orders/{id}"},
        description="regex → replacement applied to http.route on metric data points",
    )
    health_routes: list[str] = Field(
        default_factory=lambda: ["/health", "/healthz", "/ready", "/readyz", "/metrics"],
        description="routes whose spans are dropped (health, readiness, metrics)",
    )


class Emergency(Strict):
    sampling_percentage: Percentage = Field(
        1, description="share of the traces that are neither errors nor critical kept in an emergency"
    )
    keep_spans_per_second: int = Field(
        500,
        ge=1,
        description="cap on the error and critical-service spans/s an emergency still keeps (half each)",
    )
    drop_services_regex: Re2Regex | None = Field(
        None,
        description="services whose spans and logs the emergency overlay drops (RE2 on service.name; "
        "none by default: name your non-critical services)",
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
            raise ValueError(
                f"retention tiers must not shrink from hot to archive: `hot_days` = {self.hot_days}, "
                f"`warm_days` = {self.warm_days}, `cold_days` = {self.cold_days}, "
                f"`archive_days` = {self.archive_days}; allowed: each non-zero tier at least the one before "
                "(0: no such tier)"
            )
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


# --- alerting -----------------------------------------------------------------------------------

# The span-metrics connector's histogram bounds in ms (the gateway render's buckets); a latency SLO's
# threshold must be one of them, or its "good" count would need interpolation.
SPAN_METRICS_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
SECRET_FILE = re.compile(r"^/[^\s]+$")
Severity = Literal["critical", "warning"]
PATTERN_HELP[SECRET_FILE.pattern] = "an absolute path of the file holding the secret, e.g. /etc/alertmanager/secrets/pd"


class AlertReceiver(Strict):
    """One notification integration. Alertmanager reads its secret from ``secret_file`` when it sends
    (``url_file``, ``routing_key_file``, ``api_url_file``): the secret is never written into its config."""

    name: str = Field(pattern=IDENTIFIER.pattern, description="the integration's name (an identifier)")
    kind: Literal["pagerduty", "slack", "webhook"] = Field(description="pagerduty, slack or webhook")
    secret_file: str = Field(
        pattern=SECRET_FILE.pattern,
        description="file with the PagerDuty routing key, the Slack webhook URL or the webhook URL",
    )
    severities: list[Severity] = Field(
        default_factory=lambda: list[Severity](["critical"]), min_length=1, description="alert severities sent here"
    )
    channel: str | None = Field(None, description="slack: the channel (default: the webhook's own)")

    @model_validator(mode="after")
    def _channel_for_slack(self) -> AlertReceiver:
        if self.channel is not None and self.kind != "slack":
            raise ValueError(f"`channel` is set on receiver {self.name!r} of kind {self.kind!r}; allowed: slack only")
        return self


class SloObjective(Strict):
    """A service-level objective on the gateways' span metrics (server spans), alerted by burn rate."""

    name: str = Field(pattern=IDENTIFIER.pattern, description="the SLO's name (an identifier)")
    kind: Literal["availability", "latency"] = Field(
        description="availability: spans without ERROR status; latency: spans at most latency_threshold_ms"
    )
    objective_percent: float = Field(99.9, gt=0, lt=100, description="share of good requests over the window")
    latency_threshold_ms: int | None = Field(None, description="latency: a span-metrics bucket bound in ms")
    service: str | None = Field(
        None, pattern=SERVICE_NAME.pattern, description="only this service.name (default: each service)"
    )
    window_days: int = Field(30, ge=1, le=90, description="the SLO's rolling window (error budget period)")

    @model_validator(mode="after")
    def _threshold(self) -> SloObjective:
        if self.kind == "latency" and self.latency_threshold_ms not in SPAN_METRICS_BUCKETS_MS:
            raise ValueError(
                f"SLO {self.name!r}: `latency_threshold_ms` = {self.latency_threshold_ms} is not a span-metrics "
                f"bucket bound; allowed: {', '.join(map(str, SPAN_METRICS_BUCKETS_MS))}"
            )
        if self.kind == "availability" and self.latency_threshold_ms is not None:
            raise ValueError(f"SLO {self.name!r}: `latency_threshold_ms` is for kind latency only")
        return self


def _default_slos() -> list[SloObjective]:
    return [
        SloObjective(name="availability", kind="availability", objective_percent=99.9),
        SloObjective(name="latency", kind="latency", objective_percent=99.0, latency_threshold_ms=250),
    ]


class Alerting(Strict):
    """Prometheus rules and Alertmanager routing (docs/backends/alerting.md)."""

    receivers: list[AlertReceiver] = Field(
        default_factory=list, description="where alerts go, by severity (none: kept in Alertmanager only)"
    )
    slos: list[SloObjective] = Field(default_factory=_default_slos, description="objectives alerted by burn rate")
    clock_skew_ms: int = Field(100, ge=1, le=60000, description="alert when a host's clock is off by more")

    @model_validator(mode="after")
    def _unique(self) -> Alerting:
        for what, names in (("receivers", [r.name for r in self.receivers]), ("slos", [s.name for s in self.slos])):
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                raise ValueError(f"`{what}` names must be unique; repeated: {', '.join(twice)}")
        return self


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
    alerting: Alerting = Field(default_factory=lambda: Alerting())

    @field_validator("environment")
    @classmethod
    def _env_name(cls, v: str) -> str:
        if not ENV_NAME.match(v):
            raise ValueError(f"{v!r} is not an environment name (lower-case letters, digits and '-')")
        return v

    @model_validator(mode="after")
    def _insecure_only_where_allowed(self) -> PlatformSpec:
        if self.tiers.agent.kubelet_ca == "insecure_skip_verify" and not self.security.allow_insecure:
            raise ValueError(
                "tiers.agent.kubelet_ca is insecure_skip_verify (kubelet certificate not verified) in environment "
                f"{self.environment!r}; allowed: serviceaccount or file:/path to the kubelet CA "
                "(set security.allow_insecure: true, dev only, to permit it)"
            )
        problems = self._security_problems()
        if problems:
            # One problem per line, each naming its keys in backticks (loader.explain adds the files).
            raise ValueError("\n".join(problems))
        return self

    def _security_problems(self) -> list[str]:
        """TLS and authentication on every hop: plaintext only where ``security.allow_insecure`` (dev only);
        in staging and prod also client certificates to the gateways and tokens on their receivers."""
        env = self.environment
        sec = self.security
        strict = env in STRICT_ENVIRONMENTS
        problems: list[str] = []
        dev_only = "(set security.allow_insecure: true, dev only, to permit plaintext)"
        if sec.allow_insecure and strict:
            problems.append(f"`security.allow_insecure` is refused in {env}: every hop there uses TLS")
        if not sec.allow_insecure:
            for hop in ("agent_to_gateway", "gateway_to_backends", "collectors_to_opamp"):
                if getattr(sec.tls, hop) is TlsMode.INSECURE:
                    problems.append(
                        f"`security.tls.{hop}` is 'insecure' (TLS off) in environment {env!r}; "
                        f"allowed: mtls or tls {dev_only}"
                    )
            ch = self.backends.clickhouse
            if ch.enabled and (why := clickhouse_plaintext(ch.endpoint)):
                problems.append(
                    f"`backends.clickhouse.endpoint` = {ch.endpoint!r} {why}: the password of "
                    f"{ch.username!r} and the telemetry would cross the network unprotected in environment "
                    f"{env!r}; allowed: tcp://HOST:9440?secure=true or https://HOST:8443 {dev_only}"
                )
            for name in ("loki", "prometheus"):
                backend = getattr(self.backends, name)
                if backend.enabled and urlsplit(backend.endpoint).scheme == "http":
                    problems.append(
                        f"`backends.{name}.endpoint` = {backend.endpoint!r} is plain HTTP in environment "
                        f"{env!r}; allowed: https:// {dev_only}"
                    )
            if urlsplit(sec.opamp.endpoint).scheme in ("ws", "http"):
                problems.append(
                    f"`security.opamp.endpoint` = {sec.opamp.endpoint!r} is plaintext in environment {env!r}; "
                    f"allowed: wss:// or https:// {dev_only}"
                )
        if strict:
            if sec.tls.agent_to_gateway is TlsMode.TLS:
                problems.append(
                    f"`security.tls.agent_to_gateway` is 'tls' in {env}: gateways there require client "
                    "certificates from agents; allowed: mtls"
                )
            if sec.receiver_auth.kind == "none":
                problems.append(
                    f"`security.receiver_auth.kind` is 'none' in {env}: gateways there also require a token "
                    "from agents; allowed: bearer (with security.receiver_auth.token)"
                )
        return problems

    @property
    def insecure_allowed(self) -> bool:
        return self.security.allow_insecure
