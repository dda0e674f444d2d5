"""Staged rollouts: a change reaches a canary set, then waves; each wave must report the change applied
and healthy before the next one starts. A failure or a timeout stops the rollout; the released agents
are offered their baseline again (the config they ran before), and the rollout says why.

Two kinds: ``config`` (a configs/ revision, given as a directory, and a variant; without a directory
each agent keeps its own revision and only the variant changes) and ``package`` (a collector release:
name, version, download URL and SHA-256).

Baselines are scoped: a config rollout that succeeds changes the baseline of the agents its selector
names and of no other. The baselines are an ordered list of entries {selector, target, rollout}; the
first is the fleet default (empty selector, a revision and a variant). An agent's baseline is the fleet
default with the target of every later entry whose selector matches it applied in order, so the last
matching entry wins for each field it sets. A success appends its entry and drops the entries it
provably makes irrelevant: those whose selector has every key=value of the new one (they select a
subset of its agents) and whose target sets no field the new one does not. A rollout over the whole
fleet (empty selector) with a revision therefore resets the list to one entry.

With replicas sharing a PostgreSQL registry, one of them drives rollouts (``driving``: it holds the
rollout lock, see ``otelstack.opamp.replicas``): only it advances waves, completes, fails or times out a
rollout. Any replica starts or aborts one. Each decision is announced (``FleetStore.notify``), and the
others ``refresh`` what they keep in memory, then push to their agents.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from otelstack.collector.supervisor import AGENT_OVERRIDES_ATTRIBUTE
from otelstack.errors import OtelstackError
from otelstack.opamp.oncelog import OnceLog
from otelstack.opamp.remote_config import ConfigSource
from otelstack.opamp.store import AgentRecord, FleetStore, RolloutRecord, StoreConflict
from otelstack.render import VARIANTS

# The fleet default target, as servers before scoped baselines read it (kept current for a rollback).
BASELINE_KEY = "baseline"
# The scoped baselines: a JSON list of {"selector": {...}, "target": {...}, "rollout": id}.
BASELINES_KEY = "baselines"
_UNKNOWN = object()


class RolloutError(OtelstackError):
    """A rollout that cannot start or change state; the message says why."""


def matches(agent: AgentRecord, selector: dict[str, str]) -> bool:
    fields = {"environment": agent.environment, "region": agent.region, "profile": agent.profile}
    return all(fields.get(key, agent.attributes.get(key)) == value for key, value in selector.items())


def covers(wide: dict[str, str], narrow: dict[str, str]) -> bool:
    """Whether every agent ``narrow`` selects is, provably, selected by ``wide``: ``narrow`` has each
    key=value of ``wide`` (keys are compared as given; two spellings of one field are not related)."""
    return all(key in narrow and narrow[key] == value for key, value in wide.items())


def plan_waves(uids: list[str], canary: int, percents: list[int]) -> list[list[str]]:
    """Canary first, then cumulative percentages of the rest (the last wave always takes all)."""
    if canary < 1:
        raise RolloutError("the canary set needs at least one agent")
    if any(p <= 0 or p > 100 for p in percents) or percents != sorted(percents):
        raise RolloutError(f"waves must be increasing percentages in 1..100, got {percents}")
    ordered = sorted(uids)
    waves = [ordered[:canary]]
    rest = ordered[canary:]
    done = 0
    steps = percents if percents and percents[-1] == 100 else [*percents, 100]
    for percent in steps:
        upto = math.ceil(len(rest) * percent / 100)
        if upto > done:
            waves.append(rest[done:upto])
            done = upto
    return [w for w in waves if w]


class Rollouts:
    def __init__(
        self, store: FleetStore, source: ConfigSource, default_configs_dir: Path, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.source = source
        self.clock = clock
        self._running: RolloutRecord | object | None = _UNKNOWN
        # Agents of the current wave known to have applied it healthy ("<rollout>:<wave>" -> uids), so
        # a report costs one lookup, not a scan of the wave.
        self._settled: dict[str, set[str]] = {}
        # (rollout, wave, its wave list) -> the agents released up to that wave (released_to).
        self._released: tuple[tuple[str, int, int], frozenset[str]] = (("", -1, 0), frozenset())
        # The same key -> the agents of that wave alone (each report of an agent asks whether it is in it).
        self._wave: tuple[tuple[str, int, int], frozenset[str]] = (("", -1, 0), frozenset())
        # Changes whenever the baselines do (the push loop compares it).
        self.baselines_version = 0
        self.errors = OnceLog()
        # Whether this server advances rollouts (always, unless replicas share the registry).
        self.driving = True
        self._default_configs_dir = default_configs_dir
        self._baselines = self._load_baselines(default_configs_dir)

    # --- what an agent should run -------------------------------------------------------------

    def _load_baselines(self, default_configs_dir: Path) -> list[dict[str, Any]]:
        """The stored baselines; a registry of a server before scoped baselines has one fleet-wide
        baseline (BASELINE_KEY), which becomes the fleet default entry."""
        raw = self.store.get_meta(BASELINES_KEY)
        if raw is not None:
            entries = json.loads(raw)
            if isinstance(entries, list) and entries and entries[0].get("selector") == {}:
                return [
                    {"selector": dict(e["selector"]), "target": dict(e["target"]), "rollout": str(e.get("rollout", ""))}
                    for e in entries
                ]
        default = {"configs_dir": str(default_configs_dir), "variant": "normal"}
        legacy = self.store.get_meta(BASELINE_KEY)
        if legacy is not None:
            default.update({k: str(v) for k, v in json.loads(legacy).items() if k in default})
        entries = [{"selector": {}, "target": default, "rollout": ""}]
        self._store_baselines(entries)
        return entries

    def _store_baselines(self, entries: list[dict[str, Any]]) -> None:
        self.store.put_meta(BASELINES_KEY, json.dumps(entries, sort_keys=True))
        fleet_default: dict[str, str] = {}
        for entry in entries:
            if not entry["selector"]:
                fleet_default.update(entry["target"])
        self.store.put_meta(BASELINE_KEY, json.dumps(fleet_default, sort_keys=True))

    def baselines(self) -> list[dict[str, Any]]:
        """The scoped baselines, fleet default first (copies)."""
        return [{**e, "selector": dict(e["selector"]), "target": dict(e["target"])} for e in self._baselines]

    def baseline(self, agent: AgentRecord | None = None) -> dict[str, str]:
        """The target (configs_dir, variant) an agent runs outside rollouts; without an agent, the fleet
        default (the entries with an empty selector)."""
        target: dict[str, str] = {}
        for entry in self._baselines:
            if not entry["selector"] or (agent is not None and matches(agent, entry["selector"])):
                target.update(entry["target"])
        return target

    def _record_baseline(self, rollout: RolloutRecord) -> None:
        """A config rollout succeeded: its agents' baseline (and that of agents its selector names later)."""
        selector = {str(k): str(v) for k, v in rollout.selector.items()}
        target = {str(k): str(v) for k, v in rollout.target.items()}
        kept = [e for e in self._baselines if not (covers(selector, e["selector"]) and set(e["target"]) <= set(target))]
        entries = [*kept, {"selector": selector, "target": target, "rollout": rollout.id}]
        self._store_baselines(entries)
        self._baselines = entries
        self.baselines_version += 1
        self.store.notify("baselines")

    def refresh(self, topic: str = "", key: str = "") -> None:
        """Another replica changed a rollout (``key``) or the baselines; without a topic, anything may have
        changed (this replica did not hear for a while, or takes over driving rollouts)."""
        if topic == "rollout" and key:
            changed = self.store.get_rollout(key)
            current = self.running()
            if changed is not None and changed.state == "running":
                self._running = changed
            elif current is not None and current.id == key:
                self._running = None
        if topic in ("", "baselines"):
            self._baselines = self._load_baselines(self._default_configs_dir)
            self.baselines_version += 1
        if not topic:
            self._running = _UNKNOWN
            self._settled.clear()

    def running(self) -> RolloutRecord | None:
        """The running rollout, kept in memory (this class is its only writer; replicas refresh it when
        another one announces a change): agents ask on every message."""
        if self._running is _UNKNOWN:
            found = [r for r in self.store.list_rollouts() if r.state == "running"]
            self._running = found[-1] if found else None
        return self._running  # type: ignore[return-value]

    def _save(self, rollout: RolloutRecord) -> None:
        self.store.put_rollout(rollout)
        self._running = rollout if rollout.state == "running" else None
        self.store.notify("rollout", rollout.id)

    def released_to(self, rollout: RolloutRecord, uid: str) -> bool:
        # Asked for every agent on every message and push: the released agents as a set, per wave.
        key = (rollout.id, rollout.current_wave, id(rollout.waves))
        if self._released[0] != key:
            self._released = (key, frozenset(u for wave in rollout.waves[: rollout.current_wave + 1] for u in wave))
        return uid in self._released[1]

    def config_target(self, agent: AgentRecord) -> dict[str, str]:
        target = self.baseline(agent)
        rollout = self.running()
        if rollout is not None and rollout.kind == "config" and self.released_to(rollout, agent.uid):
            target.update({k: str(v) for k, v in rollout.target.items()})
        return target

    def package_target(self, agent: AgentRecord) -> dict[str, Any] | None:
        rollout = self.running()
        if rollout is not None and rollout.kind == "package" and self.released_to(rollout, agent.uid):
            return dict(rollout.target)
        return None

    def desired_for(self, agent: AgentRecord, target: dict[str, str]) -> Any:
        return self.source.desired(
            Path(target["configs_dir"]),
            environment=agent.environment,
            region=agent.region,
            profile=agent.profile or "agent-vm",
            namespace=agent.namespace,
            overrides=agent.overrides,
            host_overrides=str(agent.attributes.get(AGENT_OVERRIDES_ATTRIBUTE) or ""),
            variant=target.get("variant", "normal"),
        )

    # --- life cycle ------------------------------------------------------------------------------

    def start(
        self,
        kind: str,
        selector: dict[str, str],
        target: dict[str, Any],
        *,
        canary: int = 1,
        waves: list[int] | None = None,
        wave_timeout_s: float = 300.0,
        registry: list[AgentRecord] | None = None,
    ) -> RolloutRecord:
        """``registry``: every agent record (at least their ``SELECTION_FIELDS``), when the caller just listed
        them (else they are listed here, with those fields only)."""
        current = self.running()
        if current is not None:
            raise RolloutError(f"rollout {current.id} is still running; abort it or wait for it to finish")
        listed = self.store.list_selectable() if registry is None else registry
        agents = [a for a in listed if matches(a, selector)]
        if not agents:
            raise RolloutError(f"no agent matches {selector}")
        expected: dict[str, str] = {}
        if kind == "config":
            # No configs_dir: each agent keeps its baseline's revision (a variant switch, such as the
            # emergency one).
            target = {"variant": str(target.get("variant", "normal"))} | (
                {"configs_dir": str(target["configs_dir"])} if target.get("configs_dir") else {}
            )
            if target["variant"] not in VARIANTS:
                raise RolloutError(f"unknown variant {target['variant']!r}; allowed: {', '.join(VARIANTS)}")
            if "configs_dir" in target and not Path(target["configs_dir"]).is_absolute():
                where = target["configs_dir"]
                raise RolloutError(f"configs directory {where}: give an absolute path on the server's host")
            if "configs_dir" in target and not Path(target["configs_dir"]).is_dir():
                raise RolloutError(f"configs directory {target['configs_dir']} does not exist")
            errors = []
            for agent in agents:
                desired = self.desired_for(agent, self.baseline(agent) | target)
                if desired.error:
                    errors.append(f"{agent.uid}: {desired.error}")
                expected[agent.uid] = desired.sha256
            if errors:
                raise RolloutError(
                    "the new config does not render for every agent; nothing was offered:\n" + "\n".join(errors[:10])
                )
        elif kind == "package":
            missing = [k for k in ("name", "version", "url", "sha256") if not target.get(k)]
            if missing:
                raise RolloutError(f"a package rollout needs {', '.join(missing)}")
            if not all(isinstance(target[k], str) for k in ("name", "version", "url", "sha256")):
                raise RolloutError("a package rollout's name, version, url and sha256 must be strings")
            if len(target["sha256"]) != 64 or any(c not in "0123456789abcdefABCDEF" for c in target["sha256"]):
                raise RolloutError(f"target.sha256 must be 64 hexadecimal digits, got {target['sha256']!r}")
            target = {k: target[k] for k in ("name", "version", "url", "sha256")}
            expected = {agent.uid: str(target["version"]) for agent in agents}
        else:
            raise RolloutError(f"unknown rollout kind {kind!r}; allowed: config, package")
        rollout = RolloutRecord(
            id=uuid.uuid4().hex[:12],
            kind=kind,
            selector=dict(selector),
            target=dict(target),
            waves=plan_waves([a.uid for a in agents], canary, waves or [25, 50, 100]),
            wave_timeout_s=wave_timeout_s,
            wave_started_at=self.clock(),
            created_at=self.clock(),
            expected=expected,
        )
        try:
            self._save(rollout)
        except StoreConflict as exc:  # another replica started one meanwhile
            self._running = _UNKNOWN
            raise RolloutError(str(exc)) from exc
        return rollout

    def abort(self, rollout_id: str, reason: str = "aborted by an operator") -> RolloutRecord:
        rollout = self.store.get_rollout(rollout_id)
        if rollout is None:
            raise RolloutError(f"no rollout {rollout_id}")
        if rollout.state != "running":
            raise RolloutError(f"rollout {rollout_id} is {rollout.state}, not running")
        return self._finish(rollout, "aborted", reason)

    def _finish(self, rollout: RolloutRecord, state: str, reason: str) -> RolloutRecord:
        rollout.final_progress = 1.0 if state == "succeeded" else self._live_progress(rollout)
        rollout.state, rollout.reason, rollout.finished_at = state, reason, self.clock()
        if state == "succeeded" and rollout.kind == "config":
            self._record_baseline(rollout)
        self._save(rollout)
        return rollout

    def _agent_outcome(self, rollout: RolloutRecord, agent: AgentRecord | None, uid: str) -> str:
        """'ok', 'pending' or a failure reason for one agent of the current wave; 'pending' when it cannot
        be told (logged once), so the wave's timeout still ends the rollout."""
        try:
            return self._outcome(rollout, agent, uid)
        except Exception as exc:
            self.errors.failure(
                f"outcome:{rollout.id}:{uid}", exc, "rollout %s: agent %s cannot be evaluated", rollout.id, uid
            )
            return "pending"

    def _outcome(self, rollout: RolloutRecord, agent: AgentRecord | None, uid: str) -> str:
        if agent is None:
            return "pending"
        want = rollout.expected.get(uid, "")
        if rollout.kind == "config":
            if want in agent.failed_hashes or (agent.remote_hash == want and agent.remote_status == "FAILED"):
                return f"{uid} failed to apply the config: {agent.remote_error or 'no reason given'}"
            applied = agent.remote_hash == want and agent.remote_status == "APPLIED"
        else:
            package = agent.packages.get(str(rollout.target["name"]), {})
            if package.get("status") == "InstallFailed":
                return f"{uid} failed to install {rollout.target['name']} {want}: {package.get('error', '')}"
            applied = package.get("version") == want and package.get("status") == "Installed"
        if applied and agent.healthy is False:
            return f"{uid} applied the change but reports unhealthy"
        return "ok" if applied and agent.healthy is not False else "pending"

    def observe(self, agent: AgentRecord) -> None:
        """An agent of the running rollout reported: settle it, or stop the rollout on its failure."""
        rollout = self.running()
        if rollout is None or not self.driving:
            return
        key = (rollout.id, rollout.current_wave, id(rollout.waves))
        if self._wave[0] != key:
            self._wave = (key, frozenset(rollout.waves[rollout.current_wave]))
        if agent.uid not in self._wave[1]:
            return
        outcome = self._agent_outcome(rollout, agent, agent.uid)
        if outcome == "ok":
            settled = self._settled.setdefault(f"{rollout.id}:{rollout.current_wave}", set())
            settled.add(agent.uid)
            if len(settled) == len(rollout.waves[rollout.current_wave]):
                self.evaluate()
        elif outcome != "pending":
            self.evaluate()

    def evaluate(self) -> RolloutRecord | None:
        """Advance, complete or stop the running rollout from what its current wave reported (all of it:
        the server runs this periodically for timeouts; `observe` is the per-report fast path). A replica
        that does not drive rollouts decides nothing."""
        rollout = self.running()
        if rollout is None or not self.driving:
            return rollout
        wave = rollout.waves[rollout.current_wave]
        settled = self._settled.setdefault(f"{rollout.id}:{rollout.current_wave}", set())
        reported = self.store.rollout_states([uid for uid in wave if uid not in settled], rollout.kind == "package")
        outcomes = {
            uid: "ok" if uid in settled else self._agent_outcome(rollout, reported.get(uid), uid) for uid in wave
        }
        settled.update(uid for uid, o in outcomes.items() if o == "ok")
        failures = [o for o in outcomes.values() if o not in ("ok", "pending")]
        label = "canary" if rollout.current_wave == 0 else f"wave {rollout.current_wave}"
        if failures:
            return self._finish(rollout, "failed", f"{label}: " + "; ".join(failures))
        if all(o == "ok" for o in outcomes.values()):
            if rollout.current_wave + 1 >= len(rollout.waves):
                return self._finish(rollout, "succeeded", f"all {sum(map(len, rollout.waves))} agents applied it")
            rollout.current_wave += 1
            rollout.wave_started_at = self.clock()
            self._save(rollout)
            return rollout
        if self.clock() - rollout.wave_started_at > rollout.wave_timeout_s:
            late = sorted(uid for uid, o in outcomes.items() if o == "pending")
            return self._finish(
                rollout,
                "failed",
                f"{label}: timeout after {rollout.wave_timeout_s:.0f}s; not applied and healthy: {', '.join(late)}",
            )
        return rollout

    def progress(self, rollout: RolloutRecord) -> float:
        """The share of the rollout's agents that applied it and run healthy: while it runs, as they report
        now; once it finished, as recorded when it finished (its agents may have gone back to their
        baseline since). A rollout finished by a server that recorded nothing: 1.0 if it succeeded, else
        as its agents report now."""
        if rollout.state != "running" and rollout.final_progress is not None:
            return rollout.final_progress
        if rollout.state == "succeeded":
            return 1.0
        return self._live_progress(rollout)

    def _live_progress(self, rollout: RolloutRecord) -> float:
        total = sum(len(w) for w in rollout.waves)
        if not total:
            return 0.0
        released = [uid for w in rollout.waves[: rollout.current_wave + 1] for uid in w]
        if rollout.kind == "config":  # counted by the store (a poll of a large rollout reads no records)
            return self.store.count_applied({uid: rollout.expected.get(uid, "") for uid in released}) / total
        reported = self.store.rollout_states(released, True)
        done = sum(1 for uid in released if self._agent_outcome(rollout, reported.get(uid), uid) == "ok")
        return done / total
