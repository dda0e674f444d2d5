"""The fleet: what the server answers to each AgentToServer message, whatever the transport.

Keeps the registry current (description, health, effective config, remote config status, packages,
available components — asked for when the agent reports a hash the registry has no list for),
asks for the full state after a sequence gap or from an unknown agent, assigns instance UIDs, offers the
agent's desired config only when it differs from what the agent runs (never again after the agent
reported it FAILED), offers packages and connection settings, and passes restart commands on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry._opamp.proto import opamp_pb2 as pb

from otelstack.opamp import protocol
from otelstack.opamp.certificates import CertificateError, ClientCa
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


@dataclass(frozen=True)
class FleetSettings:
    configs_dir: Path
    heartbeat_interval_s: int = 30
    # An offer the agent did not answer (HTTP agents poll) is repeated after this long.
    offer_retry_s: float = 60.0
    # Signs agents' certificate requests (OpAMP connection settings); None: requests are declined.
    client_ca: ClientCa | None = None


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

    # --- the protocol ------------------------------------------------------------------------------

    def handle(self, message: pb.AgentToServer, *, token_environment: str | None = None) -> pb.ServerToAgent:
        response = pb.ServerToAgent(instance_uid=message.instance_uid, capabilities=protocol.SERVER_CAPABILITIES)
        uid_bytes = message.instance_uid
        if not uid_bytes or message.flags & pb.AgentToServerFlags_RequestInstanceUid:
            uid_bytes = protocol.new_instance_uid()
            response.agent_identification.new_instance_uid = uid_bytes
        uid = protocol.uid_text(uid_bytes)
        agent = self.store.get_agent(uid)
        full_state = False
        if agent is None:
            agent = AgentRecord(uid=uid, first_seen=self.clock())
            full_state = not message.HasField("agent_description")
        elif agent.sequence_num >= 0 and message.sequence_num != agent.sequence_num + 1:
            full_state = not message.HasField("agent_description")
        self._update(agent, message, token_environment)
        if token_environment is not None and agent.environment != token_environment:
            log.warning(
                "agent %s: token is for %s but it reports %s; refused", uid, token_environment, agent.environment
            )
            response.error_response.type = pb.ServerErrorResponseType_BadRequest
            response.error_response.error_message = (
                f"this token is for environment {token_environment!r}; the agent reports {agent.environment!r}"
            )
            return response
        if full_state:
            response.flags |= pb.ServerToAgentFlags_ReportFullState
        if self._wants_components(agent, message):
            response.flags |= pb.ServerToAgentFlags_ReportAvailableComponents
        if message.HasField("agent_disconnect"):
            agent.connected = False
            self.store.put_agent(agent)
            return response
        self._offer_config(agent, response)
        self._offer_package(agent, response)
        self._offer_settings(agent, response, message)
        if agent.pending_command == "restart" and agent.capabilities & CAP.AgentCapabilities_AcceptsRestartCommand:
            response.command.type = pb.CommandType_Restart
            agent.pending_command = ""
        self.store.put_agent(agent)
        if (
            message.HasField("remote_config_status")
            or message.HasField("health")
            or message.HasField("package_statuses")
        ):
            self.rollouts.observe(agent)
        return response

    def _update(self, agent: AgentRecord, message: pb.AgentToServer, token_environment: str | None) -> None:
        agent.sequence_num = message.sequence_num
        agent.last_seen = self.clock()
        agent.connected = True
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
            if agent.remote_status == "FAILED":
                agent.failed_hash = agent.remote_hash
                log.warning(
                    "agent %s failed to apply config %s: %s", agent.uid, agent.remote_hash[:12], agent.remote_error
                )
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
        if desired.sha256 == agent.failed_hash:
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

    def _offer_settings(self, agent: AgentRecord, response: pb.ServerToAgent, message: pb.AgentToServer) -> None:
        if not agent.capabilities & CAP.AgentCapabilities_AcceptsOpAMPConnectionSettings:
            return
        csr = message.connection_settings_request.opamp.certificate_request.csr
        marker = f"heartbeat={self.settings.heartbeat_interval_s}"
        if agent.settings_offered == marker and not csr:
            return
        offers = response.connection_settings
        offers.opamp.heartbeat_interval_seconds = self.settings.heartbeat_interval_s
        if csr:
            if self.settings.client_ca is None:
                log.warning("agent %s asked for a client certificate; no client CA is configured", agent.uid)
            else:
                try:
                    offers.opamp.certificate.cert = self.settings.client_ca.sign(csr, agent.uid)
                    offers.opamp.certificate.ca_cert = self.settings.client_ca.ca_pem
                    marker += ";cert=" + hashlib.sha256(offers.opamp.certificate.cert).hexdigest()[:16]
                    log.info("agent %s: signed its certificate request", agent.uid)
                except CertificateError as exc:
                    log.warning("agent %s: certificate request refused: %s", agent.uid, exc)
        offers.hash = hashlib.sha256(marker.encode()).digest()
        agent.settings_offered = marker

    def push(self, uid: str) -> pb.ServerToAgent | None:
        """What to send a connected agent now, unasked (a rollout released its wave, a restart was
        requested), or None when there is nothing new."""
        agent = self.store.get_agent(uid)
        if agent is None or not agent.connected:
            return None
        response = pb.ServerToAgent(instance_uid=uuid.UUID(uid).bytes, capabilities=protocol.SERVER_CAPABILITIES)
        self._offer_config(agent, response)
        self._offer_package(agent, response)
        if agent.pending_command == "restart" and agent.capabilities & CAP.AgentCapabilities_AcceptsRestartCommand:
            response.command.type = pb.CommandType_Restart
            agent.pending_command = ""
        if not response.ListFields() or [f.name for f, _ in response.ListFields()] == ["instance_uid", "capabilities"]:
            return None
        self.store.put_agent(agent)
        return response

    def generation(self) -> tuple[int, str, int, str]:
        """Changes whenever what agents should be offered may have changed (see the push loop)."""
        running = self.rollouts.running()
        return (
            self._changes,
            running.id if running else "",
            running.current_wave if running else -1,
            self.rollouts.baseline().get("configs_dir", ""),
        )

    # --- operations ------------------------------------------------------------------------------

    def request_restart(self, uid: str) -> AgentRecord:
        agent = self.store.get_agent(uid)
        if agent is None:
            raise KeyError(uid)
        agent.pending_command = "restart"
        self.store.put_agent(agent)
        self._changes += 1
        return agent

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
        self._changes += 1
        return agent

    def mark_disconnected(self, uid: str) -> None:
        agent = self.store.get_agent(uid)
        if agent is not None and agent.connected:
            agent.connected = False
            self.store.put_agent(agent)

    def status(self, agent: AgentRecord) -> str:
        """One word for the fleet view and agent_fleet_total{status}."""
        if agent.remote_status == "FAILED" or (agent.failed_hash and agent.failed_hash == agent.offered_hash):
            return "config_failed"
        if not agent.connected and self.clock() - agent.last_seen > 3 * self.settings.heartbeat_interval_s:
            return "disconnected"
        if agent.healthy is False:
            return "unhealthy"
        if agent.healthy is None:
            return "unknown"
        return "healthy"

    def view(self, agent: AgentRecord) -> dict[str, Any]:
        desired = self.rollouts.desired_for(agent, self.rollouts.config_target(agent))
        return {
            "uid": agent.uid,
            "status": self.status(agent),
            "environment": agent.environment,
            "region": agent.region,
            "profile": agent.profile,
            "version": agent.version,
            "healthy": agent.healthy,
            "connected": agent.connected,
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
                "compliant": bool(desired.sha256)
                and agent.remote_hash == desired.sha256
                and agent.remote_status == "APPLIED",
            },
            "packages": agent.packages,
            # kind -> the component types the agent's build has (receivers: [otlp, …], …)
            "available_components": {
                kind: sorted(detail["components"]) for kind, detail in agent.available_components.items()
            },
            "health": agent.health,
            "attributes": agent.attributes,
        }
