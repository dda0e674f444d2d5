"""Fleet metrics in the Prometheus text exposition format (GET /metrics)."""

from __future__ import annotations

from collections import Counter

from otelstack.opamp.fleet import Fleet

LAST_SEEN = "otelstack_opamp_agent_last_seen_timestamp_seconds"
STATUSES = ("healthy", "unhealthy", "unknown", "config_failed", "disconnected")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def exposition(fleet: Fleet) -> str:
    agents = fleet.store.list_agents()
    views = [fleet.view(a) for a in agents]
    counts = Counter(v["status"] for v in views)
    lines = [
        "# HELP agent_fleet_total Managed collectors by status.",
        "# TYPE agent_fleet_total gauge",
        *(f'agent_fleet_total{{status="{s}"}} {counts.get(s, 0)}' for s in STATUSES),
        "# HELP otelstack_opamp_agent_config_compliant 1 when the agent applied the config it should run.",
        "# TYPE otelstack_opamp_agent_config_compliant gauge",
    ]
    for v in views:
        labels = (
            f'instance_uid="{_label(v["uid"])}",environment="{_label(v["environment"])}",'
            f'profile="{_label(v["profile"])}",config_hash="{_label(v["config"]["reported"][:12])}"'
        )
        lines.append(f"otelstack_opamp_agent_config_compliant{{{labels}}} {int(v['config']['compliant'])}")
    lines += [
        "# HELP otelstack_opamp_agent_last_seen_timestamp_seconds When the agent last sent a message.",
        "# TYPE otelstack_opamp_agent_last_seen_timestamp_seconds gauge",
        *(f'{LAST_SEEN}{{instance_uid="{_label(v["uid"])}"}} {v["last_seen"]:.3f}' for v in views),
        "# HELP otelstack_opamp_rollout_progress_ratio Share of a rollout's agents that applied it healthy.",
        "# TYPE otelstack_opamp_rollout_progress_ratio gauge",
        "# HELP otelstack_opamp_rollout_wave Current wave of a rollout (0 is the canary).",
        "# TYPE otelstack_opamp_rollout_wave gauge",
    ]
    for rollout in fleet.store.list_rollouts()[-20:]:
        labels = f'rollout="{_label(rollout.id)}",kind="{rollout.kind}",state="{rollout.state}"'
        lines.append(f"otelstack_opamp_rollout_progress_ratio{{{labels}}} {fleet.rollouts.progress(rollout):.4f}")
        lines.append(f"otelstack_opamp_rollout_wave{{{labels}}} {rollout.current_wave}")
    return "\n".join(lines) + "\n"
