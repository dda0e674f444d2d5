"""Building blocks shared by every collector profile: TLS settings, auth, queues, retries, telemetry.

Component *types* are written through :func:`otelstack.catalog.components.canonical`, so configs use the
pinned release's canonical names (e.g. ``load_balancing``) while this code keeps one stable vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from otelstack.catalog.components import canonical
from otelstack.model.spec import PlatformSpec, TlsMode
from otelstack.security.layout import HEALTH_CHECK_PORT, SELF_METRICS_PORT, CollectorFiles

Config = dict[str, Any]


def cid(kind: str, logical_type: str, name: str = "") -> str:
    """A component ID ``type[/name]`` with the canonical type of the pinned release."""
    type_ = canonical(kind, logical_type)
    return f"{type_}/{name}" if name else type_


def env_ref(secret_ref: str) -> str:
    """Turn a spec secret reference into collector config syntax; file refs are read by the component."""
    kind, _, value = secret_ref.partition(":")
    if kind == "env":
        return "${env:" + value + "}"
    return "${file:" + value + "}"


@dataclass(frozen=True)
class Paths:
    """Where the files a rendered config refers to live for this delivery path."""

    ca_file: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    queue_dir: str
    checkpoint_dir: str

    @classmethod
    def for_vm(cls, layout: CollectorFiles) -> Paths:
        return cls(
            ca_file=layout.ca_file,
            server_cert=layout.server_cert,
            server_key=layout.server_key,
            client_cert=layout.client_cert,
            client_key=layout.client_key,
            queue_dir=layout.queue_dir,
            checkpoint_dir=layout.checkpoint_dir,
        )


def client_tls(mode: TlsMode, paths: Paths, spec: PlatformSpec) -> Config:
    """TLS settings of an exporter (client side of a hop)."""
    if mode is TlsMode.INSECURE:
        return {"insecure": True}
    tls: Config = {"ca_file": paths.ca_file, "min_version": spec.security.tls_min_version}
    if mode is TlsMode.MTLS:
        tls["cert_file"] = paths.client_cert
        tls["key_file"] = paths.client_key
        tls["reload_interval"] = spec.security.cert_reload_interval
    return tls


def server_tls(mode: TlsMode, paths: Paths, spec: PlatformSpec) -> Config | None:
    """TLS settings of a receiver (server side of a hop); None for plaintext."""
    if mode is TlsMode.INSECURE:
        return None
    tls: Config = {
        "cert_file": paths.server_cert,
        "key_file": paths.server_key,
        "min_version": spec.security.tls_min_version,
        "reload_interval": spec.security.cert_reload_interval,
    }
    if mode is TlsMode.MTLS:
        tls["client_ca_file"] = paths.ca_file
        # The PKI rotates the CA: re-read it when it changes, so mTLS never goes down on rotation.
        tls["client_ca_file_reload"] = True
    return tls


def retry_on_failure() -> Config:
    # seed 000 L3754-3767: 5s initial, 30s max, 300s total
    return {"enabled": True, "initial_interval": "5s", "max_interval": "30s", "max_elapsed_time": "300s"}


def sending_queue(storage_id: str, queue_size: int, consumers: int = 10) -> Config:
    return {"enabled": True, "num_consumers": consumers, "queue_size": queue_size, "storage": storage_id}


def health_check_extension(bind: str) -> Config:
    return {"endpoint": f"{bind}:{HEALTH_CHECK_PORT}"}


def file_storage(directory: str) -> Config:
    return {
        "directory": directory,
        "create_directory": True,
        "timeout": "10s",
        "compaction": {"on_start": True, "on_rebound": True, "directory": directory},
    }


def telemetry(spec: PlatformSpec, *, supervised: bool) -> Config:
    """Self-telemetry: Prometheus pull reader on 8888 (scraped; the runbooks and alerts rely on it).

    The resource is the attributes list (the inline map is deprecated: a warning on every start). Under
    opampsupervisor it is left out: the supervisor writes the resource itself from the agent description
    (which carries ``deployment.environment.name``) plus ``service.instance.id``, and a list of ours,
    merged after its file, would replace its list whole.
    """
    config: Config = {
        "logs": {"level": "info", "encoding": "json"},
        "metrics": {
            "level": "detailed" if spec.environment == "dev" else "normal",
            "readers": [{"pull": {"exporter": {"prometheus": {"host": "0.0.0.0", "port": SELF_METRICS_PORT}}}}],
        },
    }
    if not supervised:
        config["resource"] = {"attributes": [{"name": "deployment.environment.name", "value": spec.environment}]}
    return config


def memory_limiter(limit_mib: int) -> Config:
    """Hard limit at 80 % of the container/unit memory, spike allowance 25 % of that (seed §15.1 ratio)."""
    limit = max(64, int(limit_mib * 0.8))
    return {"check_interval": "1s", "limit_mib": limit, "spike_limit_mib": max(16, limit // 4)}
