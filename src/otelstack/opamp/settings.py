"""Settings of the OpAMP server, read from a YAML file. Secrets are never in the file: tokens come from
environment variables or files named there."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from otelstack.errors import OtelstackError
from otelstack.layering import parse_level
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


class PostgresSettings(Strict):
    """A PostgreSQL registry shared by several server replicas (any replica serves any agent)."""

    url: str = Field(
        description="postgresql://USER@HOST:PORT/DBNAME[?sslmode=verify-full&sslrootcert=...]: no password here"
    )
    password: Secret | None = Field(None, description="the password of USER (none: peer or certificate auth)")
    connect_timeout_s: int = Field(10, gt=0, le=300, description="how long a connection attempt may take")

    @model_validator(mode="after")
    def no_inline_password(self) -> PostgresSettings:
        url = urlsplit(self.url)
        if url.scheme not in ("postgresql", "postgres"):
            raise ValueError(f"url: {self.url!r} is not a postgresql:// URL (postgresql://USER@HOST:PORT/DBNAME)")
        if url.password is not None or any(
            part.split("=", 1)[0].strip().lower() == "password" for part in url.query.split("&")
        ):
            raise ValueError("url: give no password in the URL; set password: {env: ...} or {file: ...}")
        if not url.path.strip("/"):
            raise ValueError(f"url: {self.url!r} names no database (postgresql://USER@HOST:PORT/DBNAME)")
        return self

    @property
    def where(self) -> str:
        """host:port/dbname, for messages (never the password)."""
        url = urlsplit(self.url)
        return f"{url.hostname or 'localhost'}:{url.port or 5432}/{url.path.strip('/')}"

    def conninfo(self, application_name: str) -> str:
        """The libpq connection string, the password read from its secret."""
        from psycopg.conninfo import make_conninfo

        extra: dict[str, Any] = {"connect_timeout": self.connect_timeout_s, "application_name": application_name}
        if self.password is not None:
            extra["password"] = self.password.value()
        return make_conninfo(self.url, **extra)


class PageSettings(Strict):
    """The fleet page's browser sessions (docs/opamp.md, "The fleet page")."""

    session_lifetime_s: float = Field(
        8 * 3600.0,
        gt=0,
        le=7 * 24 * 3600.0,
        allow_inf_nan=False,
        description="a browser session ends this long after its login (then the page asks to log in again)",
    )
    max_sessions: int = Field(
        100, gt=0, le=10_000, description="browser sessions at once; a login beyond it ends the oldest session"
    )


class ServerSettings(Strict):
    listen: str = Field(f"0.0.0.0:{OPAMP_PORT}", description="host:port")
    configs_dir: Path = Field(description="the configs/ hierarchy remote configs are rendered from")
    database: Path = Field(Path("/var/lib/otelstack-opamp/fleet.db"), description="SQLite registry")
    postgresql: PostgresSettings | None = Field(
        None, description="a PostgreSQL registry instead of SQLite, shared by several replicas (high availability)"
    )
    tls: Tls | None = None
    # environment name -> the bearer token its collectors present
    tokens: dict[str, Secret] = Field(description="per environment, the token its collectors present")
    admin_token: Secret = Field(description="token for the REST API, the web page, /metrics and `otelstack fleet`")
    page: PageSettings = Field(default_factory=lambda: PageSettings(), description="the fleet page's sessions")
    allow_insecure: bool = Field(False, description="serve without TLS (lab only)")
    heartbeat_interval_s: int = Field(30, gt=0)
    wave_timeout_s: float = Field(300.0, gt=0, description="default time a rollout wave may take")
    namespaces: dict[str, dict[str, Any]] = Field(default_factory=dict, description="level-4 overrides per namespace")
    limits: Limits = Field(default_factory=lambda: Limits())
    client_ca: ClientCaSettings | None = Field(
        None, description="sign agents' certificate requests and offer the certificates (rotation through OpAMP)"
    )
    opamp_url: str | None = Field(
        None,
        description="this server's OpAMP endpoint as agents reach it (ws://, wss://, http:// or https://), "
        "offered to agents as OpAMP connection settings; unset: no connection settings are offered, except "
        "that a plaintext server listening on one address offers ws://<listen>/v1/opamp",
    )
    opamp_ca_file: Path | None = Field(
        None,
        description="PEM: the CA certificate(s) agents verify this server with, offered with the connection "
        "settings (old and new during a CA rotation); required with a wss:// or https:// opamp_url",
    )

    @model_validator(mode="after")
    def secure(self) -> ServerSettings:
        if self.tls is None and not self.allow_insecure:
            raise ValueError("tls is required (set allow_insecure: true only for a lab)")
        if not self.tokens:
            raise ValueError("tokens: give at least one environment's token; unauthenticated agents are refused")
        if self.postgresql is not None and "database" in self.model_fields_set:
            raise ValueError("database (SQLite) and postgresql: give one registry, not both")
        if self.opamp_url is not None:
            url = urlsplit(self.opamp_url)
            if url.scheme not in ("ws", "wss", "http", "https") or not url.hostname:
                raise ValueError(
                    f"opamp_url: {self.opamp_url!r} is not a ws://, wss://, http:// or https:// URL with a host "
                    "(for example wss://opamp.example.com:4320/v1/opamp)"
                )
            if url.username or url.password or url.query or url.fragment:
                raise ValueError(f"opamp_url: {self.opamp_url!r}: no user, query or fragment (tokens go in headers)")
            secure = url.scheme in ("wss", "https")
            if self.tls is not None and not secure:
                raise ValueError(f"opamp_url: {self.opamp_url!r} is plaintext but this server serves TLS: use wss://")
            if secure and self.opamp_ca_file is None:
                raise ValueError(
                    "opamp_ca_file: required with a wss:// or https:// opamp_url (an offer without a CA makes "
                    "the supervisor turn off certificate verification)"
                )
        elif self.opamp_ca_file is not None:
            raise ValueError("opamp_ca_file: only offered with opamp_url; set opamp_url too")
        return self

    @property
    def offered_url(self) -> str:
        """The OpAMP URL offered to agents: ``opamp_url``, else for a plaintext server listening on one
        address ws://<listen>/v1/opamp, else "" (no connection settings are offered)."""
        if self.opamp_url is not None:
            return self.opamp_url
        host, port = self.host_port
        if self.tls is None and host not in ("0.0.0.0", "::", "[::]", ""):
            return f"ws://{host}:{port}/v1/opamp"
        return ""

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host or "0.0.0.0", int(port)


def load_settings(path: Path) -> ServerSettings:
    """The settings file, read by the spec loader's YAML reader (its namespace levels are levels): no
    anchors or aliases, no duplicate keys, bounded size and depth, errors with file and line."""
    try:
        raw = parse_level(path.read_bytes(), str(path))
    except OSError as exc:
        raise OtelstackError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        return ServerSettings.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise OtelstackError(f"{path}: {problems}") from exc
