"""A finished rollout's progress is the one it ended with: after a failure its agents go back to their
baseline, which must not rewrite what the rollout reached (the API, the page and /metrics show it)."""

from __future__ import annotations

from otelstack.opamp.fleet import Fleet, FleetSettings
from otelstack.opamp.store import SqliteStore
from tests.opamp.conftest import CONFIGS
from tests.opamp.fleet_sim import Clock, Sim, beat
from tests.opamp.test_scoped_baselines import EMERGENCY_MARKER, run


def test_a_failed_rollout_keeps_the_progress_it_ended_with() -> None:
    fleet = Fleet(SqliteStore(":memory:"), FleetSettings(configs_dir=CONFIGS), clock=Clock())
    # Waves: canary 21, then 22 and 23, then 24, which cannot run the emergency variant.
    sims = [Sim(fleet, n, "prod", "eu-west-1", breaks_on=(EMERGENCY_MARKER,) if n == 24 else ()) for n in range(21, 25)]
    for sim in sims:
        sim.register()
    before = {sim.uid: sim.running for sim in sims}
    rollout = fleet.rollouts.start("config", {"region": "eu-west-1"}, {"variant": "emergency"}, canary=1, waves=[50])
    finished = run(fleet, rollout, sims)
    assert finished.state == "failed" and "failed to apply the config" in finished.reason
    assert [len(w) for w in finished.waves] == [1, 2, 1]
    assert fleet.rollouts.progress(finished) == 0.75 == finished.final_progress

    beat(sims, 3)  # the released agents are offered their baseline again and run it
    assert all(sim.running == before[sim.uid] for sim in sims), "the agents went back to their baseline"
    stored = fleet.store.get_rollout(rollout.id)
    assert stored is not None
    assert fleet.rollouts.progress(stored) == 0.75, "a finished rollout's progress changed after it ended"


def test_an_aborted_rollout_keeps_its_progress_and_a_success_is_complete() -> None:
    fleet = Fleet(SqliteStore(":memory:"), FleetSettings(configs_dir=CONFIGS), clock=Clock())
    sims = [Sim(fleet, n, "dev", "lab").register() for n in (1, 2)]
    rollout = fleet.rollouts.start("config", {"environment": "dev"}, {"variant": "emergency"}, canary=1, waves=[100])
    beat(sims[:1])  # the canary applies it; the second wave is released, its agent has not answered yet
    fleet.rollouts.evaluate()
    aborted = fleet.rollouts.abort(rollout.id)
    assert fleet.rollouts.progress(aborted) == 0.5
    beat(sims, 3)
    stored = fleet.store.get_rollout(rollout.id)
    assert stored is not None and fleet.rollouts.progress(stored) == 0.5

    again = fleet.rollouts.start("config", {"environment": "dev"}, {"variant": "emergency"}, canary=1, waves=[100])
    done = run(fleet, again, sims)
    assert done.state == "succeeded" and done.final_progress == 1.0 == fleet.rollouts.progress(done)
