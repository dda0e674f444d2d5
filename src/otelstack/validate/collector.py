"""Validate a rendered collector config against the pinned release and the platform's rules.

Rules (each finding says where and why):
  structure    top-level sections and service.pipelines are well formed
  references   every component a pipeline uses is defined; every defined one is used
  types        every component type exists in the pinned release (removed ones are explained,
               deprecated aliases are flagged)
  keys         every config key is known for its component
  order        memory_limiter first in every pipeline; tail_sampling before batch
  security     no ``insecure`` TLS, no plain-HTTP/WS hop, no skipped verification, no plaintext
               receiver on a non-loopback address — unless the environment allows insecure
  sampling     tail sampling only behind a trace-ID-keyed hop (checked across profiles in
               :func:`validate_platform`)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from otelstack.catalog.components import KINDS, Catalog, catalog

SECTIONS = (*KINDS, "service")
SERVICE_KEYS = ("extensions", "pipelines", "telemetry")
SIGNALS = ("traces", "metrics", "logs", "profiles")


@dataclass(frozen=True)
class Finding:
    where: str
    message: str
    severity: str = "error"  # or "warning"

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" + (" (warning)" if self.severity == "warning" else "")


def _type_of(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def validate_collector_config(
    config: Mapping[str, Any], *, source: str, insecure_allowed: bool, node_local_plaintext: bool = False
) -> list[Finding]:
    """All findings for one config. ``source`` names the file (or profile) in messages.

    ``node_local_plaintext`` permits plaintext OTLP receivers on a Kubernetes agent: the spec chose
    ``security.tls.apps_to_agent: insecure``, and the node-local NetworkPolicy confines that traffic.
    """
    findings: list[Finding] = []

    def add(where: str, message: str, severity: str = "error") -> None:
        findings.append(Finding(f"{source}: {where}", message, severity))

    if not isinstance(config, Mapping):
        add("(top level)", "a collector config must be a mapping")
        return findings
    for key in config:
        if key not in SECTIONS:
            add(str(key), f"unknown top-level section; allowed: {', '.join(SECTIONS)}")
    service = config.get("service")
    if not isinstance(service, Mapping):
        add("service", "missing: a config needs service.pipelines")
        return findings
    for key in service:
        if key not in SERVICE_KEYS:
            add(f"service.{key}", f"unknown key; allowed: {', '.join(SERVICE_KEYS)}")
    pipelines = service.get("pipelines")
    if not isinstance(pipelines, Mapping) or not pipelines:
        add("service.pipelines", "missing or empty: at least one pipeline is needed")
        return findings

    cat = catalog()
    defined: dict[str, Mapping[str, Any]] = {}
    for kind in KINDS:
        section = config.get(kind) or {}
        if not isinstance(section, Mapping):
            add(kind, "must be a mapping of component IDs to their settings")
            continue
        defined[kind] = section
        for comp_id, settings in section.items():
            _check_component(add, cat, kind, str(comp_id), settings)

    used: dict[str, set[str]] = {k: set() for k in KINDS}
    for name, pipeline in pipelines.items():
        where = f"service.pipelines.{name}"
        if _type_of(str(name)) not in SIGNALS:
            add(where, f"pipeline name must start with a signal ({', '.join(SIGNALS)}), optionally '/name'")
        if not isinstance(pipeline, Mapping):
            add(where, "must be a mapping with receivers, processors, exporters")
            continue
        for key in pipeline:
            if key not in ("receivers", "processors", "exporters"):
                add(f"{where}.{key}", "unknown key; allowed: receivers, processors, exporters")
        for role, kinds in (
            ("receivers", ("receivers", "connectors")),
            ("processors", ("processors",)),
            ("exporters", ("exporters", "connectors")),
        ):
            for comp_id in pipeline.get(role) or []:
                found = next((k for k in kinds if comp_id in defined.get(k, {})), None)
                if found is None:
                    add(f"{where}.{role}", f"{comp_id!r} is used but not defined under {' or '.join(kinds)}")
                else:
                    used[found].add(f"{role}:{comp_id}" if found == "connectors" else comp_id)
        if not pipeline.get("receivers"):
            add(where, "has no receivers")
        if not pipeline.get("exporters"):
            add(where, "has no exporters")
        _check_order(add, where, list(pipeline.get("processors") or []))

    for kind in ("receivers", "processors", "exporters"):
        for comp_id in defined.get(kind, {}):
            if comp_id not in used[kind]:
                add(f"{kind}.{comp_id}", "is defined but used by no pipeline")
    for comp_id in defined.get("connectors", {}):
        if f"exporters:{comp_id}" not in used["connectors"] or f"receivers:{comp_id}" not in used["connectors"]:
            add(f"connectors.{comp_id}", "a connector must be an exporter of one pipeline and a receiver of another")
    enabled = list(service.get("extensions") or [])
    for comp_id in enabled:
        if comp_id not in defined.get("extensions", {}):
            add("service.extensions", f"{comp_id!r} is enabled but not defined under extensions")
    for comp_id in defined.get("extensions", {}):
        if comp_id not in enabled:
            add(f"extensions.{comp_id}", "is defined but not enabled in service.extensions")
    for ref_where, ref in _extension_references(config):
        if ref not in defined.get("extensions", {}):
            add(ref_where, f"refers to extension {ref!r}, which is not defined")

    _check_statement_groups(add, config)
    if has_tail_sampling(config):
        _check_span_metrics_identity(add, config)
    if not insecure_allowed:
        _check_security(add, config, node_local_plaintext)
        if has_tail_sampling(config):
            _check_gateway_ingress(add, config)
    return findings


def _check_statement_groups(add: Any, config: Mapping[str, Any]) -> None:
    """A transform processor infers one OTTL context per group of statements. A flat list naming both
    ``span.`` and ``spanevent.`` paths gets ``spanevent``, and its span statements then run once per span
    event: spans without events are left as they are (a redaction that misses them leaks)."""
    for comp_id, settings in (config.get("processors") or {}).items():
        if _type_of(str(comp_id)) != "transform" or not isinstance(settings, Mapping):
            continue
        statements = settings.get("trace_statements") or []
        flat = [st for st in statements if isinstance(st, str)]
        if any(SPAN_PATH.search(st) for st in flat) and any("spanevent." in st for st in flat):
            add(
                f"processors.{comp_id}.trace_statements",
                "mixes span and spanevent statements in one group: the processor then runs the span statements "
                "once per span event, so spans without events are not changed; give each context its own "
                "`- statements: [...]` group",
            )


SPAN_PATH = re.compile(r"(?<![\w.])span\.")
SPAN_METRICS_TYPES = ("span_metrics", "spanmetrics")
COLLECTOR_INSTANCE_DIMENSION = "collector.instance.id"


def _check_span_metrics_identity(add: Any, config: Mapping[str, Any]) -> None:
    """Gateways behind the trace-ID load balancer each count a share of every service's spans. The span
    metrics connector tells their series apart by the dimension ``collector.instance.id`` (on by default
    since v0.136, feature gate ``connector.spanmetrics.includeCollectorInstanceID``); excluded, every
    gateway writes its own cumulative count into the same series and Prometheus keeps one of them at a time
    (tests/integration/test_data_path.py measured 581 of 1,204 calls with two gateways)."""
    for comp_id, settings in (config.get("connectors") or {}).items():
        if _type_of(str(comp_id)) not in SPAN_METRICS_TYPES or not isinstance(settings, Mapping):
            continue
        if COLLECTOR_INSTANCE_DIMENSION in (settings.get("exclude_dimensions") or []):
            add(
                f"connectors.{comp_id}.exclude_dimensions",
                f"excludes {COLLECTOR_INSTANCE_DIMENSION}: every gateway would write its own count into the same "
                "series, and Prometheus would keep one gateway's count at a time (calls are lost)",
            )


def _check_gateway_ingress(add: Any, config: Mapping[str, Any]) -> None:
    """A gateway (it tail-samples) takes data from agents only: every OTLP listener off loopback asks for
    a client certificate and a token, as the spec requires outside dev."""
    for rx_id, rx in (config.get("receivers") or {}).items():
        if _type_of(str(rx_id)) != "otlp" or not isinstance(rx, Mapping):
            continue
        for proto, settings in (rx.get("protocols") or {}).items():
            if not isinstance(settings, Mapping):
                continue
            host = str(settings.get("endpoint", "")).rsplit(":", 1)[0]
            if host in ("127.0.0.1", "localhost", "[::1]"):
                continue
            where = f"receivers.{rx_id}.protocols.{proto}"
            tls = settings.get("tls")
            if isinstance(tls, Mapping) and not tls.get("client_ca_file") and not tls.get("client_ca_pem"):
                add(f"{where}.tls", "no client_ca_file: a gateway accepts agents by client certificate (mTLS)")
            auth = settings.get("auth")
            if not (isinstance(auth, Mapping) and auth.get("authenticator")):
                add(f"{where}.auth", "no authenticator: a gateway requires the agents' token (bearertokenauth)")


def validate_supervisor_config(config: Mapping[str, Any], *, source: str) -> list[Finding]:
    """Keys of an opampsupervisor config against the pinned release's supervisor schema."""
    findings: list[Finding] = []

    def add(where: str, message: str, severity: str = "error") -> None:
        findings.append(Finding(f"{source}: {where}", message, severity))

    cat = catalog()
    _check_keys(add, cat, "supervisor", config, cat.supervisor)
    agent = config.get("agent") if isinstance(config, Mapping) else None
    if not isinstance(agent, Mapping) or not agent.get("executable"):
        add("supervisor.agent.executable", "is required")
    return findings


def _check_component(add: Any, cat: Catalog, kind: str, comp_id: str, settings: Any) -> None:
    where = f"{kind}.{comp_id}"
    type_ = _type_of(comp_id)
    comp = cat.find(kind, type_)
    if comp is None:
        removed = cat.removed_message(kind, type_)
        if removed:
            add(
                where,
                f"{kind[:-1]} type {type_!r} does not exist in otelcol-contrib "
                f"{cat.release['otelcol_contrib']}: {removed}",
            )
        else:
            add(where, f"{kind[:-1]} type {type_!r} does not exist in otelcol-contrib {cat.release['otelcol_contrib']}")
        return
    if type_ != comp.type:
        add(where, f"{type_!r} is a deprecated alias; the pinned release's name is {comp.type!r}", "warning")
    if settings is None:
        return
    if isinstance(settings, Mapping):
        for key, why in comp.deprecated_keys.items():
            if key in settings:
                release = cat.release["otelcol_contrib"]
                add(f"{where}.{key}", f"deprecated key in otelcol-contrib {release}: {why}", "warning")
    _check_keys(add, cat, where, settings, comp.keys)


def _check_keys(add: Any, cat: Catalog, where: str, value: Any, schema: Any) -> None:
    schema = cat.resolve(schema)
    if schema == "*" or isinstance(schema, str) or schema is None:
        return
    if isinstance(schema, list):
        if isinstance(value, list) and schema:
            for i, item in enumerate(value):
                _check_keys(add, cat, f"{where}[{i}]", item, schema[0])
        return
    if isinstance(schema, dict):
        if not isinstance(value, Mapping):
            if value is not None and not isinstance(value, str):  # "${env:X}" may stand for a structure
                add(where, f"must be a mapping with keys {', '.join(sorted(k for k in schema if k != '*'))}")
            return
        wildcard = schema.get("*")
        for key, sub in value.items():
            if key in schema:
                _check_keys(add, cat, f"{where}.{key}", sub, schema[key])
            elif wildcard is not None:
                _check_keys(add, cat, f"{where}.{key}", sub, wildcard)
            else:
                allowed = ", ".join(sorted(k for k in schema if k != "*"))
                add(f"{where}.{key}", f"unknown key; allowed: {allowed}")


def _check_order(add: Any, where: str, processors: Sequence[str]) -> None:
    if not processors:
        add(f"{where}.processors", "memory_limiter must be the first processor (none configured)")
        return
    if _type_of(processors[0]) != "memory_limiter":
        add(f"{where}.processors", f"memory_limiter must be first, found {processors[0]!r} first")
    types = [_type_of(p) for p in processors]
    if "tail_sampling" in types and "batch" in types and types.index("batch") < types.index("tail_sampling"):
        add(f"{where}.processors", "batch runs before tail_sampling: batching first splits traces across decisions")


def _walk(node: Any, path: str) -> Iterable[tuple[str, Any]]:
    yield path, node
    if isinstance(node, Mapping):
        for k, v in node.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")


def _extension_references(config: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    """Extensions referenced from component settings: ``authenticator`` and queue/receiver ``storage``."""
    for kind in ("receivers", "exporters", "processors"):
        for path, node in _walk(config.get(kind) or {}, kind):
            if isinstance(node, Mapping):
                ref = node.get("authenticator")
                if isinstance(ref, str):
                    yield f"{path}.authenticator", ref
                storage = node.get("storage")
                if (isinstance(storage, str) and "/" in storage) or storage == "file_storage":
                    yield f"{path}.storage", str(storage)


def _plaintext_native(endpoint: str) -> bool:
    """A ClickHouse native-protocol URL (tcp://, clickhouse://) without TLS switched on."""
    if not endpoint.startswith(("tcp://", "clickhouse://")):
        return False
    query = urlsplit(endpoint).query
    return not any(k == "secure" and v.lower() == "true" for k, v in parse_qsl(query))


def _check_security(add: Any, config: Mapping[str, Any], node_local_plaintext: bool) -> None:
    for kind in ("exporters", "extensions", "receivers"):
        for path, node in _walk(config.get(kind) or {}, kind):
            if not isinstance(node, Mapping):
                if isinstance(node, str) and path.endswith(".endpoint") and node.startswith(("http://", "ws://")):
                    add(path, f"plaintext endpoint {node!r}: use https:// or wss:// (TLS is required here)")
                elif isinstance(node, str) and path.endswith(".endpoint") and _plaintext_native(node):
                    add(path, f"plaintext endpoint {node!r}: add ?secure=true (TLS is required here)")
                continue
            tls = node.get("tls")
            if isinstance(tls, Mapping):
                if tls.get("insecure") is True:
                    add(f"{path}.tls.insecure", "TLS is off on this hop; not allowed in this environment")
                if tls.get("insecure_skip_verify") is True:
                    add(f"{path}.tls.insecure_skip_verify", "server certificates are not verified; not allowed")
    for rx_id, rx in (config.get("receivers") or {}).items():
        protocols = (rx or {}).get("protocols") if isinstance(rx, Mapping) else None
        if not isinstance(protocols, Mapping):
            continue
        for proto, settings in protocols.items():
            if not isinstance(settings, Mapping):
                continue
            endpoint = str(settings.get("endpoint", ""))
            host = endpoint.rsplit(":", 1)[0]
            if "tls" not in settings and host not in ("127.0.0.1", "localhost", "[::1]") and not node_local_plaintext:
                add(
                    f"receivers.{rx_id}.protocols.{proto}",
                    f"plaintext listener on {endpoint or 'all interfaces'}: add tls or bind to 127.0.0.1",
                )


def trace_routing_findings(
    agent_configs: Mapping[str, Mapping[str, Any]], gateway_has_tail_sampling: bool
) -> list[Finding]:
    """Tail sampling needs every span of a trace on one gateway: agents must route traces by trace ID."""
    findings: list[Finding] = []
    if not gateway_has_tail_sampling:
        return findings
    for source, config in agent_configs.items():
        exporters = config.get("exporters") or {}
        for name, pipeline in (config.get("service") or {}).get("pipelines", {}).items():
            if _type_of(name) != "traces":
                continue
            for exp_id in pipeline.get("exporters") or []:
                settings = exporters.get(exp_id) or {}
                t = _type_of(exp_id)
                if t in ("load_balancing", "loadbalancing"):
                    key = settings.get("routing_key", "traceID")
                    if key != "traceID":
                        findings.append(
                            Finding(
                                f"{source}: exporters.{exp_id}.routing_key",
                                f"is {key!r}; gateways run tail sampling, so traces must be routed by traceID",
                            )
                        )
                elif t not in ("debug", "nop"):
                    findings.append(
                        Finding(
                            f"{source}: service.pipelines.{name}.exporters",
                            f"{exp_id!r} sends traces to gateways without trace-ID routing; "
                            "tail sampling would see partial traces (use load_balancing)",
                        )
                    )
    return findings


def has_tail_sampling(config: Mapping[str, Any]) -> bool:
    return any(_type_of(p) == "tail_sampling" for p in (config.get("processors") or {}))
