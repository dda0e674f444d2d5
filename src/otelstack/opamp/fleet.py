"""The fleet: what the server answers to each AgentToServer message, whatever the transport.

Keeps the registry current (description, health, effective config, remote config status, packages,
available components — asked for when the agent reports a hash the registry has no list for),
asks for the full state after a sequence gap or from an unknown agent, assigns instance UIDs (once per
connection), offers the agent's desired config only when it differs from what the agent runs (never
one the agent reported FAILED, while that failure is remembered), offers packages and connection
settings, and passes restart commands on.

A record belongs to the environment whose token created it; another environment's token cannot
speak for it. Records are capped per environment, and records that never described themselves expire.
A failure while preparing one part of one agent's answer is logged once and leaves that part out; the
rest of the answer, and every other agent, are served as usual.

Replicas sharing a registry (PostgreSQL): each record says which server process the agent last spoke to
(``server``), so a replica marks disconnected only its own agents; an operator's change to one agent (a
restart, overrides, deletion) is announced to the other replicas, which push it to the agent if it is
connected to them (``changed_elsewhere``, then ``dirty``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry._opamp.proto import opamp_pb2 as pb

from otelstack.opamp import protocol
from otelstack.opamp.certificates import CaBundle, CertificateError, ClientCa
from otelstack.opamp.oncelog import OnceLog
from otelstack.opamp.remote_config import (
    CONFIG_FILE_NAME,
    CONTENT_TYPE,
    ENV_ATTRIBUTE,
    NAMESPACE_ATTRIBUTE,
    PROFILE_ATTRIBUTE,
    REGION_ATTRIBUTE,
    ConfigSource,
)
from otelstack.opamp.rollout import Rollouts
from otelstack.opamp.store import AgentRecord, FleetStore

log = logging.getLogger("otelstack.opamp")

CAP = pb.AgentCapabilities
STATUS_NAMES = {
    pb.RemoteConfigStatuses_UNSET: "UNSET",
    pb.RemoteConfigStatuses_APPLIED: "APPLIED",
    pb.RemoteConfigStatuses_APPLYING: "APPLYING",
    pb.RemoteConfigStatuses_FAILED: "FAILED",
}
PACKAGE_STATUS_NAMES = {
    pb.PackageStatusEnum_Installed: "Installed",
    pb.PackageStatusEnum_InstallPending: "InstallPending",
    pb.PackageStatusEnum_Installing: "Installing",
    pb.PackageStatusEnum_InstallFailed: "InstallFailed",
    pb.PackageStatusEnum_Downloading: "Downloading",
}


# The fields of an agent's record an operator's request sets (a restart, overrides), on any replica.
OPERATOR_FIELDS = ("pending_command", "overrides")


@dataclass(frozen=True)
class FleetSettings:
    configs_dir: Path
    heartbeat_interval_s: int = 30
    # An offer the agent did not answer (HTTP agents poll) is repeated after this long.
    offer_retry_s: float = 60.0
    # Signs agents' certificate requests (OpAMP connection settings); None: requests are declined.
    client_ca: ClientCa | None = None
    # OpAMP connection-settings offers (each one complete: the agent replaces its whole server config
    # with it). The server's OpAMP URL as agents reach it; "": no offers at all.
    opamp_url: str = ""
    # The CA(s) agents verify the server with (offered as certificate.ca_cert); None: plaintext URL.
    server_ca: CaBundle | None = None
    # environment -> its agents' bearer token, offered back to the agents of that environment only.
    tokens: Mapping[str, str] = field(default_factory=dict, repr=False)
    # The server requires client certificates (tls.client_ca_file): an offer would replace the agent's
    # certificate, so only an offer with a certificate it asked for (its CSR, its own key) is sent.
    client_certificates_required: bool = False
    # Records per environment (the token that created them); a new agent beyond it is refused.
    max_agents_per_environment: int = 100_000
    # A record that has not described itself (AgentDescription) this long after it was created is deleted.
    incomplete_agent_ttl_s: float = 600.0
    # Failed configs remembered per agent (the most recent ones), and for how long after the failure.
    failed_configs_kept: int = 20
    failed_config_ttl_s: float = 7 * 24 * 3600.0
    # An agent is live while seen within this many heartbeat intervals (or connected by WebSocket).
    missed_heartbeats: int = 3
    # This server process among replicas sharing the registry ("" with one server).
    server_id: str = ""


@dataclass
class Session:
    """One agent connection: a WebSocket, or an HTTP keep-alive connection. An agent that sends no
    instance UID, or asks for one, is given one UID per connection, not one per message."""

    transport: str = ""  # "websocket" or "http"
    assigned_uid: bytes = b""
    # No message handled on it yet: an offer made on an earlier WebSocket (possibly by another replica,
    # now gone) may have been lost with it, so it is made again.
    fresh: bool = True
    # The agent whose record the server read afresh for this connection before its first message
    # (``FleetStore.load``, off the event loop): that message needs no read of its own.
    loaded: str = ""


class Fleet:
    def __init__(
        self,
        store: FleetStore,
        settings: FleetSettings,
        source: ConfigSource | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.source = source or ConfigSource()
        self.rollouts = Rollouts(store, self.source, settings.configs_dir, clock)
        self._changes = 0
        self.errors = OnceLog()
        # Records per owning environment (the cap), counted once and kept current by this, their writer
        # (with replicas, recounted at each expiry: the others write too).
        self._owned: Counter[str] | None = None
        # Agents another replica changed, to push to if they are connected here.
        self.dirty: set[str] = set()
        # Called when another replica announced a change (the push loop wakes at once instead of at its
        # next tick: a wave released elsewhere reaches the agents here without waiting for it).
        self.wake: Callable[[], None] = lambda: None

    # --- the protocol ------------------------------------------------------------------------------

    def handle(
        self, message: pb.AgentToServer, *, token_environment: str | None = None, session: Session | None = None
    ) -> pb.ServerToAgent:
        """The answer to one message. ``token_environment``: the environment of the bearer token it came
        with (None: not checked, for callers inside the server); ``session``: its connection."""
        session = session if session is not None else Session()
        response = pb.ServerToAgent(instance_uid=message.instance_uid, capabilities=protocol.SERVER_CAPABILITIES)
        uid_bytes = message.instance_uid
        if not uid_bytes or message.flags & pb.AgentToServerFlags_RequestInstanceUid:
            if not session.assigned_uid:
                session.assigned_uid = protocol.new_instance_uid()
            uid_bytes = session.assigned_uid
            response.agent_identification.new_instance_uid = uid_bytes
        uid = protocol.uid_text(uid_bytes)
        if session.fresh and session.loaded != uid:  # a new connection: it may have spoken to another replica
            self.store.forget_cached(uid)
        agent = self.store.get_agent(uid)
        full_state = False
        if agent is not None and token_environment is not None and self.owner(agent) not in ("", token_environment):
            log.warning(
                "agent %s: a message with the token of %s for a record of %s; refused, the record is unchanged "
                "(if the agent moved environment, delete its record: DELETE /api/agents/%s)",
                uid,
                token_environment,
                self.owner(agent),
                uid,
            )
            return self._refuse(
                response,
                f"instance UID {uid} belongs to an agent of environment {self.owner(agent)!r}; "
                f"this token is for {token_environment!r}",
            )
        created = agent is None
        if agent is None:
            owner = token_environment or ""
            cap = self.settings.max_agents_per_environment
            if self._owned_count(owner) >= cap:
                self.errors.error(
                    f"cap:{owner}",
                    "agent %s refused: the registry holds %d agents of environment %r "
                    "(limits.max_agents_per_environment)",
                    uid,
                    cap,
                    owner,
                )
                return self._refuse(
                    response,
                    f"the registry holds the maximum of {cap} agents for environment {owner!r} "
                    "(limits.max_agents_per_environment); no new agent is registered until records expire "
                    "or the limit is raised",
                    pb.ServerErrorResponseType_Unavailable,
                )
            agent = AgentRecord(uid=uid, first_seen=self.clock(), owner=owner)
            full_state = not message.HasField("agent_description")
        elif agent.sequence_num >= 0 and message.sequence_num != agent.sequence_num + 1:
            full_state = not message.HasField("agent_description")
        if session.fresh and session.transport == "websocket":
            agent.offered_hash, agent.offered_at = "", 0.0
        session.fresh = False
        self._update(agent, message, token_environment, session)
        if token_environment is not None and agent.environment != token_environment:
            log.warning(
                "agent %s: token is for %s but it reports %s; refused", uid, token_environment, agent.environment
            )
            return self._refuse(
                response,
                f"this token is for environment {token_environment!r}; the agent reports {agent.environment!r}",
            )
        if not agent.owner:
            agent.owner = agent.environment
        if full_state:
            response.flags |= pb.ServerToAgentFlags_ReportFullState
        if self._wants_components(agent, message):
            response.flags |= pb.ServerToAgentFlags_ReportAvailableComponents
        if message.HasField("agent_disconnect"):
            agent.connected = False
            self._put(agent, created)
            return response
        self._guarded(agent, response, "config offer", self._offer_config)
        self._guarded(agent, response, "package offer", self._offer_package)
        self._guarded(
            agent,
            response,
            "connection settings offer",
            lambda a, r: self._offer_settings(a, r, message, token_environment),
        )
        if agent.pending_command == "restart" and agent.capabilities & CAP.AgentCapabilities_AcceptsRestartCommand:
            response.command.type = pb.CommandType_Restart
            agent.pending_command = ""
        self._put(agent, created)
        if (
            message.HasField("remote_config_status")
            or message.HasField("health")
            or message.HasField("package_statuses")
        ):
            try:
                self.rollouts.observe(agent)
            except Exception:  # the periodic evaluation decides the rollout; this agent is answered
                self.errors.error(f"observe:{agent.uid}", "rollout: agent %s's report could not be evaluated", uid)
        return response

    @staticmethod
    def _refuse(
        response: pb.ServerToAgent, why: str, kind: int = pb.ServerErrorResponseType_BadRequest
    ) -> pb.ServerToAgent:
        response.ClearField("agent_identification")
        response.error_response.type = kind  # type: ignore[assignment]
        response.error_response.error_message = why
        return response

    def _guarded(
        self,
        agent: AgentRecord,
        response: pb.ServerToAgent,
        what: str,
        fill: Callable[[AgentRecord, pb.ServerToAgent], None],
    ) -> None:
        """One part of an answer, prepared apart: if it fails, it is left out (logged once per agent and
        error) and the rest of the answer goes out."""
        part = pb.ServerToAgent()
        before = dict(agent.__dict__)
        try:
            fill(agent, part)
        except Exception as exc:
            agent.__dict__.update(before)  # nothing half-done is recorded
            self.errors.failure(f"{what}:{agent.uid}", exc, "agent %s: its %s failed and was left out", agent.uid, what)
            return
        response.MergeFrom(part)

    def owner(self, agent: AgentRecord) -> str:
        """The environment a record belongs to (records of older servers: the one they report)."""
        return agent.owner or agent.environment

    def _owned_count(self, owner: str) -> int:
        if self._owned is None:
            self._owned = Counter(self.store.count_agents_by_owner())
        return self._owned[owner]

    def _put(self, agent: AgentRecord, created: bool) -> None:
        self.store.put_agent(agent)
        if created and self._owned is not None:
            self._owned[self.owner(agent)] += 1

    def _uncount(self, agent: AgentRecord) -> None:
        if self._owned is not None and self._owned[self.owner(agent)] > 0:
            self._owned[self.owner(agent)] -= 1

    def _update(
        self, agent: AgentRecord, message: pb.AgentToServer, token_environment: str | None, session: Session
    ) -> None:
        agent.sequence_num = message.sequence_num
        agent.last_seen = self.clock()
        agent.connected = True
        agent.server = self.settings.server_id
        agent.transport = session.transport or agent.transport
        if message.capabilities:
            agent.capabilities = message.capabilities
        if message.HasField("agent_description"):
            attrs = protocol.attributes(message.agent_description)
            agent.attributes = attrs
            agent.environment = str(attrs.get(ENV_ATTRIBUTE) or token_environment or "")
            agent.region = str(attrs.get(REGION_ATTRIBUTE) or "")
            agent.profile = str(attrs.get(PROFILE_ATTRIBUTE) or "agent-vm")
            agent.namespace = str(attrs.get(NAMESPACE_ATTRIBUTE) or "")
            agent.version = str(attrs.get("service.version") or "")
        elif not agent.environment and token_environment:
            agent.environment = token_environment
        if message.HasField("health"):
            agent.health = protocol.health(message.health)
            agent.healthy = message.health.healthy
        if message.HasField("effective_config"):
            digest = hashlib.sha256()
            for name, file in sorted(message.effective_config.config_map.config_map.items()):
                digest.update(name.encode() + b"\0" + file.body)
            agent.effective_config_hash = digest.hexdigest()
        if message.HasField("remote_config_status"):
            status = message.remote_config_status
            agent.remote_status = STATUS_NAMES.get(status.status, "UNSET")
            agent.remote_hash = status.last_remote_config_hash.hex()
            agent.remote_error = status.error_message
            if agent.remote_status == "FAILED" and agent.remote_hash:
                self._remember_failure(agent, agent.remote_hash)
                log.warning(
                    "agent %s failed to apply config %s: %s", agent.uid, agent.remote_hash[:12], agent.remote_error
                )
            elif agent.remote_status == "APPLIED":
                # It runs a config it once failed (its host was fixed): no longer a failure.
                agent.failed_hashes.pop(agent.remote_hash, None)
                if agent.failed_hash == agent.remote_hash:
                    agent.failed_hash = ""
        if agent.remote_status == "APPLIED" and agent.healthy is not False and agent.remote_hash:
            agent.last_good_hash = agent.remote_hash
        if message.HasField("available_components") and message.available_components.components:
            agent.available_components = protocol.components(message.available_components.components)
            agent.available_components_hash = message.available_components.hash.hex()
        if message.HasField("package_statuses"):
            agent.packages = {
                name: {
                    "version": st.agent_has_version,
                    "status": PACKAGE_STATUS_NAMES.get(st.status, str(st.status)),
                    "error": st.error_message,
                }
                for name, st in message.package_statuses.packages.items()
            }

    def _remember_failure(self, agent: AgentRecord, config_hash: str) -> None:
        agent.failed_hash = config_hash
        agent.failed_hashes.pop(config_hash, None)
        agent.failed_hashes[config_hash] = self.clock()
        self.failed_configs(agent)

    def failed_configs(self, agent: AgentRecord) -> dict[str, float]:
        """The configs the agent failed that are still remembered (hash -> when it failed, oldest first):
        at most ``failed_configs_kept``, each for ``failed_config_ttl_s`` after the failure. Forgets the
        others in the record."""
        now = self.clock()
        kept = sorted(
            ((h, t) for h, t in agent.failed_hashes.items() if now - t < self.settings.failed_config_ttl_s),
            key=lambda item: item[1],
        )[-self.settings.failed_configs_kept :]
        if len(kept) != len(agent.failed_hashes):
            agent.failed_hashes = dict(kept)
            if agent.failed_hash not in agent.failed_hashes:
                agent.failed_hash = ""
        return dict(kept)

    @staticmethod
    def _wants_components(agent: AgentRecord, message: pb.AgentToServer) -> bool:
        """An agent that reports only the hash of its components, for a list the registry does not hold,
        is asked for the list (ServerToAgentFlags_ReportAvailableComponents)."""
        if not agent.capabilities & CAP.AgentCapabilities_ReportsAvailableComponents:
            return False
        if not message.HasField("available_components") or message.available_components.components:
            return False
        return message.available_components.hash.hex() != agent.available_components_hash

    def _offer_config(self, agent: AgentRecord, response: pb.ServerToAgent) -> None:
        if not agent.capabilities & CAP.AgentCapabilities_AcceptsRemoteConfig or not agent.attributes:
            return  # nothing is offered before the agent has described itself
        desired = self.rollouts.desired_for(agent, self.rollouts.config_target(agent))
        if desired.error:
            log.error("agent %s: no config offered: %s", agent.uid, desired.error)
            return
        if desired.sha256 in self.failed_configs(agent):
            return  # the agent keeps its last good config; the registry shows the failure
        if agent.remote_hash == desired.sha256 and agent.remote_status in ("APPLIED", "APPLYING"):
            return
        if agent.offered_hash == desired.sha256 and self.clock() - agent.offered_at < self.settings.offer_retry_s:
            return
        self.store.put_config(desired.sha256, desired.text)
        config = response.remote_config
        config.config_hash = bytes.fromhex(desired.sha256)
        config.config.config_map[CONFIG_FILE_NAME].body = desired.text.encode()
        config.config.config_map[CONFIG_FILE_NAME].content_type = CONTENT_TYPE
        agent.offered_hash, agent.offered_at = desired.sha256, self.clock()

    def _offer_package(self, agent: AgentRecord, response: pb.ServerToAgent) -> None:
        target = self.rollouts.package_target(agent)
        if target is None or not agent.capabilities & CAP.AgentCapabilities_AcceptsPackages:
            return
        if agent.packages.get(target["name"], {}).get("version") == target["version"]:
            return
        offer = response.packages_available
        package = offer.packages[target["name"]]
        package.type = pb.PackageType_TopLevel
        package.version = target["version"]
        package.file.download_url = target["url"]
        package.file.content_hash = bytes.fromhex(target["sha256"])
        package.hash = hashlib.sha256(f"{target['name']}:{target['version']}:{target['sha256']}".encode()).digest()
        offer.all_packages_hash = package.hash

    def _offer_settings(
        self,
        agent: AgentRecord,
        response: pb.ServerToAgent,
        message: pb.AgentToServer,
        token_environment: str | None = None,
    ) -> None:
        """A complete OpAMP connection-settings offer, when it differs from the last one the agent got (or
        the agent sent a certificate request). Agents apply an offer as their whole server config (the
        real opampsupervisor replaces endpoint, headers and TLS), so each carries: this server's URL for
        the agent's transport, the Authorization header with the token of the agent's own environment,
        the CA it verifies the server with (TLS), the heartbeat interval, and a certificate it asked for."""
        if not agent.capabilities & CAP.AgentCapabilities_AcceptsOpAMPConnectionSettings:
            return
        csr = message.connection_settings_request.opamp.certificate_request.csr
        url = self._url_for(agent.transport)
        if not url:
            if csr:
                log.warning("agent %s asked for a client certificate; without opamp_url nothing is offered", agent.uid)
            return
        environment = token_environment if token_environment is not None else self.owner(agent)
        token = self.settings.tokens.get(environment)
        if token is None:
            self.errors.error(
                f"settings-token:{agent.uid}",
                "agent %s: no token of environment %r to offer; no connection settings offered",
                agent.uid,
                environment,
            )
            return
        secure = url.startswith(("wss://", "https://"))
        server_ca = self.settings.server_ca.pem() if secure and self.settings.server_ca is not None else b""
        cert = ca_cert = b""
        if csr:
            if self.settings.client_ca is None:
                log.warning("agent %s asked for a client certificate; no client CA is configured", agent.uid)
            else:
                try:
                    cert = self.settings.client_ca.sign(csr, agent.uid)
                    ca_cert = self.settings.client_ca.ca_pem
                    log.info("agent %s: signed its certificate request", agent.uid)
                except CertificateError as exc:
                    log.warning("agent %s: certificate request refused: %s", agent.uid, exc)
        if self.settings.client_certificates_required and not cert:
            return  # an offer would replace the client certificate the agent connects with
        if server_ca:
            # opampsupervisor 0.158.0 verifies the server with certificate.ca_cert (and turns verification
            # off when the offer has no certificate): the server's CA, not the client certificate's.
            ca_cert = server_ca
        digest = hashlib.sha256()
        for part in (
            url.encode(),
            hashlib.sha256(token.encode()).digest(),  # the registry keeps only this digest
            ca_cert,
            cert,
            str(self.settings.heartbeat_interval_s).encode(),
        ):
            digest.update(len(part).to_bytes(8, "big") + part)
        marker = digest.hexdigest()
        if agent.settings_offered == marker and not csr:
            return
        offer = response.connection_settings.opamp
        offer.destination_endpoint = url
        header = offer.headers.headers.add()
        header.key, header.value = "Authorization", f"Bearer {token}"
        if ca_cert or cert:
            offer.certificate.ca_cert = ca_cert
            offer.certificate.cert = cert
        offer.heartbeat_interval_seconds = self.settings.heartbeat_interval_s
        response.connection_settings.hash = bytes.fromhex(marker)
        agent.settings_offered = marker

    def _url_for(self, transport: str) -> str:
        """``opamp_url`` with the scheme of the transport the agent uses (an HTTP agent keeps polling, a
        WebSocket agent keeps its socket), TLS or not as configured."""
        url = self.settings.opamp_url
        if not url:
            return ""
        scheme, _, rest = url.partition("://")
        secure = scheme in ("wss", "https")
        if transport == "http":
            scheme = "https" if secure else "http"
        elif transport == "websocket":
            scheme = "wss" if secure else "ws"
        return f"{scheme}://{rest}"

    def push(self, uid: str) -> pb.ServerToAgent | None:
        """What to send a connected agent now, unasked (a rollout released its wave, a restart was
        requested), or None when there is nothing new."""
        agent = self.store.get_agent(uid)
        if agent is None or not agent.connected:
            return None
        response = pb.ServerToAgent(instance_uid=uuid.UUID(uid).bytes, capabilities=protocol.SERVER_CAPABILITIES)
        self._guarded(agent, response, "config offer", self._offer_config)
        self._guarded(agent, response, "package offer", self._offer_package)
        if agent.pending_command == "restart" and agent.capabilities & CAP.AgentCapabilities_AcceptsRestartCommand:
            response.command.type = pb.CommandType_Restart
            agent.pending_command = ""
        if not response.ListFields() or [f.name for f, _ in response.ListFields()] == ["instance_uid", "capabilities"]:
            return None
        self.store.put_agent(agent)
        return response

    def generation(self) -> tuple[int, str, int, int]:
        """Changes whenever what agents should be offered may have changed (see the push loop)."""
        running = self.rollouts.running()
        return (
            self._changes,
            running.id if running else "",
            running.current_wave if running else -1,
            self.rollouts.baselines_version,
        )

    # --- operations ------------------------------------------------------------------------------

    def request_restart(self, uid: str) -> AgentRecord:
        agent = self.store.get_agent(uid)
        if agent is None:
            raise KeyError(uid)
        agent.pending_command = "restart"
        self.store.put_agent(agent)
        self._changed(uid)
        return agent

    def _changed(self, uid: str) -> None:
        """What an agent should be sent changed here: push it (here, or from the replica it is connected to)."""
        self._changes += 1
        self.store.notify("agent", uid)

    def changed_elsewhere(self, topic: str, key: str = "") -> None:
        """Another replica announced a change: an agent's (push it if it is connected here), a rollout's or
        the baselines (refresh them; the push loop then pushes to every agent here); no topic: anything."""
        if topic == "agent":
            self.store.refresh_agent(key, OPERATOR_FIELDS)
            self.dirty.add(key)
        else:
            self.rollouts.refresh(topic, key)
            if not topic:
                self.store.forget_cached()
                self._owned = None
                self._changes += 1
        self.wake()

    def set_overrides(self, uid: str, overrides: dict[str, Any]) -> AgentRecord:
        agent = self.store.get_agent(uid)
        if agent is None:
            raise KeyError(uid)
        candidate = dataclasses.replace(agent, overrides=overrides)
        desired = self.rollouts.desired_for(candidate, self.rollouts.config_target(agent))
        if desired.error:
            raise ValueError(desired.error)
        agent.overrides = overrides
        self.store.put_agent(agent)
        self._changed(uid)
        return agent

    def mark_disconnected(self, uid: str) -> None:
        agent = self.store.get_agent(uid)
        # Not when it is connected to another replica by now.
        if agent is not None and agent.connected and agent.server == self.settings.server_id:
            agent.connected = False
            self.store.put_agent(agent)
        self.store.forget_cached(uid)  # its next connection may be to another replica

    def forget(self, uid: str) -> bool:
        """Delete an agent's record; False when there is none."""
        agent = self.store.get_agent(uid)
        if agent is None or not self.store.delete_agent(uid):
            return False
        self._uncount(agent)
        self._changed(uid)
        return True

    def reset_connections(self) -> int:
        """At start: no agent holds a connection to this process yet (a `kill -9` left some marked)."""
        return self.store.reset_connections()

    def expire_incomplete(self) -> list[AgentRecord]:
        """Delete the records that never described themselves within ``incomplete_agent_ttl_s``."""
        gone = self.store.delete_incomplete_agents(self.clock() - self.settings.incomplete_agent_ttl_s)
        if self.store.shared:
            self._owned = None  # the other replicas created records too: count again
        for agent in gone:
            self._uncount(agent)
        if gone:
            log.info(
                "expired %d agent record(s) that never described themselves within %.0f s",
                len(gone),
                self.settings.incomplete_agent_ttl_s,
            )
        return gone

    def silent_for_too_long(self, agent: AgentRecord) -> bool:
        return self.clock() - agent.last_seen > self.settings.missed_heartbeats * self.settings.heartbeat_interval_s

    def live(self, agent: AgentRecord) -> bool:
        """Whether the server hears from the agent: a WebSocket open to this process, or (HTTP, which
        polls) a message within the last heartbeat intervals and no goodbye since."""
        if agent.transport == "websocket":
            return agent.connected
        return agent.connected and not self.silent_for_too_long(agent)

    def _desired_hash(self, agent: AgentRecord) -> str:
        if not agent.attributes:
            return ""
        return str(self.rollouts.desired_for(agent, self.rollouts.config_target(agent)).sha256)

    def status(self, agent: AgentRecord, desired_hash: str | None = None) -> str:
        """One word for the fleet view and agent_fleet_total{status}. ``config_failed``: the agent reported
        FAILED, or the config it should run is one it failed (so it is not offered)."""
        desired = self._desired_hash(agent) if desired_hash is None else desired_hash
        if agent.remote_status == "FAILED" or (desired and desired in self.failed_configs(agent)):
            return "config_failed"
        if not self.live(agent) and self.silent_for_too_long(agent):
            return "disconnected"
        if agent.healthy is False:
            return "unhealthy"
        if agent.healthy is None:
            return "unknown"
        return "healthy"

    def view(self, agent: AgentRecord) -> dict[str, Any]:
        target = self.rollouts.config_target(agent)
        desired = self.rollouts.desired_for(agent, target)
        failed = self.failed_configs(agent)
        compliant = bool(desired.sha256) and agent.remote_hash == desired.sha256 and agent.remote_status == "APPLIED"
        return {
            "uid": agent.uid,
            "status": self.status(agent, desired.sha256),
            "environment": agent.environment,
            "region": agent.region,
            "profile": agent.profile,
            "version": agent.version,
            "healthy": agent.healthy,
            "connected": self.live(agent),
            "transport": agent.transport,
            "last_seen": agent.last_seen,
            "config": {
                "desired": desired.sha256,
                # Why there is no desired config (the agent's levels do not render or validate).
                "render_error": desired.error,
                "reported": agent.remote_hash,
                "status": agent.remote_status,
                "error": agent.remote_error,
                "last_good": agent.last_good_hash,
                "failed": agent.failed_hash,
                # Every failed config still remembered (never offered again meanwhile), newest first.
                "failed_all": list(reversed(failed)),
                # Where the desired config comes from: the configs/ revision and variant.
                "target": target,
                "compliant": compliant,
                # The config last offered to the agent, and when; pending: it is the desired one and the
                # agent has not (yet) reported it applied, nor failed it.
                "offered": agent.offered_hash,
                "offered_at": agent.offered_at,
                "pending": bool(desired.sha256)
                and agent.offered_hash == desired.sha256
                and not compliant
                and desired.sha256 not in failed,
            },
            "packages": agent.packages,
            # kind -> the component types the agent's build has (receivers: [otlp, …], …)
            "available_components": {
                kind: sorted(detail["components"]) for kind, detail in agent.available_components.items()
            },
            "health": agent.health,
            "attributes": agent.attributes,
        }
