"""Render and validate a prod platform with N VM agents, each with its own agent level.

Prints the time per agent and in total (figures, not assertions). Usage:
    python bench/render_fleet.py [--agents 1000] [--env prod] [--region us-east-1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from otelstack.render import render_agent_config, render_platform

ROOT = Path(__file__).parents[1]


def agent_level(i: int) -> dict[str, object]:
    """A realistic level-5 override: per-host log files and a host-specific resource attribute."""
    return {
        "tiers": {"agent": {"log_include+": [f"/srv/app-{i}/logs/*.log"]}},
        "collector_overrides": {
            "agent": {
                "processors": {
                    "resource/platform": {
                        "attributes+": [{"key": "host.group", "value": f"rack-{i % 40}", "action": "upsert"}]
                    }
                }
            }
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--env", default="prod")
    parser.add_argument("--region", default="us-east-1")
    args = parser.parse_args()
    configs = ROOT / "configs"

    start = time.perf_counter()
    platform = render_platform(configs, args.env, args.region)
    platform_s = time.perf_counter() - start

    per_agent: list[float] = []
    hashes = set()
    total_bytes = 0
    start = time.perf_counter()
    for i in range(args.agents):
        t0 = time.perf_counter()
        rendered = render_agent_config(configs, args.env, args.region, profile="agent-vm", agent=agent_level(i))
        per_agent.append(time.perf_counter() - t0)
        hashes.add(rendered.sha256)
        total_bytes += len(rendered.text)
    fleet_s = time.perf_counter() - start

    per_agent_ms = sorted(t * 1000 for t in per_agent)
    print(f"platform plan ({args.env}/{args.region}): {len(platform.files)} artefacts in {platform_s * 1000:.1f} ms")
    print(
        f"fleet: {args.agents} agents rendered + validated in {fleet_s:.2f} s "
        f"({args.agents / fleet_s:.0f} agents/s), {len(hashes)} distinct configs, {total_bytes / 1e6:.1f} MB"
    )
    print(
        f"per agent: mean {statistics.mean(per_agent_ms):.2f} ms, median {statistics.median(per_agent_ms):.2f} ms, "
        f"p95 {per_agent_ms[int(len(per_agent_ms) * 0.95) - 1]:.2f} ms, max {per_agent_ms[-1]:.2f} ms"
    )


if __name__ == "__main__":
    main()
