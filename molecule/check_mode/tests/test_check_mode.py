"""After check mode and a real run: the host is converged, and --check on it reports no change at all."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(os.environ["OTELSTACK_ROOT"])
sys.path.insert(0, str(ROOT))


def test_real_run_converged_the_host(host) -> None:  # type: ignore[no-untyped-def]
    assert host.service("opampsupervisor").is_running
    assert host.socket("tcp://0.0.0.0:4317").is_listening
    assert host.file("/etc/otelcol-contrib/tls/server.crt").exists


def test_check_on_the_converged_host_changes_nothing() -> None:
    # molecule's second `check` step only fails on errors; this run must also report changed=0.
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": os.environ["OTELSTACK_COLLECTIONS_PATH"],
        "ANSIBLE_CONNECTION_PLUGINS": str(ROOT / "tests" / "lab" / "connection_plugins"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_STDOUT_CALLBACK": "default",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    converge = Path(__file__).parents[1] / "converge.yml"
    result = subprocess.run(
        ["ansible-playbook", "-i", os.environ["MOLECULE_INVENTORY_FILE"], "--check", "--diff", str(converge)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    recap = re.search(r"check-gateway\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", result.stdout)
    assert recap, result.stdout[-4000:]
    changed = re.findall(r"^changed: \[check-gateway\].*$", result.stdout, re.MULTILINE)
    assert recap.group(1) == "0", f"--check on a converged host reports changes: {changed}\n{result.stdout[-4000:]}"
