"""Loki 3.7 (single binary) from the spec: the tsdb store with schema v13, native OTLP ingestion with a
small, chosen set of index labels, retention from ``retention.logs`` applied by the compactor, and the
tenant header required (``auth_enabled``) in staging and prod.

``check_loki`` is otelstack's own validator of the rendered file; ``loki -verify-config`` is what a
platform team runs before a config goes live.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otelstack.backends.endpoints import (
    LOKI_FILES,
    LOKI_GRPC_PORT,
    LOKI_TENANT,
    checked,
    lookup,
    parsed,
    program_header,
    retention_days,
    server_block,
)
from otelstack.model.spec import STRICT_ENVIRONMENTS, PlatformSpec
from otelstack.security.layout import LOKI_HTTP_PORT
from otelstack.yamlout import dump

LOKI_RELEASE = "3.7"
LOKI_FILE = "loki/loki.yaml"
LOKI_VERIFY = "loki -config.file=loki.yaml -verify-config"
SCHEMA_FROM = "2024-04-01"  # first day of the tsdb/v13 period; never move it once data exists

# OTLP resource attributes that become index labels (stream labels). Everything else — trace_id, span_id,
# service.instance.id, k8s.pod.name, host.name, log attributes — is kept as structured metadata: still
# filterable in LogQL, but it does not create streams. Each index label multiplies the number of streams,
# and per-instance values (pods, containers, instance ids) churn on every rollout, so only attributes with
# few, stable values that nearly every query starts from are indexed. The reason for each is given here.
INDEX_LABELS: dict[str, str] = {
    "service.name": "every query starts from a service; bounded by the number of services",
    "service.namespace": "groups services of one team or system; a handful of values",
    "deployment.environment.name": "one value per environment (the gateways set it)",
    "deployment.environment": "the older semantic-convention name some SDKs still send; one value per environment",
    "k8s.cluster.name": "one value per cluster (set when cluster_name is configured)",
    "k8s.namespace.name": "bounded by namespaces; how teams are separated on Kubernetes",
    "cloud.region": "a few values; matches the configs/<env>/<region> level",
}
# Loki's default max_label_names_per_series is 15; stay well under it (service_name is always one of them).
MAX_INDEX_LABELS = 15


def _label(attribute: str) -> str:
    """The label name Loki gives an OTLP attribute (dots become underscores)."""
    return attribute.replace(".", "_").replace("-", "_")


def index_label_names() -> list[str]:
    """The stream labels the OTLP index attributes become, as LogQL (and Grafana's links) write them."""
    return [_label(a) for a in INDEX_LABELS]


def auth_enabled(spec: PlatformSpec) -> bool:
    """Loki requires the tenant header (X-Scope-OrgID) in staging and prod."""
    return spec.environment in STRICT_ENVIRONMENTS


def tenant_headers(spec: PlatformSpec) -> dict[str, str]:
    """HTTP headers every writer (the gateways' otlp_http exporter) and reader sends to this Loki: the tenant
    where ``auth_enabled``, none otherwise."""
    return {"X-Scope-OrgID": LOKI_TENANT} if auth_enabled(spec) else {}


def build_loki(spec: PlatformSpec) -> dict[str, Any]:
    """Loki's configuration as data."""
    data = LOKI_FILES.state_dir
    days = retention_days(spec.retention.logs)
    return {
        "target": "all",
        "auth_enabled": auth_enabled(spec),
        "server": server_block(spec, LOKI_HTTP_PORT, LOKI_GRPC_PORT, LOKI_FILES),
        "common": {
            "instance_addr": "127.0.0.1",
            "path_prefix": data,
            "replication_factor": 1,
            "ring": {"kvstore": {"store": "inmemory"}},
            "storage": {"filesystem": {"chunks_directory": f"{data}/chunks", "rules_directory": f"{data}/rules"}},
        },
        "schema_config": {
            "configs": [
                {
                    "from": SCHEMA_FROM,
                    "store": "tsdb",
                    "object_store": "filesystem",
                    "schema": "v13",
                    "index": {"prefix": "index_", "period": "24h"},
                }
            ]
        },
        "limits_config": {
            "allow_structured_metadata": True,
            "retention_period": f"{days * 24}h",
            "otlp_config": {
                "resource_attributes": {
                    "ignore_defaults": True,
                    "attributes_config": [{"action": "index_label", "attributes": list(INDEX_LABELS)}],
                }
            },
        },
        "compactor": {
            "working_directory": f"{data}/compactor",
            "compaction_interval": "10m",
            "retention_enabled": True,
            "retention_delete_delay": "2h",
            "delete_request_store": "filesystem",
        },
        "analytics": {"reporting_enabled": False},
    }


def render_loki(spec: PlatformSpec) -> dict[str, str]:
    """``loki/loki.yaml``; raises ConfigValidationError when otelstack's own checks fail."""
    header = program_header(spec, f"Loki {LOKI_RELEASE} (single binary, -target=all)", LOKI_VERIFY)
    return checked({LOKI_FILE: dump(build_loki(spec), header)}, check_loki)


def _hours(value: Any) -> int | None:
    if isinstance(value, str) and value.endswith("h") and value[:-1].isdigit():
        return int(value[:-1])
    if isinstance(value, str) and value.endswith("d") and value[:-1].isdigit():
        return int(value[:-1]) * 24
    return None


def check_loki(files: Mapping[str, str]) -> list[str]:
    """The platform's invariants on a rendered Loki config; one line per problem, naming file and key."""
    config, problems = parsed(files, LOKI_FILE)
    if config is None:
        return problems

    def bad(key: str, message: str) -> None:
        problems.append(f"{LOKI_FILE}: `{key}` {message}")

    periods = lookup(config, "schema_config.configs") or []
    if not periods:
        bad("schema_config.configs", "is empty; allowed: a tsdb period with schema v13")
    for i, period in enumerate(periods):
        where = f"schema_config.configs[{i}]"
        if not isinstance(period, Mapping):
            bad(where, "is not a mapping")
            continue
        if period.get("store") != "tsdb":
            bad(f"{where}.store", f"is {period.get('store')!r}; allowed: tsdb (the other index stores are deprecated)")
        if period.get("schema") != "v13":
            bad(f"{where}.schema", f"is {period.get('schema')!r}; allowed: v13 (structured metadata and OTLP need it)")
        if lookup(period, "index.period") != "24h":
            bad(f"{where}.index.period", f"is {lookup(period, 'index.period')!r}; allowed: 24h (tsdb)")
    if lookup(config, "limits_config.allow_structured_metadata") is False:
        bad("limits_config.allow_structured_metadata", "is false; native OTLP ingestion needs structured metadata")
    retention = _hours(lookup(config, "limits_config.retention_period"))
    if not retention:
        bad("limits_config.retention_period", "is not a positive number of hours or days; logs would be kept forever")
    if lookup(config, "compactor.retention_enabled") is not True:
        bad("compactor.retention_enabled", "is not true; the compactor would never delete logs")
    elif not lookup(config, "compactor.delete_request_store"):
        bad("compactor.delete_request_store", "is not set; Loki needs it when retention is enabled")
    rules = lookup(config, "limits_config.otlp_config.resource_attributes.attributes_config") or []
    labels = [a for rule in rules if rule.get("action") == "index_label" for a in rule.get("attributes", [])]
    if not labels:
        bad("limits_config.otlp_config.resource_attributes", "indexes no attribute; allowed: at least service.name")
    if len(labels) + 1 > MAX_INDEX_LABELS:
        bad(
            "limits_config.otlp_config.resource_attributes",
            f"indexes {len(labels)} attributes; at most {MAX_INDEX_LABELS - 1}",
        )
    if not isinstance(config.get("auth_enabled"), bool):
        bad("auth_enabled", "is not set to true or false")
    return problems
