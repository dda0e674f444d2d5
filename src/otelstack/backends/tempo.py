"""Tempo 2.10 (monolithic, ``-target=all``) from the spec: OTLP receivers on the distributor with the
backends' TLS, local or S3 block storage, block retention from ``retention.traces``, and the metrics
generator writing service graphs and span metrics (with exemplars) to Prometheus by remote write.

``check_tempo`` is otelstack's own validator of the rendered file (the platform's invariants); the
program's own ``tempo -config.verify`` is what a platform team runs before a config goes live.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otelstack.backends.endpoints import (
    TEMPO_FILES,
    TEMPO_GRPC_PORT,
    backend_tls,
    checked,
    lookup,
    parsed,
    program_header,
    retention_days,
    server_block,
)
from otelstack.model.spec import PlatformSpec, TlsMode
from otelstack.security.layout import OTLP_GRPC_PORT, OTLP_HTTP_PORT, TEMPO_HTTP_PORT
from otelstack.yamlout import dump

TEMPO_RELEASE = "2.10"
TEMPO_FILE = "tempo/tempo.yaml"
TEMPO_VERIFY = "tempo -config.file=tempo.yaml -config.verify"
GENERATOR_PROCESSORS = ("service-graphs", "span-metrics")
KNOWN_PROCESSORS = ("service-graphs", "span-metrics", "local-blocks")

Config = dict[str, Any]


def _receiver_tls(spec: PlatformSpec) -> Config | None:
    """TLS of the distributor's OTLP receivers (the collector's receiver settings, embedded in Tempo)."""
    mode = backend_tls(spec)
    if mode is TlsMode.INSECURE:
        return None
    tls: Config = {
        "cert_file": TEMPO_FILES.server_cert,
        "key_file": TEMPO_FILES.server_key,
        "min_version": spec.security.tls_min_version,
    }
    if mode is TlsMode.MTLS:
        tls["client_ca_file"] = TEMPO_FILES.ca_file
    return tls


def _remote_write(spec: PlatformSpec) -> Config:
    """Tempo → Prometheus remote write (Prometheus' remote_write settings), exemplars included."""
    target: Config = {"url": spec.backends.prometheus.endpoint, "send_exemplars": True}
    mode = backend_tls(spec)
    if mode is not TlsMode.INSECURE:
        tls: Config = {
            "ca_file": TEMPO_FILES.ca_file,
            "min_version": "TLS" + spec.security.tls_min_version.replace(".", ""),
        }
        if mode is TlsMode.MTLS:
            tls["cert_file"] = TEMPO_FILES.client_cert
            tls["key_file"] = TEMPO_FILES.client_key
        target["tls_config"] = tls
    return target


def _storage(spec: PlatformSpec) -> Config:
    store = spec.backends.tempo.storage
    data = TEMPO_FILES.state_dir
    trace: Config = {"backend": store.kind, "wal": {"path": f"{data}/wal"}}
    if store.kind == "local":
        trace["local"] = {"path": f"{data}/blocks"}
    else:
        # Credentials come from the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) or the instance's
        # role, never from this file; the endpoint is HTTPS (insecure stays false).
        trace["s3"] = {"bucket": store.bucket, "endpoint": store.endpoint}
    return {"trace": trace}


def build_tempo(spec: PlatformSpec) -> Config:
    """Tempo's configuration as data."""
    grpc: Config = {"endpoint": f"0.0.0.0:{OTLP_GRPC_PORT}"}
    http: Config = {"endpoint": f"0.0.0.0:{OTLP_HTTP_PORT}"}
    tls = _receiver_tls(spec)
    if tls:
        grpc["tls"] = dict(tls)
        http["tls"] = dict(tls)
    labels: Config = {"source": "tempo", "deployment_environment_name": spec.environment}
    if spec.cluster_name:
        labels["k8s_cluster_name"] = spec.cluster_name
    days = retention_days(spec.retention.traces)
    return {
        "target": "all",
        "stream_over_http_enabled": True,
        "server": server_block(spec, TEMPO_HTTP_PORT, TEMPO_GRPC_PORT, TEMPO_FILES),
        "distributor": {"receivers": {"otlp": {"protocols": {"grpc": grpc, "http": http}}}},
        "compactor": {"compaction": {"block_retention": f"{days * 24}h"}},
        "metrics_generator": {
            "registry": {"external_labels": labels},
            "storage": {
                "path": f"{TEMPO_FILES.state_dir}/generator/wal",
                "remote_write": [_remote_write(spec)],
            },
        },
        "storage": _storage(spec),
        "overrides": {"defaults": {"metrics_generator": {"processors": list(GENERATOR_PROCESSORS)}}},
        "usage_report": {"reporting_enabled": False},
    }


def render_tempo(spec: PlatformSpec) -> dict[str, str]:
    """``tempo/tempo.yaml``; raises ConfigValidationError when otelstack's own checks fail."""
    header = program_header(spec, f"Tempo {TEMPO_RELEASE} (monolithic, -target=all)", TEMPO_VERIFY)
    return checked({TEMPO_FILE: dump(build_tempo(spec), header)}, check_tempo)


def check_tempo(files: Mapping[str, str]) -> list[str]:
    """The platform's invariants on a rendered Tempo config; one line per problem, naming file and key."""
    config, problems = parsed(files, TEMPO_FILE)
    if config is None:
        return problems

    def bad(key: str, message: str) -> None:
        problems.append(f"{TEMPO_FILE}: `{key}` {message}")

    if config.get("target", "all") != "all":
        bad("target", f"is {config.get('target')!r}; otelstack runs Tempo monolithic: all")
    trace = lookup(config, "storage.trace") or {}
    backend = trace.get("backend")
    if backend not in ("local", "s3"):
        bad("storage.trace.backend", f"is {backend!r}; allowed: local, s3")
    if not lookup(trace, "wal.path"):
        bad("storage.trace.wal.path", "is not set; the WAL needs a directory")
    if backend == "local" and not lookup(trace, "local.path"):
        bad("storage.trace.local.path", "is not set; local storage needs a directory")
    if backend == "s3" and not (lookup(trace, "s3.bucket") and lookup(trace, "s3.endpoint")):
        bad("storage.trace.s3", "needs bucket and endpoint")
    if backend == "s3" and (lookup(trace, "s3.access_key") or lookup(trace, "s3.secret_key")):
        bad("storage.trace.s3", "holds credentials; allowed: credentials from the environment or the instance role")
    if lookup(trace, "s3.insecure") is True:
        bad("storage.trace.s3.insecure", "is true; the S3 endpoint is reached over HTTPS")
    retention = lookup(config, "compactor.compaction.block_retention")
    if not (
        isinstance(retention, str) and retention.endswith("h") and retention[:-1].isdigit() and int(retention[:-1])
    ):
        bad("compactor.compaction.block_retention", f"is {retention!r}; allowed: a positive number of hours, e.g. 720h")
    processors = lookup(config, "overrides.defaults.metrics_generator.processors") or []
    unknown = [p for p in processors if p not in KNOWN_PROCESSORS]
    if unknown:
        bad(
            "overrides.defaults.metrics_generator.processors",
            f"has unknown {unknown}; allowed: {list(KNOWN_PROCESSORS)}",
        )
    missing = [p for p in GENERATOR_PROCESSORS if p not in processors]
    if missing:
        bad(
            "overrides.defaults.metrics_generator.processors",
            f"lacks {missing}: Grafana's service map and span links read their metrics",
        )
    if processors and not lookup(config, "metrics_generator.storage.path"):
        bad("metrics_generator.storage.path", "is not set; the generator's WAL needs a directory")
    writes = lookup(config, "metrics_generator.storage.remote_write") or []
    if processors and not writes:
        bad("metrics_generator.storage.remote_write", "is empty; generated metrics would go nowhere")
    for i, target in enumerate(writes):
        if not isinstance(target, Mapping) or target.get("send_exemplars") is not True:
            bad(
                f"metrics_generator.storage.remote_write[{i}].send_exemplars",
                "is not true; metrics → trace links need it",
            )
    receivers = lookup(config, "distributor.receivers") or {}
    if set(receivers) - {"otlp"}:
        bad("distributor.receivers", f"has {sorted(set(receivers) - {'otlp'})}; the gateways send OTLP only")
    return problems
