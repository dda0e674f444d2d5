"""The collector's ``opamp`` extension (reporting to the OpAMP server when no supervisor runs)."""

from __future__ import annotations

from otelstack.collector.blocks import Config, Paths, client_tls, env_ref
from otelstack.model.spec import PlatformSpec


def opamp_extension(spec: PlatformSpec, paths: Paths) -> Config:
    endpoint = spec.security.opamp.endpoint
    transport = "ws" if endpoint.startswith(("ws://", "wss://")) else "http"
    server: Config = {
        "endpoint": endpoint,
        "headers": {"Authorization": "Bearer " + env_ref(spec.security.opamp.token)},
        "tls": client_tls(spec.security.tls.collectors_to_opamp, paths, spec),
    }
    return {
        "server": {transport: server},
        "capabilities": {
            "reports_effective_config": True,
            "reports_health": True,
            "reports_available_components": True,
        },
        "agent_description": {
            "non_identifying_attributes": {
                "deployment.environment.name": spec.environment,
                "os.type": "linux",
            }
        },
    }
