"""Staged rollouts on the fleet logic itself: canary, waves, failure, timeout, abort (a controlled clock)."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry._opamp.proto import opamp_pb2 as pb
from opentelemetry._opamp.proto.anyvalue_pb2 import AnyValue, KeyValue

from otelstack.opamp.fleet import Fleet, FleetSettings
from otelstack.opamp.protocol import uid_text
from otelstack.opamp.rollout import RolloutError, plan_waves
from otelstack.opamp.store import SqliteStore
from tests.opamp.conftest import CONFIGS
from tests.opamp.fleet_sim import Clock
from tests.opamp.revisions import new_revision

CAPS = (
    pb.AgentCapabilities_ReportsStatus
    | pb.AgentCapabilities_AcceptsRemoteConfig
    | pb.AgentCapabilities_ReportsRemoteConfig
    | pb.AgentCapabilities_ReportsHealth
    | pb.AgentCapabilities_AcceptsPackages
    | pb.AgentCapabilities_ReportsPackageStatuses
)


class SimAgent:
    """A collector that applies what it is offered (or fails to, when told) and reports back."""

    def __init__(self, fleet: Fleet, n: int, *, breaks_on: str = "") -> None:
        self.fleet, self.uid, self.seq = fleet, bytes([n]) * 16, 0
        self.breaks_on = breaks_on  # a config text marker this agent fails to apply
        self.running = ""

    def send(self, **fields: object) -> pb.ServerToAgent:
        message = pb.AgentToServer(instance_uid=self.uid, sequence_num=self.seq, capabilities=CAPS, **fields)
        self.seq += 1
        reply = self.fleet.handle(message, token_environment="dev")
        if reply.HasField("remote_config"):
            body = reply.remote_config.config.config_map["otelstack.yaml"].body.decode()
            failed = bool(self.breaks_on) and self.breaks_on in body
            status = pb.RemoteConfigStatus(
                last_remote_config_hash=reply.remote_config.config_hash,
                status=pb.RemoteConfigStatuses_FAILED if failed else pb.RemoteConfigStatuses_APPLIED,
                error_message="collector refused it" if failed else "",
            )
            if not failed:
                self.running = reply.remote_config.config_hash.hex()
            return self.send(remote_config_status=status, health=pb.ComponentHealth(healthy=True))
        return reply

    def register(self) -> None:
        attrs = [
            KeyValue(key="deployment.environment.name", value=AnyValue(string_value="dev")),
            KeyValue(key="cloud.region", value=AnyValue(string_value="lab")),
            KeyValue(key="otelstack.profile", value=AnyValue(string_value="agent-vm")),
        ]
        self.send(agent_description=pb.AgentDescription(non_identifying_attributes=attrs))


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def fleet(clock: Clock) -> Fleet:
    return Fleet(SqliteStore(":memory:"), FleetSettings(configs_dir=CONFIGS), clock=clock)


@pytest.fixture()
def revision(tmp_path: Path) -> Path:
    """A new configs/ revision: dev agents also tail /srv/rollout-r2/*.log."""
    return new_revision(tmp_path / "configs-r2", "dev", "/srv/rollout-r2/*.log")


def agents(fleet: Fleet, count: int, **kw: str) -> list[SimAgent]:
    sims = [SimAgent(fleet, n + 1, **kw) for n in range(count)]
    for sim in sims:
        sim.register()
    return sims


def heartbeat_all(sims: list[SimAgent]) -> None:
    for sim in sims:
        sim.send()


def test_waves_canary_first_then_cumulative_percentages() -> None:
    uids = [f"a{i:02d}" for i in range(10)]
    assert [len(w) for w in plan_waves(uids, 1, [25, 50, 100])] == [1, 3, 2, 4]
    assert plan_waves(uids, 2, [100]) == [uids[:2], uids[2:]]
    with pytest.raises(RolloutError, match="increasing percentages"):
        plan_waves(uids, 1, [50, 25])


def test_canary_then_waves_until_everyone_runs_the_new_revision(fleet: Fleet, revision: Path) -> None:
    sims = {uid_text(sim.uid): sim for sim in agents(fleet, 5)}
    baseline = {sim.running for sim in sims.values()}
    assert len(baseline) == 1 and "" not in baseline
    rollout = fleet.rollouts.start(
        "config", {"environment": "dev"}, {"configs_dir": str(revision)}, canary=1, waves=[50, 100]
    )
    canary, wave1, wave2 = rollout.waves
    assert (len(canary), len(wave1), len(wave2)) == (1, 2, 2)
    target = rollout.expected[canary[0]]
    assert target not in baseline

    def state() -> tuple[str, int]:
        current = fleet.store.get_rollout(rollout.id)
        assert current is not None
        return current.state, current.current_wave

    heartbeat_all([sims[u] for u in wave1 + wave2])
    assert {sims[u].running for u in wave1 + wave2} == baseline, "nothing before the canary is healthy"
    heartbeat_all([sims[u] for u in canary])
    assert sims[canary[0]].running == target and state() == ("running", 1)
    heartbeat_all([sims[u] for u in wave2])
    assert {sims[u].running for u in wave2} == baseline, "wave 2 waits for wave 1"
    heartbeat_all([sims[u] for u in wave1])
    assert {sims[u].running for u in wave1} == {target} and state() == ("running", 2)
    heartbeat_all([sims[u] for u in wave2])
    assert all(sim.running == target for sim in sims.values())
    assert state() == ("succeeded", 2)
    for agent in fleet.store.list_agents():  # the baseline of the agents the selector names
        assert fleet.rollouts.baseline(agent)["configs_dir"] == str(revision)
    assert fleet.rollouts.baseline()["configs_dir"] == str(CONFIGS), "the fleet default is unchanged"


def test_failing_canary_stops_everything_and_it_returns_to_the_last_good(fleet: Fleet, revision: Path) -> None:
    sims = agents(fleet, 4, breaks_on="/srv/rollout-r2/")
    before = sims[0].running
    rollout = fleet.rollouts.start("config", {"environment": "dev"}, {"configs_dir": str(revision)})
    for _ in range(4):
        heartbeat_all(sims)
    failed = fleet.store.get_rollout(rollout.id)
    assert failed is not None and failed.state == "failed"
    assert failed.reason.startswith("canary: ") and "collector refused it" in failed.reason
    assert all(sim.running == before for sim in sims), "nobody runs the failed revision"
    canary = fleet.store.get_agent(failed.waves[0][0])
    assert canary is not None and canary.failed_hash == failed.expected[canary.uid]
    assert fleet.rollouts.baseline()["configs_dir"] == str(CONFIGS)


def test_a_wave_that_does_not_report_times_out(fleet: Fleet, clock: Clock, revision: Path) -> None:
    sims = agents(fleet, 3)
    rollout = fleet.rollouts.start("config", {"environment": "dev"}, {"configs_dir": str(revision)}, wave_timeout_s=60)
    clock.now += 61  # the canary never calls back
    fleet.rollouts.evaluate()
    failed = fleet.store.get_rollout(rollout.id)
    assert failed is not None and failed.state == "failed"
    assert "timeout after 60s" in failed.reason and failed.waves[0][0] in failed.reason
    assert sims[0].running != rollout.expected[failed.waves[0][0]]


def test_only_one_rollout_at_a_time_and_abort(fleet: Fleet, revision: Path) -> None:
    agents(fleet, 2)
    rollout = fleet.rollouts.start("config", {"environment": "dev"}, {"configs_dir": str(revision)})
    with pytest.raises(RolloutError, match="is still running"):
        fleet.rollouts.start("config", {"environment": "dev"}, {"configs_dir": str(revision)})
    aborted = fleet.rollouts.abort(rollout.id)
    assert aborted.state == "aborted"
    with pytest.raises(RolloutError, match="not running"):
        fleet.rollouts.abort(rollout.id)


def test_a_revision_that_does_not_render_is_refused_before_anything_is_offered(fleet: Fleet, revision: Path) -> None:
    sims = agents(fleet, 2)
    path = revision / "dev" / "platform.yaml"
    path.write_text(path.read_text().replace("probabilistic_percentage: 100", "probabilistic_percentage: 250"))
    with pytest.raises(RolloutError, match="does not render for every agent"):
        fleet.rollouts.start("config", {"environment": "dev"}, {"configs_dir": str(revision)})
    assert fleet.store.list_rollouts() == []
    heartbeat_all(sims)
    assert all(not sim.send().HasField("remote_config") for sim in sims)


def test_package_rollout_offers_the_release(fleet: Fleet) -> None:
    sims = agents(fleet, 2)
    target = {
        "name": "otelcol-contrib",
        "version": "0.160.0",
        "url": "https://mirror/otelcol.tar.gz",
        "sha256": "ab" * 32,
    }
    rollout = fleet.rollouts.start("package", {"environment": "dev"}, target)
    reply = sims[0].send() if rollout.waves[0][0] == fleet.store.list_agents()[0].uid else sims[1].send()
    package = reply.packages_available.packages["otelcol-contrib"]
    assert package.version == "0.160.0" and package.file.download_url == target["url"]
    assert package.file.content_hash == bytes.fromhex(target["sha256"])


def test_a_variant_switch_rolls_out_the_baseline_revision_and_back(fleet: Fleet) -> None:
    from otelstack.render import render_agent_config

    sims = agents(fleet, 3)
    emergency = render_agent_config(CONFIGS, "dev", "lab", profile="agent-vm", variant="emergency").sha256
    rollout = fleet.rollouts.start("config", {"environment": "dev"}, {"variant": "emergency"}, canary=1, waves=[100])
    assert rollout.target == {"variant": "emergency"}, "each agent keeps its revision"
    assert set(rollout.expected.values()) == {emergency}
    for _ in range(3):
        heartbeat_all(sims)
    assert all(sim.running == emergency for sim in sims)
    for agent in fleet.store.list_agents():
        assert fleet.rollouts.baseline(agent) == {"configs_dir": str(CONFIGS), "variant": "emergency"}
    back = fleet.rollouts.start("config", {"environment": "dev"}, {"variant": "normal"}, canary=1, waves=[100])
    for _ in range(3):
        heartbeat_all(sims)
    assert fleet.store.get_rollout(back.id).state == "succeeded"  # type: ignore[union-attr]
    assert all(sim.running == render_agent_config(CONFIGS, "dev", "lab", profile="agent-vm").sha256 for sim in sims)


def test_unknown_variant_and_relative_paths_are_refused(fleet: Fleet) -> None:
    agents(fleet, 1)
    with pytest.raises(RolloutError, match="unknown variant 'panic'; allowed: normal, emergency, safe-minimal"):
        fleet.rollouts.start("config", {"environment": "dev"}, {"variant": "panic"})
    with pytest.raises(RolloutError, match="give an absolute path on the server's host"):
        fleet.rollouts.start("config", {"environment": "dev"}, {"configs_dir": "configs"})
    assert fleet.store.list_rollouts() == []
