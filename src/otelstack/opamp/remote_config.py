"""Remote config per agent: otelstack's renderer over the configs/ hierarchy plus the agent's levels.

An agent's identity comes from its description: ``deployment.environment.name`` (environment),
``cloud.region`` (region, optional), ``otelstack.profile`` (collector profile, default ``agent-vm``) and
``k8s.namespace.name`` (namespace level, Kubernetes). Level 5 stacks two documents: the host's own
overrides, which a VM supervisor reports in ``otelstack.agent_overrides`` (Ansible host_vars, so the
offered config equals the host's file), then the overrides set on the server for the agent. Every
config is rendered and validated by otelstack before it is offered; renders are cached by their
inputs, so a fleet of identical agents costs one render.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otelstack.collector.supervisor import AGENT_OVERRIDES_ATTRIBUTE, decode_overrides_attribute
from otelstack.errors import OtelstackError
from otelstack.layering import Layer
from otelstack.render import render_agent_config

ENV_ATTRIBUTE = "deployment.environment.name"
REGION_ATTRIBUTE = "cloud.region"
PROFILE_ATTRIBUTE = "otelstack.profile"
NAMESPACE_ATTRIBUTE = "k8s.namespace.name"
CONFIG_FILE_NAME = "otelstack.yaml"
CONTENT_TYPE = "text/yaml"


@dataclass(frozen=True)
class Desired:
    """The config an agent should run, or why there is none."""

    text: str = ""
    sha256: str = ""
    error: str = ""


class ConfigSource:
    """Renders (and caches) configs from one or more configs/ directories."""

    def __init__(self, namespaces: dict[str, dict[str, Any]] | None = None) -> None:
        # namespace name -> level-4 overrides (from the server settings)
        self.namespaces = namespaces or {}
        self._cache: dict[str, Desired] = {}

    def desired(
        self,
        configs_dir: Path,
        *,
        environment: str,
        region: str,
        profile: str,
        namespace: str = "",
        overrides: dict[str, Any] | None = None,
        host_overrides: str = "",
        variant: str = "normal",
    ) -> Desired:
        """``host_overrides``: the JSON text the agent reported in ``otelstack.agent_overrides``."""
        if not environment:
            return Desired(error=f"the agent does not report {ENV_ATTRIBUTE}; no config can be chosen")
        key = json.dumps(
            [str(configs_dir), environment, region, profile, namespace, overrides or {}, host_overrides, variant],
            sort_keys=True,
        )
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        try:
            agent = [
                Layer(f"<agent level: the host's {AGENT_OVERRIDES_ATTRIBUTE}>", parse_host_overrides(host_overrides)),
                Layer("<agent level: overrides set on the OpAMP server>", overrides or {}),
            ]
            rendered = render_agent_config(
                Path(configs_dir),
                environment,
                region or None,
                profile=profile,
                namespace=self.namespaces.get(namespace) if namespace else None,
                agent=agent,
                variant=variant,  # type: ignore[arg-type]
            )
            result = Desired(text=rendered.text, sha256=rendered.sha256)
        except OtelstackError as exc:
            result = Desired(error=str(exc))
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[key] = result
        return result


def parse_host_overrides(text: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(decode_overrides_attribute(text))
    except ValueError as exc:
        raise OtelstackError(f"{AGENT_OVERRIDES_ATTRIBUTE}: not JSON ({exc})") from None
    except RecursionError:
        raise OtelstackError(f"{AGENT_OVERRIDES_ATTRIBUTE}: nested too deeply to be a configs/ level") from None
    if not isinstance(value, dict):
        raise OtelstackError(f"{AGENT_OVERRIDES_ATTRIBUTE}: must be a JSON object (a configs/ level document)")
    return value
