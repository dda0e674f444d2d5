"""The REAL opampsupervisor (0.158.0) and otelcol-contrib (0.159.0) against the otelstack OpAMP server.

Built from their Go modules (`make binaries`; skipped, saying so, where they are not built). Loopback
only, no containers; each run has its own storage, config files and ports (tests/opamp/supervisor_lab.py).

* Every supervisor config otelstack renders (each environment, region and supervised profile) is started
  as the real supervisor loads it — only its paths and the server's address changed — and must load,
  connect over the transport it names (ws://, or wss:// with its CA file), register, and run the remote
  config it is offered, healthy.
* On the dev/lab host, over WebSocket and over plain HTTP: the offered config is applied and reported;
  a config the collector cannot run is reported FAILED with the collector's own words and the last good
  remote config runs again (the supervisor's `automatic_config_rollback`), also after the supervisor
  restarts; the emergency rollout reaches the collector and is undone; a restart command restarts it.
* A first remote config that fails has nothing to roll back to: the collector stays down until the
  server offers a working revision (a rollout of one).

What the real supervisor does, measured here, is written up in docs/opamp.md ("The real opampsupervisor").

Not produced with the real programs, and why:

* A collector that starts and keeps running but never reports healthy (the supervisor's "Config apply
  timeout exceeded" FAILED): no config that otelstack validates makes otelcol-contrib 0.159.0 run
  unhealthy here — a component that cannot start stops the whole process, which is the path tested.
* A remote config that does not validate: the server refuses it before anything is offered (HTTP 400
  for the override, asserted in the failure test), so none reaches a supervisor.
* Package offers: opampsupervisor 0.158.0 refuses to start with `accepts_packages` ("not yet fully
  implemented"), so package rollouts cannot reach supervisor-run collectors; otelstack does not render it.

Pending (the server's side, not asserted here until it changes): its connection-settings offer carries
only the heartbeat interval, without `destination_endpoint` (which the specification requires), so the
real supervisor logs "New OpAMP settings resulted in invalid configuration: server::endpoint must be
specified" on each offer and keeps its connection as it is (the heartbeat interval still takes effect:
opamp-go applies it before the supervisor's callback).
"""

from __future__ import annotations

import shutil
import socket
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry._opamp.proto import opamp_pb2 as pb

from otelstack.catalog.versions import otelcol_contrib
from otelstack.opamp.server import STATE
from otelstack.render import SUPERVISED_PROFILES, render_emergency_config
from tests.opamp.conftest import CONFIGS, free_port
from tests.opamp.supervisor_lab import (
    Lab,
    LabServer,
    component_ids,
    merge,
    pipelines,
    running,
    server_settings,
    start_lab_server,
    supervisor_parts,
    wait_for,
)

# The supervisor reports APPLIED only when `config_apply_timeout` has passed with the collector healthy
# (its runAgentProcess loop); otelstack renders 30s. The tests of behaviour shorten it to 5s so that each
# config change costs seconds; the loads-and-connects test keeps the rendered value.
APPLY_TIMEOUT = "5s"
# Offered to agents as their heartbeat: HTTP agents poll at this interval, so offers reach them within it.
HEARTBEAT_S = 1

CAPABILITIES = {
    "accepts_remote_config": pb.AgentCapabilities_AcceptsRemoteConfig,
    "reports_remote_config": pb.AgentCapabilities_ReportsRemoteConfig,
    "reports_effective_config": pb.AgentCapabilities_ReportsEffectiveConfig,
    "reports_health": pb.AgentCapabilities_ReportsHealth,
    "reports_own_metrics": pb.AgentCapabilities_ReportsOwnMetrics,
    "reports_own_logs": pb.AgentCapabilities_ReportsOwnLogs,
    "reports_own_traces": pb.AgentCapabilities_ReportsOwnTraces,
    "reports_available_components": pb.AgentCapabilities_ReportsAvailableComponents,
    "reports_heartbeat": pb.AgentCapabilities_ReportsHeartbeat,
    "accepts_restart_command": pb.AgentCapabilities_AcceptsRestartCommand,
    "accepts_opamp_connection_settings": pb.AgentCapabilities_AcceptsOpAMPConnectionSettings,
}


def hierarchy() -> list[tuple[str, str | None]]:
    """Every environment and region of configs/ (the levels a VM's supervisor config is rendered for)."""
    found: list[tuple[str, str | None]] = []
    for env_dir in sorted(p for p in CONFIGS.iterdir() if p.is_dir() and p.name != "global"):
        found.append((env_dir.name, None))
        found += [(env_dir.name, r.name) for r in sorted(env_dir.iterdir()) if (r / "platform.yaml").is_file()]
    return found


RENDERED = [(env, region, profile) for env, region in hierarchy() for profile in SUPERVISED_PROFILES]


def changed(a: Any, b: Any, path: str = "") -> set[str]:
    """Dotted paths where two documents differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return set().union(*(changed(a.get(k), b.get(k), f"{path}.{k}".lstrip(".")) for k in {*a, *b}))
    return set() if a == b else {path}


def expected_capabilities(config: dict[str, Any]) -> int:
    bits = int(pb.AgentCapabilities_ReportsStatus)  # always set by the supervisor
    for key, enabled in config["capabilities"].items():
        if enabled:
            bits |= int(CAPABILITIES[key])
    return bits


def settled(server: LabServer, lab: Lab) -> dict[str, Any]:
    """Wait for the one agent to run its desired config: APPLIED, compliant, healthy, collector answering."""
    return wait_for(  # type: ignore[no-any-return]
        "the agent to apply its config, healthy",
        lambda: (
            (a := server.the_agent()) and a["config"]["compliant"] and a["status"] == "healthy" and lab.healthy() and a
        ),
    )


# --- every rendered supervisor config ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("environment", "region", "profile"), RENDERED, ids=[f"{e}-{r or 'env'}-{p}" for e, r, p in RENDERED]
)
def test_every_rendered_supervisor_config_loads_and_connects(
    tmp_path: Path, environment: str, region: str | None, profile: str
) -> None:
    lab = Lab(tmp_path, environment, region, profile)
    rendered = lab.rendered_supervisor()
    tls = rendered["server"]["endpoint"].startswith("wss://")
    server = start_lab_server(
        server_settings(tmp_path, free_port(), lab.configs, lab.pki if tls else None), ca_file=lab.pki.ca
    )
    try:
        config = lab.supervisor_config(server)
        # As rendered but for where things are on this machine: no setting, capability or timeout changed.
        allowed = {"server.endpoint", "agent.executable", "agent.config_files", "agent.startup_fallback_configs"}
        allowed |= {"storage.directory"} | {f"server.tls.{k}" for k in rendered["server"]["tls"] if k.endswith("_file")}
        assert changed(rendered, config) <= allowed
        assert config["server"]["endpoint"].split("://")[0] == rendered["server"]["endpoint"].split("://")[0]
        with running(lab) as supervisor:
            agent = settled(server, lab)
            assert (agent["environment"], agent["region"], agent["profile"]) == (environment, region or "", profile)
            assert agent["version"] == otelcol_contrib().version
            assert agent["config"]["reported"] == lab.rendered.sha256 == agent["config"]["desired"]
            assert agent["uid"] in server.app[STATE].sockets  # ws:// or wss://: a WebSocket the server holds
            first = server.sent_by(agent["uid"])[0]
            assert first.capabilities == expected_capabilities(config)
            assert supervisor.proc.poll() is None
    finally:
        server.stop()


# --- the dev/lab host over each transport ---------------------------------------------------------------


class Host:
    """The dev/lab agent-vm host, its server, and the transport its supervisor uses."""

    def __init__(self, tmp: Path, transport: str, server_overrides: dict[str, Any] | None = None) -> None:
        self.lab = Lab(tmp, "dev", "lab", "agent-vm")
        self.transport = transport
        configs = self.lab.configs
        if server_overrides is not None:
            # The server renders from its own revision: the lab's, with these agent-tier overrides.
            configs = tmp / "server-configs"
            shutil.copytree(self.lab.configs, configs)
            level = configs / "dev" / "lab" / "platform.yaml"
            document = yaml.safe_load(level.read_text())
            document["collector_overrides"]["agent"] = merge(document["collector_overrides"]["agent"], server_overrides)
            level.write_text(yaml.safe_dump(document, sort_keys=False))
        settings = server_settings(tmp, free_port(), configs, None, heartbeat_interval_s=HEARTBEAT_S)
        self.server = start_lab_server(settings)
        self.config = self.lab.supervisor_config(
            self.server, scheme=None if transport == "ws" else transport, config_apply_timeout=APPLY_TIMEOUT
        )

    def agent(self, uid: str) -> dict[str, Any]:
        return dict(self.server.api("GET", f"/api/agents/{uid}"))

    def effective_runs(self, rendered_text: str) -> bool:
        """The collector's file (storage/effective.yaml) is `rendered_text` plus the supervisor's parts."""
        rendered = yaml.safe_load(rendered_text)
        return bool(supervisor_parts(self.lab.effective_file(), rendered)["rest"] == rendered)

    def reported_runs(self, uid: str, rendered_text: str) -> bool:
        """The effective config the collector last reported to the server has the rendered components
        and pipelines (plus the supervisor's opamp extension)."""
        reported = self.server.effective_config(uid)
        if reported is None:
            return False
        rendered = yaml.safe_load(rendered_text)
        expected = component_ids(rendered)
        expected["extensions"] = sorted([*expected["extensions"], "opamp"])
        expected["service.extensions"] = sorted([*expected["service.extensions"], "opamp"])
        return component_ids(reported) == expected and pipelines(reported) == pipelines(rendered)


@pytest.fixture(params=["ws", "http"])
def host(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Host]:
    made = Host(tmp_path, request.param)
    try:
        yield made
    finally:
        made.server.stop()


def test_registers_and_applies_the_offered_config(host: Host) -> None:
    lab, server = host.lab, host.server
    with running(lab) as supervisor:
        agent = settled(server, lab)
        uid = agent["uid"]
        assert (agent["environment"], agent["region"], agent["profile"]) == ("dev", "lab", "agent-vm")
        assert agent["config"]["reported"] == agent["config"]["desired"] == lab.rendered.sha256
        assert agent["config"]["last_good"] == lab.rendered.sha256 and agent["config"]["failed"] == ""
        assert agent["healthy"] is True and agent["connected"] is True
        # The transport: a WebSocket the server holds, or HTTP requests (no socket).
        assert (uid in server.app[STATE].sockets) == (host.transport == "ws")
        # Identity: the supervisor's persisted instance UID is the collector's service.instance.id.
        state = yaml.safe_load((lab.storage / "persistent_state.yaml").read_text())
        assert state["instance_id"] == uid == agent["attributes"]["service.instance.id"]
        assert agent["attributes"]["service.name"] == "otelcol-contrib"
        assert agent["attributes"]["service.version"] == otelcol_contrib().version
        assert {"otlp", "host_metrics", "file_log"} <= set(agent["available_components"]["receivers"])
        assert "opamp" in agent["available_components"]["extensions"]
        assert {"pipeline:traces", "pipeline:metrics", "pipeline:logs"} <= set(agent["health"]["components"])
        # The remote config offered was our render, whole, as one YAML file.
        offers = [r.remote_config for r in server.replies_to(uid) if r.HasField("remote_config")]
        assert offers and offers[0].config_hash.hex() == lab.rendered.sha256
        assert offers[0].config.config_map["otelstack.yaml"].body.decode() == lab.rendered.text
        # What the collector runs: our render plus the supervisor's own parts, and so it reports.
        assert host.effective_runs(lab.rendered.text)
        parts = supervisor_parts(lab.effective_file(), yaml.safe_load(lab.rendered.text))
        assert parts["opamp"]["instance_uid"] == uid
        assert parts["resource"]["service.instance.id"] == uid
        assert parts["resource"]["deployment.environment.name"] == "dev"
        wait_for("the collector's effective config", lambda: host.reported_runs(uid, lab.rendered.text))
        # The host's file and the offer are the same config: the supervisor applied it without a restart.
        assert supervisor.collector_pid() is not None
        assert "exited unexpectedly" not in supervisor.log()


def test_a_config_the_collector_cannot_run_is_failed_and_the_last_good_one_restored(host: Host) -> None:
    lab, server = host.lab, host.server
    good = lab.rendered.sha256
    with socket.socket() as busy, running(lab) as supervisor:
        uid = settled(server, lab)["uid"]
        # One that does not validate never reaches the supervisor: the server refuses it.
        with pytest.raises(urllib.error.HTTPError) as refused:
            invalid = {"extensions": {"opamp": {"server": {"ws": {"endpoint": "ws://127.0.0.1:9/v1/opamp"}}}}}
            server.api("PUT", f"/api/agents/{uid}/overrides", {"collector_overrides": {"agent": invalid}})
        assert refused.value.code == 400
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        # Valid for otelstack and for `otelcol-contrib validate`; fails when the collector starts.
        port = busy.getsockname()[1]
        bad_overrides = {
            "collector_overrides": {"agent": {"extensions": {"health_check": {"endpoint": f"127.0.0.1:{port}"}}}}
        }
        bad = server.api("PUT", f"/api/agents/{uid}/overrides", bad_overrides)["config"]["desired"]
        assert bad and bad != good
        failed = wait_for(
            "the failure report",
            lambda: (a := host.agent(uid)) and a["config"]["failed"] == bad and a,
        )
        assert failed["status"] == "config_failed"
        failure = next(
            m.remote_config_status
            for m in server.sent_by(uid)
            if m.HasField("remote_config_status") and m.remote_config_status.status == pb.RemoteConfigStatuses_FAILED
        )
        assert failure.last_remote_config_hash.hex() == bad
        # The supervisor's words, then the collector's (collector_crash_log_snippet_kib).
        assert "Agent exited unexpectedly with exit code 1 while applying configuration" in failure.error_message
        assert "Collector log tail:" in failure.error_message
        assert f"listen tcp 127.0.0.1:{port}: bind: address already in use" in failure.error_message

        # automatic_config_rollback: the last remote config reported APPLIED runs again, and is reported
        # APPLIED (its own hash) once it has run healthy for config_apply_timeout; the failure stays.
        restored = wait_for(
            "the last good config to be reported again",
            lambda: (
                (a := host.agent(uid)) and a["config"]["status"] == "APPLIED" and a["config"]["reported"] == good and a
            ),
        )
        assert restored["config"]["failed"] == bad and restored["config"]["last_good"] == good
        assert restored["status"] == "config_failed" and restored["config"]["compliant"] is False
        assert restored["healthy"] is True and lab.healthy()
        assert host.effective_runs(lab.rendered.text)
        wait_for("the collector to report the good config", lambda: host.reported_runs(uid, lab.rendered.text))
        assert (lab.storage / "last_working_remote_config.dat").is_file()

        # Never offered again, however often the agent reports.
        after = len(server.replies_to(uid))
        time.sleep(3 * HEARTBEAT_S)
        offered = [
            r.remote_config.config_hash.hex() for r in server.replies_to(uid)[after:] if r.HasField("remote_config")
        ]
        assert bad not in offered and host.agent(uid)["config"]["status"] == "APPLIED"
        pid = supervisor.collector_pid()

    # The supervisor restarted (a host reboot): it starts on the last good config, not the failed one.
    with running(lab) as supervisor:
        wait_for("the collector after the supervisor restarted", lambda: supervisor.collector_pid() not in (None, pid))
        wait_for("the last good config to run", lab.healthy)
        assert host.effective_runs(lab.rendered.text)
        again = wait_for(
            "the agent after the restart",
            lambda: (a := host.agent(uid)) and a["connected"] and a["config"]["status"] == "APPLIED" and a,
        )
        assert again["config"]["reported"] == good and again["config"]["failed"] == bad


def test_a_first_remote_config_that_fails_has_nothing_to_roll_back_to(tmp_path: Path) -> None:
    # The server's revision is broken from the start (the host's own file is not): the host runs its
    # startup fallback (its file) until it connects, then the remote config, which cannot start.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        host = Host(
            tmp_path, "ws", server_overrides={"extensions": {"health_check": {"endpoint": f"127.0.0.1:{port}"}}}
        )
        lab, server = host.lab, host.server
        try:
            with running(lab):
                failed = wait_for(
                    "the failure report", lambda: (a := server.the_agent()) and a["config"]["status"] == "FAILED" and a
                )
                assert failed["status"] == "config_failed" and failed["config"]["last_good"] == ""
                assert f"listen tcp 127.0.0.1:{port}: bind: address already in use" in failed["config"]["error"]
                # Nothing to restore: no remote config was ever APPLIED, and the startup fallback is not a
                # rollback target. The supervisor restarts the collector on the failed config every 5s.
                assert not (lab.storage / "last_working_remote_config.dat").exists()
                uid = failed["uid"]

                def crashes() -> set[str]:
                    """Collector PIDs the supervisor reported exited (health.last_error, sent to the server)."""
                    errors = [m.health.last_error for m in server.sent_by(uid) if m.HasField("health")]
                    return {e.split()[2] for e in errors if e.startswith("Agent process PID=")}

                wait_for("two restarts on the failed config", lambda: len(crashes()) >= 2, timeout=30)
                assert not lab.healthy()
                assert server.the_agent()["healthy"] is False  # type: ignore[index]

                # The way out: a working revision, offered by a rollout (its hash is not the failed one).
                body = {
                    "kind": "config",
                    "selector": {"environment": "dev"},
                    "target": {"configs_dir": str(lab.configs)},
                }
                started = server.api(
                    "POST", "/api/rollouts", {**body, "canary": 1, "waves": [100], "wave_timeout_s": 120}
                )
                done = wait_for(
                    "the rollout",
                    lambda: (r := server.api("GET", f"/api/rollouts/{started['id']}"))["state"] != "running" and r,
                    timeout=120,
                )
                assert done["state"] == "succeeded", done
                agent = settled(server, lab)
                assert agent["config"]["reported"] == lab.rendered.sha256
                assert host.effective_runs(lab.rendered.text)
        finally:
            server.stop()


def test_the_emergency_rollout_reaches_the_collector_and_is_undone(host: Host) -> None:
    lab, server = host.lab, host.server
    emergency = render_emergency_config(lab.configs, "dev", "lab", profile="agent-vm")
    assert "filter/emergency" in yaml.safe_load(emergency.text)["processors"]

    def rollout(variant: str) -> dict[str, Any]:
        body = {"kind": "config", "selector": {"environment": "dev"}, "target": {"variant": variant}}
        started = server.api("POST", "/api/rollouts", {**body, "canary": 1, "waves": [100], "wave_timeout_s": 120})
        return wait_for(  # type: ignore[no-any-return]
            f"the {variant} rollout",
            lambda: (r := server.api("GET", f"/api/rollouts/{started['id']}"))["state"] != "running" and r,
            timeout=120,
        )

    with running(lab) as supervisor:
        uid = settled(server, lab)["uid"]
        before = supervisor.collector_pid()
        done = rollout("emergency")
        assert done["state"] == "succeeded", done
        agent = settled(server, lab)
        assert agent["config"]["reported"] == emergency.sha256 == agent["config"]["desired"]
        # A new config restarts the collector, which runs the emergency filter: in the file it is given
        # and in the effective config it reports.
        assert supervisor.collector_pid() not in (None, before)
        assert host.effective_runs(emergency.text)
        wait_for("the collector to report the emergency config", lambda: host.reported_runs(uid, emergency.text))
        reported = server.effective_config(uid)
        assert reported is not None and "filter/emergency" in reported["processors"]
        filtered = [
            n for n, p in pipelines(yaml.safe_load(emergency.text)).items() if "filter/emergency" in p["processors"]
        ]
        assert filtered, "the emergency variant filters no pipeline"
        for name in filtered:
            assert "filter/emergency" in reported["service"]["pipelines"][name]["processors"]
        # APPLIED came only after config_apply_timeout of health, APPLYING at once.
        statuses = [
            (e.at, e.message.remote_config_status.status)
            for e in server.exchanges
            if e.message is not None
            and e.uid == uid
            and e.message.HasField("remote_config_status")
            and e.message.remote_config_status.last_remote_config_hash.hex() == emergency.sha256
        ]
        applying = min(at for at, s in statuses if s == pb.RemoteConfigStatuses_APPLYING)
        applied = min(at for at, s in statuses if s == pb.RemoteConfigStatuses_APPLIED)
        assert applied - applying >= 4  # 5s, less what the two reports took to arrive

        # playbooks/emergency.yml's way back: the normal variant.
        assert rollout("normal")["state"] == "succeeded"
        agent = settled(server, lab)
        assert agent["config"]["reported"] == lab.rendered.sha256
        assert host.effective_runs(lab.rendered.text)
        wait_for("the collector to report the normal config", lambda: host.reported_runs(uid, lab.rendered.text))


def test_a_restart_command_restarts_the_collector(host: Host) -> None:
    lab, server = host.lab, host.server
    with running(lab) as supervisor:
        uid = settled(server, lab)["uid"]
        pid, up_since = supervisor.collector_pid(), (lab.health() or {}).get("upSince")
        assert pid is not None and up_since
        answer = server.api("POST", f"/api/agents/{uid}/restart")
        assert answer == {"uid": uid, "pending_command": "restart"}
        wait_for("a new collector process", lambda: supervisor.collector_pid() not in (None, pid))
        health = wait_for("the new collector to answer", lab.health)
        assert health["upSince"] != up_since
        commands = [r.command.type for r in server.replies_to(uid) if r.HasField("command")]
        assert commands == [pb.CommandType_Restart]  # sent once
        agent = settled(server, lab)
        # Same config, same status: a restart is not a config change.
        assert agent["config"]["reported"] == lab.rendered.sha256 and agent["config"]["status"] == "APPLIED"
        assert host.effective_runs(lab.rendered.text)
