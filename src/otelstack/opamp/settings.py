"""Settings of the OpAMP server, read from a YAML file. Secrets are never in the file: tokens come from
environment variables or files named there."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from otelstack.errors import OtelstackError
from otelstack.security.layout import OPAMP_PORT


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Secret(Strict):
    """Where a secret comes from: an environment variable or a file (first line)."""

    env: str | None = Field(None, description="environment variable holding the secret")
    file: Path | None = Field(None, description="file holding the secret (e.g. a systemd credential)")

    @model_validator(mode="after")
    def one_source(self) -> Secret:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env, file")
        return self

    def value(self) -> str:
        if self.env is not None:
            found = os.environ.get(self.env, "")
            if not found:
                raise OtelstackError(f"secret: environment variable {self.env} is empty or unset")
            return found
        assert self.file is not None
        try:
            found = self.file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise OtelstackError(f"secret: cannot read {self.file}: {exc.strerror}") from exc
        if not found:
            raise OtelstackError(f"secret: {self.file} is empty")
        return found


class Tls(Strict):
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = Field(None, description="set to require client certificates (mTLS)")


class ClientCaSettings(Strict):
    """A CA that signs agents' certificate requests (OpAMP connection settings, CSR flow)."""

    cert_file: Path
    key_file: Path
    valid_days: int = Field(30, gt=0, le=397, description="validity of the certificates it signs")


class Limits(Strict):
    max_message_bytes: int = Field(4 * 1024 * 1024, gt=1024, description="largest OpAMP message accepted")
    max_connections: int = Field(10_000, gt=0, description="WebSocket connections and HTTP requests at once")
    websocket_compression: bool = Field(
        False,
        description="accept permessage-deflate on WebSocket connections: smaller remote configs on the wire, "
        "but about 115 KiB more memory per connected agent (zlib state per connection)",
    )
    max_agents_per_environment: int = Field(
        100_000, gt=0, description="agent records per environment token; a new agent beyond it is refused"
    )
    incomplete_agent_ttl_s: float = Field(
        600.0,
        gt=0,
        allow_inf_nan=False,
        description="a record whose agent never described itself is deleted this long after it was created",
    )


class ServerSettings(Strict):
    listen: str = Field(f"0.0.0.0:{OPAMP_PORT}", description="host:port")
    configs_dir: Path = Field(description="the configs/ hierarchy remote configs are rendered from")
    database: Path = Field(Path("/var/lib/otelstack-opamp/fleet.db"), description="SQLite registry")
    tls: Tls | None = None
    # environment name -> the bearer token its collectors present
    tokens: dict[str, Secret] = Field(description="per environment, the token its collectors present")
    admin_token: Secret = Field(description="token for the REST API, the web page, /metrics and `otelstack fleet`")
    allow_insecure: bool = Field(False, description="serve without TLS (lab only)")
    heartbeat_interval_s: int = Field(30, gt=0)
    wave_timeout_s: float = Field(300.0, gt=0, description="default time a rollout wave may take")
    namespaces: dict[str, dict[str, Any]] = Field(default_factory=dict, description="level-4 overrides per namespace")
    limits: Limits = Field(default_factory=lambda: Limits())
    client_ca: ClientCaSettings | None = Field(
        None, description="sign agents' certificate requests and offer the certificates (rotation through OpAMP)"
    )

    @model_validator(mode="after")
    def secure(self) -> ServerSettings:
        if self.tls is None and not self.allow_insecure:
            raise ValueError("tls is required (set allow_insecure: true only for a lab)")
        if not self.tokens:
            raise ValueError("tokens: give at least one environment's token; unauthenticated agents are refused")
        return self

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host or "0.0.0.0", int(port)


def load_settings(path: Path) -> ServerSettings:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise OtelstackError(f"{path}: {exc}") from exc
    try:
        return ServerSettings.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise OtelstackError(f"{path}: {problems}") from exc
