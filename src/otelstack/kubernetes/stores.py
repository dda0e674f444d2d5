"""Tempo (monolithic) and Loki (single binary) in the cluster: StatefulSets running the rendered configs.

``tempo/tempo.yaml`` and ``loki/loki.yaml`` go into ConfigMaps ``tempo-config`` and ``loki-config``,
projected with the certificate files under ``/etc/tempo`` and ``/etc/loki`` (the ``tls_dir`` the renders
name); the data directory (``/var/lib/tempo``, ``/var/lib/loki``: WAL, blocks/chunks, index, the compactor's
work) is the volume claim. Probes: ``/ready`` on the HTTP port, over HTTPS when the backends' hop uses TLS,
a TCP check with mTLS (the server then asks every client, the kubelet too, for a certificate).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from otelstack.backends import loki as loki_render
from otelstack.backends import tempo as tempo_render
from otelstack.backends.endpoints import LOKI_FILES, TEMPO_FILES
from otelstack.kubernetes import backend
from otelstack.kubernetes.backend import Backend
from otelstack.kubernetes.objects import Component
from otelstack.model.spec import TlsMode
from otelstack.security.layout import LOKI_HTTP_PORT, TEMPO_OTLP_GRPC_PORT

if TYPE_CHECKING:
    from otelstack.kubernetes.stack import StackContext

UID = 10001  # the user of the upstream grafana/tempo and grafana/loki images
TEMPO = Backend("tempo", "tempo", "/etc/tempo", TEMPO_FILES.state_dir, UID)
LOKI = Backend("loki", "loki", "/etc/loki", LOKI_FILES.state_dir, UID)


def _store(ctx: StackContext, item: Backend, rendered: str, endpoint_key: str, endpoint: str, port: int) -> Component:
    backend.check_endpoint(ctx, item.name, endpoint_key, endpoint, port)
    file_name = rendered.rsplit("/", 1)[1]
    config = {file_name: ctx.backend_file(rendered)}
    sources = [backend.config_map_source(f"{item.name}-config", config), *backend.tls_sources(ctx, item)]
    mode = backend.backend_tls(ctx)
    probe = backend.probes("/ready", "http", "HTTP" if mode is TlsMode.INSECURE else "HTTPS", tcp=mode is TlsMode.MTLS)
    args = [f"-config.file={item.config_dir}/{file_name}"]
    main = backend.container(ctx, item, args=args, probe=probe)
    pod = backend.pod_spec(ctx, item, main, sources)
    objects = [
        *backend.tls_certificate(ctx, item),
        *backend.config_maps(ctx, item, {"config": config}),
        backend.service(ctx, item),
        backend.statefulset(ctx, item, pod, backend.checksum([*config.values(), *args])),
    ]
    return Component(item.name, tuple(objects), depends_on=backend.depends(ctx))


# Backend → (its render, the port of the spec's endpoint).
RENDERS = {TEMPO: (tempo_render.TEMPO_FILE, TEMPO_OTLP_GRPC_PORT), LOKI: (loki_render.LOKI_FILE, LOKI_HTTP_PORT)}


def _component(ctx: StackContext, item: Backend) -> Component | None:
    if not backend.runs(ctx, item.name):
        return None
    settings = getattr(ctx.spec.backends, item.name)
    backend.require_spec_backend(ctx, item.name, settings.enabled)
    rendered, port = RENDERS[item]
    return _store(ctx, item, rendered, f"backends.{item.name}.endpoint", settings.endpoint, port)


def tempo_component(ctx: StackContext) -> Component | None:
    return _component(ctx, TEMPO)


def loki_component(ctx: StackContext) -> Component | None:
    return _component(ctx, LOKI)
