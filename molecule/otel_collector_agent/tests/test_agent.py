"""Verify the agent: the real supervisor runs the real collector on the otelstack-rendered config and ports."""

from __future__ import annotations

import os
from pathlib import Path

from otelstack.catalog.components import catalog
from otelstack.catalog.versions import otelcol_contrib
from otelstack.render import render_agent_config, render_supervisor_config

ROOT = Path(os.environ["OTELSTACK_ROOT"])
VERSION = otelcol_contrib().version
SUPERVISOR_VERSION = str(catalog().build["supervisor_version"]).removeprefix("v")  # what `otelstack dist` builds


def plan(tmp_path_factory, region: str | None):  # type: ignore[no-untyped-def]
    """`otelstack plan` run as its own process (the CLI a user runs), into a fresh directory."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("plan")
    args = [str(Path(sys.executable).parent / "otelstack"), "plan", "--env", "dev", "--configs", str(ROOT / "configs")]
    args += ["--region", region] if region else []
    subprocess.run([*args, "--out", str(out / "build"), "--quiet"], check=True, timeout=600)
    return out / "build"


def test_config_on_the_host_is_byte_identical_to_plan(host, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    built = plan(tmp_path_factory, "lab")
    config = host.file("/etc/otelcol-contrib/agent-vm.yaml")
    expected = hashlib.sha256((built / "collector" / "agent-vm.yaml").read_bytes()).hexdigest()
    assert config.sha256sum == expected, "the file differs from `otelstack plan` output"
    assert (config.user, config.group, config.mode) == ("root", "otelcol", 0o640)
    supervisor = host.file("/etc/otelcol-contrib/supervisor.yaml")
    assert supervisor.sha256sum == hashlib.sha256((built / "supervisor" / "agent-vm.yaml").read_bytes()).hexdigest()
    # The renderer in this process agrees (the lookup plugin calls it): a second, independent witness.
    assert config.sha256sum == render_agent_config(ROOT / "configs", "dev", "lab", profile="agent-vm").sha256
    assert supervisor.sha256sum == render_supervisor_config(ROOT / "configs", "dev", "lab").sha256


def test_versioned_install_with_active_link(host) -> None:  # type: ignore[no-untyped-def]
    active = host.file("/opt/otelcol-contrib/active")
    assert active.is_symlink and active.linked_to == f"/opt/otelcol-contrib/releases/{VERSION}"
    out = host.check_output("/opt/otelcol-contrib/active/otelcol-contrib --version")
    assert out.strip() == f"otelcol-contrib version {VERSION}", out
    supervisor = host.file(f"/opt/otelcol-contrib/releases/{VERSION}/opampsupervisor")
    assert supervisor.mode == 0o755
    # The supervisor at its own version: the one `otelstack dist package` put in the mirror.
    mirror = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "artefacts"
    checksum = mirror / f"opampsupervisor_{SUPERVISOR_VERSION}_linux_amd64.sha256"
    assert supervisor.sha256sum == checksum.read_text().split()[0]


def test_supervisor_runs_the_collector_hardened(host) -> None:  # type: ignore[no-untyped-def]
    service = host.service("opampsupervisor")
    assert service.is_running and service.is_enabled
    props = service.systemd_properties
    assert props["User"] == "otelcol"
    assert props["ProtectSystem"] == "strict"
    assert props["NoNewPrivileges"] == "yes"
    assert props["PrivateTmp"] == "yes"
    assert "/var/lib/otelcol-contrib" in props["ReadWritePaths"]
    # The supervisor owns the collector: a child process of the otelcol user running the active binary.
    assert host.run("pgrep -u otelcol -f /opt/otelcol-contrib/active/otelcol-contrib").rc == 0


# Each listener must answer in its own protocol: OTLP/HTTP accepts an export, the OTLP gRPC port speaks
# HTTP/2 (its SETTINGS frame answers the client preface), health_check and the self-metrics endpoint
# answer with their formats. An open socket or a banner proves nothing about which program is behind it.
PROTOCOL_PROBE = r"""
import json, socket, urllib.request
out = {}
req = urllib.request.Request("http://127.0.0.1:4318/v1/traces", data=b'{"resourceSpans":[]}',
                             headers={"Content-Type": "application/json"}, method="POST")
with urllib.request.urlopen(req, timeout=5) as r:
    out["otlp_http"] = [r.status, r.headers.get("Content-Type"), json.loads(r.read() or b"{}")]
s = socket.create_connection(("127.0.0.1", 4317), timeout=5)
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
frame = s.recv(9)
s.close()
out["otlp_grpc_frame_type"] = frame[3] if len(frame) == 9 else None
with urllib.request.urlopen("http://127.0.0.1:13133/", timeout=5) as r:
    out["health"] = json.loads(r.read())
with urllib.request.urlopen("http://127.0.0.1:8888/metrics", timeout=5) as r:
    out["metrics"] = [line for line in r.read().decode().splitlines() if line.startswith("otelcol_process_uptime")][:1]
print(json.dumps(out))
"""


def test_listeners_answer_in_their_protocols(host) -> None:  # type: ignore[no-untyped-def]
    import json

    out = json.loads(host.check_output("python3 -c %s", PROTOCOL_PROBE))
    status, content_type, body = out["otlp_http"]
    assert status == 200 and content_type == "application/json", out
    assert set(body) <= {"partialSuccess"}, out  # an ExportTraceServiceResponse
    assert out["otlp_grpc_frame_type"] == 4, out  # HTTP/2 SETTINGS: a gRPC server, not any TCP listener
    assert out["health"]["status"] == "Server available", out
    assert out["metrics"], out  # the collector's own Prometheus metrics


def test_the_agent_may_read_the_logs_it_collects(host) -> None:  # type: ignore[no-untyped-def]
    # Debian gives /var/log/syslog (rsyslog) and the journal's readers to adm: the agent runs with it.
    assert host.service("opampsupervisor").systemd_properties["SupplementaryGroups"] == "adm"
    adm = host.group("adm").gid
    pid = host.check_output("pgrep -u otelcol -f -o /opt/otelcol-contrib/active/otelcol-contrib")
    groups = host.check_output(f"grep ^Groups: /proc/{pid}/status").split()[1:]
    assert str(adm) in groups, groups


def test_secrets_only_in_the_0600_env_file(host) -> None:  # type: ignore[no-untyped-def]
    env = host.file("/etc/otelcol-contrib/otelcol.env")
    assert (env.user, env.mode) == ("root", 0o600)
    assert "OTELSTACK_INGEST_TOKEN='lab-ingest-token'" in env.content_string
    assert "lab-ingest-token" not in host.file("/etc/otelcol-contrib/agent-vm.yaml").content_string


def test_state_directories_belong_to_the_service(host) -> None:  # type: ignore[no-untyped-def]
    for path in (
        "/var/lib/otelcol-contrib/queue",
        "/var/lib/otelcol-contrib/checkpoints",
        "/var/lib/otelcol-contrib/supervisor",
    ):
        d = host.file(path)
        assert d.is_directory and d.user == "otelcol"
    assert host.file("/var/lib/otelcol-contrib/supervisor/effective.yaml").exists


# `systemd-analyze security` exposure (0 = fully confined, 10 = unconfined). The unit scores 1.5 on both
# Debian 12's systemd (252) and Debian 13's (257): what remains is what a network telemetry service needs
# (Internet, Unix and netlink sockets on the host's network, no IP allow list -- the firewall role sets
# that --, the host's root directory). Removing SystemCallFilter adds about 1.4, ProtectSystem or
# ProtectProc 0.2 (`systemd-analyze security --offline=true` on both releases): a threshold of 1.6 fails as
# soon as one of the directives goes, on either release (ProtectProc and ProtectSystem are also asserted).
EXPOSURE_THRESHOLD = 1.6


def test_systemd_analyze_security_exposure(host) -> None:  # type: ignore[no-untyped-def]
    import re

    out = host.check_output("systemd-analyze security --no-pager opampsupervisor.service")
    match = re.search(r"Overall exposure level for opampsupervisor\.service: ([0-9.]+)", out)
    assert match, out[-2000:]
    exposure = float(match.group(1))
    print(f"systemd-analyze security opampsupervisor.service: exposure {exposure} (threshold {EXPOSURE_THRESHOLD})")
    assert exposure <= EXPOSURE_THRESHOLD, out
    props = host.service("opampsupervisor").systemd_properties
    assert props["MemoryDenyWriteExecute"] == "yes" and props["ProtectProc"] == "invisible"
    assert props["UMask"] == "0077" and props["ProcSubset"] == "all"  # host_metrics reads /proc's system files
    assert int(props["MemoryMax"]) > 0 and props["MemoryMax"] != "infinity"


def _lab():  # type: ignore[no-untyped-def]
    import sys

    sys.path.insert(0, str(ROOT))
    from tests.lab import playbooks

    return playbooks


def _converge(host, *extra_vars: str):  # type: ignore[no-untyped-def]
    """converge.yml again on this test's host only (each test runs once per platform, one per Debian release)."""
    converge = Path(__file__).parents[1] / "converge.yml"
    return _lab().run_playbook(converge, f"agent_hosts={host.backend.host}", *extra_vars)


def _owner_of_port(host, port: int) -> str:  # type: ignore[no-untyped-def]
    """The systemd unit whose process listens on the port (the cgroup the kernel records for the socket)."""
    out = host.check_output(f"ss -Hltn --cgroup 'sport = :{port}'")
    return str(out.split("cgroup:")[1].split()[0].rsplit("/", 1)[-1])


def test_an_unsupported_release_stops_at_the_preflight_and_changes_nothing(host) -> None:  # type: ignore[no-untyped-def]
    """This host's release taken out of the supported list (as Debian 11 would be): the run stops at the OS
    preflight with the host's distribution and the supported releases, and changes nothing on the host."""
    import json
    import re

    release = host.ansible("setup", "gather_subset=!all,!min,distribution")["ansible_facts"]
    major = release["ansible_distribution_major_version"]
    others = [v for v in ("11", "12", "13") if v != major]
    result = _converge(host, json.dumps({"common_os_versions": others}))
    out = _lab().output(result)
    assert result.returncode != 0, _lab().tail(result)
    assert f"runs Debian {release['ansible_distribution_version']} (Debian family)" in out, _lab().tail(result)
    assert "otelstack roles support Debian 12 and 13" in out and "Nothing was changed." in out, _lab().tail(result)
    recap = re.search(rf"^{re.escape(host.backend.host)}\s*:\s*ok=\d+\s+changed=(\d+).*failed=(\d+)", out, re.M)
    assert recap and recap.groups() == ("0", "1"), _lab().tail(result)
    assert "Installed packages among those needed" not in out
    assert host.service("opampsupervisor").is_running  # the converged agent is untouched


def test_a_changed_unit_restarts_the_service(host) -> None:  # type: ignore[no-untyped-def]
    tail = _lab().tail
    unit = "/etc/systemd/system/opampsupervisor.service"
    before = host.service("opampsupervisor").systemd_properties["MainPID"]
    host.check_output(f"sed -i 's/^RestartSec=5s$/RestartSec=7s/' {unit}")
    result = _converge(host)
    assert result.returncode == 0, tail(result)
    assert "RestartSec=5s" in host.file(unit).content_string
    after = host.service("opampsupervisor").systemd_properties
    assert after["MainPID"] != before, "the unit changed but the service kept running the old one"
    assert after["RestartUSec"] == "5s"


def test_switching_modes_hands_the_ports_to_the_new_unit(host) -> None:  # type: ignore[no-untyped-def]
    output, tail = _lab().output, _lab().tail
    result = _converge(host, "otel_collector_mode=static")
    assert result.returncode == 0, tail(result)
    assert not host.file("/etc/systemd/system/opampsupervisor.service").exists
    assert not host.service("opampsupervisor").is_running
    assert host.service("otelcol-contrib").is_running and host.service("otelcol-contrib").is_enabled
    assert _owner_of_port(host, 4317) == "otelcol-contrib.service"
    assert "port 4317: otelcol-contrib.service" in output(result), tail(result)

    result = _converge(host)
    assert result.returncode == 0, tail(result)
    assert not host.file("/etc/systemd/system/otelcol-contrib.service").exists
    assert host.service("opampsupervisor").is_running
    assert _owner_of_port(host, 4317) == "opampsupervisor.service"
    assert "port 4317: opampsupervisor.service" in output(result), tail(result)


def test_state_absent_removes_everything_it_added(host) -> None:  # type: ignore[no-untyped-def]
    """Runs last: converge.yml again with otel_collector_state=absent, then nothing of the role is left."""
    result = _converge(host, "otel_collector_state=absent")
    assert result.returncode == 0, _lab().tail(result)
    for path in (
        "/opt/otelcol-contrib",
        "/etc/otelcol-contrib",
        "/var/lib/otelcol-contrib",
        "/etc/systemd/system/opampsupervisor.service",
    ):
        assert not host.file(path).exists, path
    assert not host.user("otelcol").exists
    assert host.run("pgrep -f '[o]telcol-contrib'").rc != 0
