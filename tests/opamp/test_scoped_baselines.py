"""A rollout changes only the agents its selector names: a success becomes the baseline of those agents
(and of agents its selector names later), never of the whole fleet; every other agent's desired config
is untouched. Disjoint and overlapping selectors, and a failed rollout next to a succeeded one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from otelstack.opamp.fleet import Fleet, FleetSettings
from otelstack.opamp.rollout import BASELINE_KEY, BASELINES_KEY
from otelstack.opamp.store import RolloutRecord, SqliteStore
from otelstack.render import render_agent_config
from tests.opamp.conftest import CONFIGS
from tests.opamp.fleet_sim import Clock, Sim, beat
from tests.opamp.revisions import new_revision

EMERGENCY_MARKER = "filter/emergency"


@pytest.fixture()
def fleet() -> Fleet:
    return Fleet(SqliteStore(":memory:"), FleetSettings(configs_dir=CONFIGS), clock=Clock())


def rendered(environment: str, region: str, configs: Path = CONFIGS, variant: str = "normal") -> str:
    return render_agent_config(configs, environment, region, profile="agent-vm", variant=variant).sha256  # type: ignore[arg-type]


def fleet_of(fleet: Fleet, *, eu_breaks_on_emergency: bool = False) -> dict[str, list[Sim]]:
    """dev/lab ×2, prod/us-east-1 ×3, prod/eu-west-1 ×2, each registered and running its config."""
    breaks = (EMERGENCY_MARKER,) if eu_breaks_on_emergency else ()
    groups = {
        "dev": [Sim(fleet, n, "dev", "lab") for n in (1, 2)],
        "us": [Sim(fleet, n, "prod", "us-east-1") for n in (11, 12, 13)],
        "eu": [Sim(fleet, n, "prod", "eu-west-1", breaks_on=breaks) for n in (21, 22)],
    }
    for sims in groups.values():
        for sim in sims:
            sim.register()
    return groups


def desired(sims: list[Sim]) -> list[str]:
    return [sim.view()["config"]["desired"] for sim in sims]


def run(fleet: Fleet, rollout: RolloutRecord, sims: list[Sim], rounds: int = 6) -> RolloutRecord:
    """Agents beat (and the server evaluates the rollout, as its push loop does) until the rollout ends;
    its final record."""
    for _ in range(rounds):
        beat(sims)
        fleet.rollouts.evaluate()
        current = fleet.store.get_rollout(rollout.id)
        assert current is not None
        if current.state != "running":
            return current
    raise AssertionError(f"rollout {rollout.id} still running")


def test_a_scoped_emergency_rollout_leaves_every_other_agent_alone_even_next_to_a_failed_one(fleet: Fleet) -> None:
    groups = fleet_of(fleet, eu_breaks_on_emergency=True)
    everyone = [sim for sims in groups.values() for sim in sims]
    before = {sim.uid: sim.running for sim in everyone}
    assert before[groups["dev"][0].uid] == rendered("dev", "lab")
    assert before[groups["eu"][0].uid] == rendered("prod", "eu-west-1")

    # eu-west-1's emergency rollout fails on its canary and is rolled back.
    eu = fleet.rollouts.start(
        "config", {"environment": "prod", "region": "eu-west-1"}, {"variant": "emergency"}, canary=1, waves=[100]
    )
    assert run(fleet, eu, everyone).state == "failed"
    # us-east-1's succeeds.
    us = fleet.rollouts.start(
        "config", {"environment": "prod", "region": "us-east-1"}, {"variant": "emergency"}, canary=1, waves=[100]
    )
    assert run(fleet, us, everyone).state == "succeeded"

    beat(everyone, 3)
    for sim in groups["us"]:
        assert sim.running == rendered("prod", "us-east-1", variant="emergency")
    for sim in groups["dev"] + groups["eu"]:
        assert sim.running == before[sim.uid], f"{sim.environment}/{sim.region} must keep its config"
        assert sim.view()["config"]["desired"] == before[sim.uid]
        assert sim.view()["config"]["compliant"]
    # Nothing new was offered to dev; eu-west-1's canary was offered the emergency config once, then its
    # baseline again (the rollback); the other eu-west-1 agent nothing new.
    assert all(sim.offered == [before[sim.uid]] for sim in groups["dev"])
    base, emergency = rendered("prod", "eu-west-1"), rendered("prod", "eu-west-1", variant="emergency")
    assert sorted(sim.offered for sim in groups["eu"]) == [[base], [base, emergency, base]]
    # The fleet default is unchanged; us-east-1 has its own entry.
    assert fleet.rollouts.baseline() == {"configs_dir": str(CONFIGS), "variant": "normal"}
    assert [(e["selector"], e["rollout"]) for e in fleet.rollouts.baselines()] == [
        ({}, ""),
        ({"environment": "prod", "region": "us-east-1"}, us.id),
    ]


def test_overlapping_selectors_layer_in_order_and_new_agents_get_their_scope(fleet: Fleet, tmp_path: Path) -> None:
    groups = fleet_of(fleet)
    everyone = [sim for sims in groups.values() for sim in sims]
    prod = groups["us"] + groups["eu"]
    dev_before = desired(groups["dev"])
    r2 = new_revision(tmp_path / "r2", "prod", "/srv/r2/*.log")

    # 1. prod moves to r2.
    a = fleet.rollouts.start("config", {"environment": "prod"}, {"configs_dir": str(r2)}, canary=1, waves=[100])
    assert run(fleet, a, everyone).state == "succeeded"
    assert desired(groups["us"]) == [rendered("prod", "us-east-1", r2)] * 3
    assert desired(groups["eu"]) == [rendered("prod", "eu-west-1", r2)] * 2
    assert desired(groups["dev"]) == dev_before

    # 2. An overlapping, narrower selector by another key: us-east-1 switches to emergency and keeps r2.
    b = fleet.rollouts.start("config", {"region": "us-east-1"}, {"variant": "emergency"}, canary=1, waves=[100])
    assert b.target == {"variant": "emergency"}
    assert run(fleet, b, everyone).state == "succeeded"
    assert desired(groups["us"]) == [rendered("prod", "us-east-1", r2, "emergency")] * 3
    assert desired(groups["eu"]) == [rendered("prod", "eu-west-1", r2)] * 2
    assert desired(groups["dev"]) == dev_before

    # A new us-east-1 agent gets its scope's config at once; a new dev agent the fleet default.
    late_us, late_dev = Sim(fleet, 14, "prod", "us-east-1").register(), Sim(fleet, 3, "dev", "lab").register()
    assert late_us.running == rendered("prod", "us-east-1", r2, "emergency")
    assert late_dev.running == rendered("dev", "lab")

    # 3. prod again, the whole target: it comes after the us-east-1 entry, so it wins for those agents;
    # it replaces rollout 1's entry (same selector) but cannot prove it covers {region: us-east-1}.
    c = fleet.rollouts.start(
        "config", {"environment": "prod"}, {"configs_dir": str(r2), "variant": "normal"}, canary=1, waves=[100]
    )
    assert run(fleet, c, [*everyone, late_us, late_dev]).state == "succeeded"
    assert desired([*groups["us"], late_us]) == [rendered("prod", "us-east-1", r2)] * 4
    assert desired(groups["dev"] + [late_dev]) == [*dev_before, rendered("dev", "lab")]
    assert [e["rollout"] for e in fleet.rollouts.baselines()] == ["", b.id, c.id]

    # 4. A narrower selector that has every key=value of a wider one is covered by it: prod/eu-west-1
    # emergency, then prod emergency drops the eu-west-1 entry.
    d = fleet.rollouts.start(
        "config", {"environment": "prod", "region": "eu-west-1"}, {"variant": "emergency"}, canary=1, waves=[100]
    )
    assert run(fleet, d, prod).state == "succeeded"
    e = fleet.rollouts.start("config", {"environment": "prod"}, {"variant": "emergency"}, canary=1, waves=[100])
    assert run(fleet, e, [*prod, late_us]).state == "succeeded"
    assert [x["rollout"] for x in fleet.rollouts.baselines()] == ["", b.id, c.id, e.id]
    assert desired(groups["eu"]) == [rendered("prod", "eu-west-1", r2, "emergency")] * 2
    assert desired(groups["dev"]) == dev_before

    # 5. The whole fleet (empty selector) with a revision: one entry again.
    f = fleet.rollouts.start("config", {}, {"configs_dir": str(CONFIGS), "variant": "normal"}, canary=1, waves=[100])
    assert run(fleet, f, [*everyone, late_us, late_dev]).state == "succeeded"
    assert fleet.rollouts.baselines() == [
        {"selector": {}, "target": {"configs_dir": str(CONFIGS), "variant": "normal"}, "rollout": f.id}
    ]
    assert desired(groups["us"]) == [rendered("prod", "us-east-1")] * 3


def test_a_disjoint_rollout_does_not_touch_the_other_scope(fleet: Fleet, tmp_path: Path) -> None:
    groups = fleet_of(fleet)
    everyone = [sim for sims in groups.values() for sim in sims]
    r2 = new_revision(tmp_path / "r2", "dev", "/srv/r2-dev/*.log")
    prod_before = desired(groups["us"] + groups["eu"])
    dev = fleet.rollouts.start("config", {"environment": "dev"}, {"configs_dir": str(r2)}, canary=1, waves=[100])
    assert run(fleet, dev, everyone).state == "succeeded"
    us = fleet.rollouts.start("config", {"region": "us-east-1"}, {"variant": "emergency"}, canary=1, waves=[100])
    assert run(fleet, us, everyone).state == "succeeded"
    assert desired(groups["dev"]) == [rendered("dev", "lab", r2)] * 2, "the dev revision stays"
    assert desired(groups["eu"]) == prod_before[3:]
    assert desired(groups["us"]) == [rendered("prod", "us-east-1", variant="emergency")] * 3


def test_the_single_baseline_of_an_older_server_becomes_the_fleet_default(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "fleet.db")
    old = {"configs_dir": str(tmp_path / "r9"), "variant": "emergency"}
    store.put_meta(BASELINE_KEY, json.dumps(old))  # what a server before scoped baselines stored
    fleet = Fleet(store, FleetSettings(configs_dir=CONFIGS), clock=Clock())
    assert fleet.rollouts.baseline() == old
    assert fleet.rollouts.baselines() == [{"selector": {}, "target": old, "rollout": ""}]
    assert json.loads(store.get_meta(BASELINES_KEY) or "[]")[0]["target"] == old
    # and the other way: the fleet default stays readable by an older server
    assert json.loads(store.get_meta(BASELINE_KEY) or "{}") == old
