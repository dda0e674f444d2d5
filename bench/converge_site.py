"""Converge time of playbooks/site.yml on the local lab, against `ansible all -m ping` (the floor).

Creates the lab (playbooks/lab.yml: the OpAMP server, 2 gateways and 2 agents as systemd containers,
the real collector and supervisor from `otelstack dist package`),
then times, on the same hosts:
  1. `ansible all -m ping`                   the cost of reaching every host at all
  2. site.yml from scratch                    install, certificates, firewall, collectors, readiness
  3. site.yml again                           the idempotent run (must report changed=0)
and prints all three and their ratios to the floor, each with the machine's load average after it (on a
shared machine the floor moves with the load: read the ratios beside it). Removes the lab afterwards
unless --keep.
--pipelined uses the molecule scenarios' podman connection with pipelining (tests/lab/connection_plugins),
closer to what SSH with pipelining costs on real hosts than the stock podman connection (four podman
calls a task). Needs the lab image (bash tests/lab/setup.sh). Usage:
    python bench/converge_site.py [--keep] [--forks 5] [--pipelined] [--profile N]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
INVENTORY = ROOT / "inventories" / "lab"


def ansible_env(forks: int) -> dict[str, str]:
    collections = ROOT / ".cache" / "collections"
    link = collections / "ansible_collections" / "otelstack" / "platform"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(ROOT)
    return {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        "ANSIBLE_FORKS": str(forks),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_HOST_KEY_CHECKING": "false",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


LOADS: dict[str, str] = {}


def load() -> str:
    """The machine's load averages (1, 5, 15 min): figures from a shared machine are read beside them."""
    return " ".join(f"{figure:.2f}" for figure in os.getloadavg())


def timed(args: list[str], env: dict[str, str], what: str) -> tuple[float, str]:
    print(f"  … {what} (load average {load()})", file=sys.stderr, flush=True)
    start = time.perf_counter()
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    LOADS[what] = load()
    if result.returncode != 0:
        # The failing task is above the recap and the profile: show the recap's context, not only the tail.
        recap = result.stdout.rfind("PLAY RECAP")
        failed = result.stdout.rfind("fatal:", 0, recap if recap >= 0 else None)
        context = result.stdout[failed : failed + 3000] if failed >= 0 else ""
        sys.exit(
            f"{what} failed (exit {result.returncode}):\n{context}\n…\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}"
        )
    return elapsed, result.stdout


def slowest(output: str) -> str:
    """The summary profile_tasks prints at the end of a run (after the recap)."""
    recap = output.rfind("PLAY RECAP")
    lines = [line for line in output[recap:].splitlines() if re.search(r"-+ \d+\.\d+s$", line)]
    return "\n".join(lines)


def changed_total(recap: str) -> int:
    return sum(int(n) for n in re.findall(r"changed=(\d+)", recap))


def lab_hosts(group: dict[str, Any]) -> list[str]:
    return [
        *(group.get("hosts") or {}),
        *(h for child in (group.get("children") or {}).values() for h in lab_hosts(child)),
    ]


def pipelined_inventory() -> Path:
    """A second inventory source setting ansible_connection=podman on the lab's hosts: host vars win over
    the lab's group_vars, and tasks delegated to localhost keep the local connection."""
    hosts = lab_hosts(yaml.safe_load((INVENTORY / "hosts.yml").read_text())["all"])
    path = Path(tempfile.mkdtemp(prefix="otelstack-bench-")) / "pipelined.yml"
    path.write_text(yaml.safe_dump({"all": {"hosts": {h: {"ansible_connection": "podman"} for h in hosts}}}))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="leave the lab running")
    parser.add_argument("--forks", type=int, default=5)
    parser.add_argument("--pipelined", action="store_true", help="podman connection with pipelining")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="print the N slowest tasks of the idempotent run"
    )
    args = parser.parse_args()
    env = ansible_env(args.forks)
    if args.profile:
        env["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.posix.profile_tasks"
        env["PROFILE_TASKS_TASK_OUTPUT_LIMIT"] = str(args.profile)
    playbook = ["ansible-playbook"]  # the one next to this Python (env PATH above)
    lab = ["-i", str(INVENTORY)]
    if args.pipelined:
        env["ANSIBLE_CONNECTION_PLUGINS"] = str(ROOT / "tests" / "lab" / "connection_plugins")
        lab += ["-i", str(pipelined_inventory())]
    timed([*playbook, str(ROOT / "playbooks" / "lab.yml"), "-e", "lab_state=absent"], env, "removing any old lab")
    shutil.rmtree(ROOT / ".cache" / "lab", ignore_errors=True)
    timed([*playbook, str(ROOT / "playbooks" / "lab.yml")], env, "creating the lab")
    try:
        ping, _ = timed(["ansible", "all", *lab, "-m", "ansible.builtin.ping"], env, "ping")
        first, out1 = timed([*playbook, *lab, str(ROOT / "playbooks" / "site.yml")], env, "site.yml")
        second, out2 = timed([*playbook, *lab, str(ROOT / "playbooks" / "site.yml")], env, "site.yml again")
    finally:
        if not args.keep:
            timed([*playbook, str(ROOT / "playbooks" / "lab.yml"), "-e", "lab_state=absent"], env, "removing the lab")
    hosts = "1 OpAMP server, 2 gateways, 2 agents (inventories/lab)"
    connection = "podman with pipelining" if args.pipelined else "containers.podman.podman"
    print(f"hosts: {hosts}, connection: {connection}, forks: {args.forks}, machine: {os.cpu_count()} cores")
    print(f"ansible all -m ping (floor) : {ping:7.1f} s  (load average after it: {LOADS['ping']})")
    print(
        f"site.yml from scratch       : {first:7.1f} s  ({first / ping:5.1f}x the floor), changed={changed_total(out1)}"
        f"  (load average after it: {LOADS['site.yml']})"
    )
    print(
        f"site.yml idempotent run     : {second:7.1f} s  ({second / ping:5.1f}x the floor), "
        f"changed={changed_total(out2)}  (load average after it: {LOADS['site.yml again']})"
    )
    if args.profile:
        print(f"slowest tasks of the idempotent run (profile_tasks, summed over hosts):\n{slowest(out2)}")


if __name__ == "__main__":
    main()
