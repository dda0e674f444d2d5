"""The agent reads the systemd journal: the lab's hosts have no rsyslog, so `dev/lab` enables journald.

The real collector runs `journalctl` as its child, as the service user, through the unit's hardening;
a message written on the host must reach the receiver. The file name sorts before test_agent.py, whose
last test removes the agent.
"""

from __future__ import annotations

import json
import time
import uuid

from otelstack.security.layout import SELF_METRICS_PORT

COLLECTOR = "/opt/otelcol-contrib/active/otelcol-contrib"
RECEIVER = "journald/host"
MESSAGES = 20

# The collector's own counter of log records the journald receiver handed to the pipeline.
ACCEPTED = r"""
import json, sys, urllib.request
port, receiver = sys.argv[1:]
with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
    lines = r.read().decode().splitlines()
total = 0.0
for line in lines:
    if line.startswith("otelcol_receiver_accepted_log_records") and f'receiver="{receiver}"' in line:
        total += float(line.rsplit(" ", 1)[1])
print(json.dumps(total))
"""


def _accepted(host) -> float:  # type: ignore[no-untyped-def]
    return float(json.loads(host.check_output("python3 -c %s %s %s", ACCEPTED, str(SELF_METRICS_PORT), RECEIVER)))


def _journalctl(host) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    """journalctl processes on the host: pid, parent, user, arguments."""
    out = host.check_output("ps -C journalctl -o pid=,ppid=,user:20=,args= || true")
    rows = []
    for line in out.splitlines():
        pid, ppid, user, args = line.split(None, 3)
        rows.append({"pid": pid, "ppid": ppid, "user": user, "args": args})
    return rows


def test_journalctl_runs_as_the_collectors_child_with_the_groups_that_read_the_journal(host) -> None:  # type: ignore[no-untyped-def]
    collector = host.check_output(f"pgrep -u otelcol -f -o {COLLECTOR}").strip()
    deadline = time.monotonic() + 60
    children: list[dict[str, str]] = []
    while time.monotonic() < deadline:
        children = [p for p in _journalctl(host) if p["ppid"] == collector]
        if children:
            break
        time.sleep(2)
    assert len(children) == 1, (collector, _journalctl(host))
    child = children[0]
    assert child["user"] == "otelcol", child
    # What the rendered receiver asks for (pkg/stanza journald input: --follow, JSON, start_at end).
    assert "--follow" in child["args"] and "--output=json" in child["args"], child
    assert "--priority info" in child["args"], child
    adm = host.group("adm").gid
    groups = host.check_output(f"grep ^Groups: /proc/{child['pid']}/status").split()[1:]
    assert str(adm) in groups, groups  # the unit's SupplementaryGroups reach journalctl


def test_a_message_written_on_the_host_reaches_the_journald_receiver(host) -> None:  # type: ignore[no-untyped-def]
    tag = f"otelstack-journal-{uuid.uuid4().hex[:12]}"
    before = _accepted(host)
    for n in range(MESSAGES):
        host.check_output(f"logger -t {tag} 'journal probe {n} of {MESSAGES}'")
    # The messages are in the journal (as root), so a count that stays flat is the receiver's fault.
    written = host.check_output(f"journalctl -q --no-pager -o cat -t {tag}").splitlines()
    assert len(written) == MESSAGES, written
    deadline = time.monotonic() + 90
    after = before
    while time.monotonic() < deadline:
        after = _accepted(host)
        if after - before >= MESSAGES:
            break
        time.sleep(3)
    assert after - before >= MESSAGES, f"{RECEIVER} accepted {after - before} records after {MESSAGES} messages"


def test_the_journal_cursor_is_kept_in_the_checkpoints_storage(host) -> None:  # type: ignore[no-untyped-def]
    # file_storage names its file after the component that uses it: receiver_journald_host.
    found = host.check_output("ls /var/lib/otelcol-contrib/checkpoints").split()
    files = [name for name in found if "journald" in name]
    assert files, found
    path = f"/var/lib/otelcol-contrib/checkpoints/{files[0]}"
    assert host.file(path).user == "otelcol"
    # The journal cursor (s=…;i=…;b=…;m=…;t=…;x=…) the receiver stores after each entry it reads, under the
    # journald input's key: a restart passes it to journalctl --after-cursor.
    assert host.run(f"grep -a -c 'journald_input.lastReadCursors=[0-9a-f]*;i=[0-9a-f]*;b=' {path}").rc == 0, path
