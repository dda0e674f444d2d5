"""opampsupervisor configuration for VM collectors.

systemd runs the supervisor; the supervisor runs ``otelcol-contrib`` with the merge of its config files:
our rendered collector config (``base``), then the supervisor's own telemetry and opamp-extension
fragments, then the remote config from the OpAMP server. Before the first contact with the server the
fallback config (the same rendered file) runs, so a new host collects from its first second. The
host's agent-level overrides go to the server in the description (``otelstack.agent_overrides``), so
its remote config carries them as the host's own file does. Keys are
those of opampsupervisor in the pinned release (``supervisor:`` in catalog/components.yaml).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from otelstack.collector.blocks import Config, env_ref
from otelstack.model.spec import PlatformSpec, TlsMode
from otelstack.security.layout import VmLayout


def collector_config_path(layout: VmLayout, profile: str) -> str:
    return f"{layout.config_dir}/{profile}.yaml"


# Description attribute carrying the host's agent-level overrides (Ansible host_vars) to the OpAMP
# server, so the config it offers the host is rendered from the same five levels as the host's own file.
AGENT_OVERRIDES_ATTRIBUTE = "otelstack.agent_overrides"


OVERRIDES_ENCODING = "base64:"


def overrides_attribute(overrides: Mapping[str, Any]) -> str:
    """Canonical JSON (sorted keys, no spaces), base64url-encoded: equal overrides give byte-equal
    supervisor configs, and the value holds no quote. opampsupervisor 0.158.0 pastes description
    attributes unescaped into its own YAML template (`value: "{{.Value}}"`), so a JSON value with double
    quotes made it exit ("could not merge extra telemetry config").
    """
    text = json.dumps(overrides, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return OVERRIDES_ENCODING + base64.urlsafe_b64encode(text.encode()).decode()


def decode_overrides_attribute(value: str) -> str:
    """The JSON text of an overrides attribute (a plain JSON value is accepted as it was written before)."""
    if not value.startswith(OVERRIDES_ENCODING):
        return value
    try:
        return base64.urlsafe_b64decode(value.removeprefix(OVERRIDES_ENCODING).encode()).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not base64url-encoded UTF-8 ({exc})") from None


def render_supervisor(
    spec: PlatformSpec, layout: VmLayout, profile: str, agent_overrides: Mapping[str, Any] | None = None
) -> Config:
    base = collector_config_path(layout, profile)
    mode = spec.security.tls.collectors_to_opamp
    tls: Config = {"insecure": True} if mode is TlsMode.INSECURE else {"ca_file": layout.ca_file}
    if mode is TlsMode.MTLS:
        tls.update(cert_file=layout.client_cert, key_file=layout.client_key)
    server: Config = {
        "endpoint": spec.security.opamp.endpoint,
        # The supervisor expands ${env:NAME} like the collector (contrib PR #36270).
        "headers": {"Authorization": "Bearer " + env_ref(spec.security.opamp.token)},
        "tls": tls,
    }
    return {
        "server": server,
        "capabilities": {
            "accepts_remote_config": True,
            "reports_remote_config": True,
            "reports_effective_config": True,
            "reports_health": True,
            "reports_own_metrics": True,
            "reports_available_components": True,
            "reports_heartbeat": True,
            "accepts_restart_command": True,
            "accepts_opamp_connection_settings": True,
        },
        "agent": {
            "executable": layout.binary,
            "config_files": [base, "$OWN_TELEMETRY_CONFIG", "$OPAMP_EXTENSION_CONFIG", "$REMOTE_CONFIG"],
            "startup_fallback_configs": [base],
            # Off by default upstream: restore the last working remote config when a new one fails.
            "automatic_config_rollback": True,
            # Attach the collector's last log lines to crash/failure reports (no SSH to find out why).
            "collector_crash_log_snippet_kib": 64,
            "description": {
                "non_identifying_attributes": {
                    "deployment.environment.name": spec.environment,
                    "otelstack.profile": profile,
                    **({"cloud.region": spec.region} if spec.region else {}),
                    **({AGENT_OVERRIDES_ATTRIBUTE: overrides_attribute(agent_overrides)} if agent_overrides else {}),
                }
            },
            "config_apply_timeout": "30s",
        },
        "storage": {"directory": layout.supervisor_state_dir},
        "telemetry": {"logs": {"level": "info"}},
    }
