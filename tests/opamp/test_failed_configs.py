"""Every config an agent failed is remembered (the last 20, each for 7 days) and never offered to it again
meanwhile; an agent whose desired config is one it failed shows `config_failed`."""

from __future__ import annotations

import pytest

from otelstack.opamp.fleet import Fleet, FleetSettings
from otelstack.opamp.store import SqliteStore
from tests.opamp.conftest import CONFIGS
from tests.opamp.fleet_sim import Clock, Sim

WEEK = 7 * 24 * 3600


def fleet(clock: Clock, **extra: object) -> Fleet:
    return Fleet(SqliteStore(":memory:"), FleetSettings(configs_dir=CONFIGS, **extra), clock=clock)  # type: ignore[arg-type]


def tailing(path: str) -> dict[str, object]:
    """Agent-level overrides: the agent also tails ``path``."""
    return {"tiers": {"agent": {"log_include+": [path]}}}


def set_overrides(sim: Sim, overrides: dict[str, object]) -> str:
    """The operator sets the agent's overrides (a minute after the last change); the agent then
    heartbeats. The hash it should run."""
    sim.fleet.clock.now += 60  # type: ignore[attr-defined]
    sim.fleet.set_overrides(sim.uid, overrides)
    sim.send()
    return str(sim.view()["config"]["desired"])


def test_the_defaults_are_20_configs_for_7_days() -> None:
    defaults = FleetSettings(configs_dir=CONFIGS)
    assert (defaults.failed_configs_kept, defaults.failed_config_ttl_s) == (20, WEEK)


def test_a_config_failed_before_the_last_failure_is_not_offered_again() -> None:
    sim = Sim(fleet(Clock()), 1, breaks_on=("/srv/broken-",)).register()
    good = sim.running
    first = set_overrides(sim, tailing("/srv/broken-1/*.log"))
    second = set_overrides(sim, tailing("/srv/broken-2/*.log"))
    assert sim.offered == [good, first, second], "the agent went back to its last good config by itself"
    back = set_overrides(sim, tailing("/srv/broken-1/*.log"))  # the operator goes back to the first
    assert back == first
    for _ in range(3):
        sim.send()
    assert sim.offered.count(first) == 1, "the first failed config was offered again"
    assert sim.running == good
    view = sim.view()
    assert view["status"] == "config_failed"
    assert (view["config"]["failed"], view["config"]["failed_all"]) == (second, [second, first])
    assert view["config"]["compliant"] is False


def test_failed_configs_are_bounded_and_expire() -> None:
    clock = Clock()
    sim = Sim(fleet(clock, failed_configs_kept=3), 1, breaks_on=("/srv/broken-",)).register()
    failed = []
    for n in range(4):
        failed.append(set_overrides(sim, tailing(f"/srv/broken-{n}/*.log")))
    assert sim.view()["config"]["failed_all"] == failed[:0:-1], "the 3 most recent, newest first"
    # The oldest one is forgotten: offered again (and failed again, so remembered again).
    assert set_overrides(sim, tailing("/srv/broken-0/*.log")) == failed[0]
    assert sim.offered.count(failed[0]) == 2
    assert sim.view()["config"]["failed_all"] == [failed[0], failed[3], failed[2]]
    # A week after its failure a config may be offered again; applied, it is no failure any more.
    sim.breaks_on = ()
    clock.now += WEEK
    assert set_overrides(sim, tailing("/srv/broken-3/*.log")) == failed[3]
    assert sim.running == failed[3]
    view = sim.view()
    assert view["status"] == "healthy" and view["config"]["compliant"]
    assert failed[3] not in view["config"]["failed_all"]


@pytest.mark.parametrize("reports_health", [False, True])
def test_reverting_an_agent_to_its_failed_config_shows_config_failed(reports_health: bool) -> None:
    sim = Sim(fleet(Clock()), 1, breaks_on=("/srv/broken-",), health=reports_health).register()
    failed = set_overrides(sim, tailing("/srv/broken-1/*.log"))
    assert sim.view()["status"] == "config_failed"
    fixed = set_overrides(sim, tailing("/srv/fine-1/*.log"))
    assert sim.running == fixed
    assert sim.view()["status"] == ("healthy" if reports_health else "unknown")
    assert set_overrides(sim, tailing("/srv/broken-1/*.log")) == failed  # the operator reverts
    view = sim.view()
    assert view["status"] == "config_failed", "not offered, so not run: the view must say why"
    assert view["config"]["reported"] == fixed and not view["config"]["compliant"]
