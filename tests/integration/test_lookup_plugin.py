"""The Ansible lookup renders exactly what `otelstack plan` writes, byte for byte, and fails clearly."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from otelstack.cli import main as otelstack_main
from tests.lab.playbooks import run_local_playbook

ROOT = Path(__file__).parents[2]
CONFIGS = ROOT / "configs"


def ansible_eval(
    expression: str, tmp_path: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Evaluate a Jinja expression on localhost with this repository as the collection otelstack.platform."""
    out = tmp_path / "out.json"
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        f'    - ansible.builtin.copy:\n        content: "{{{{ {expression} | to_json }}}}"\n        dest: {out}\n'
    )
    result = run_local_playbook(tmp_path, playbook, env={"ANSIBLE_NOCOLOR": "1", **(extra_env or {})})
    if result.returncode == 0:
        result.stdout = out.read_text()
    return result


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plan") / "prod-us-east-1"
    assert (
        otelstack_main(
            ["plan", "--env", "prod", "--region", "us-east-1", "--configs", str(CONFIGS), "--out", str(out), "--quiet"]
        )
        == 0
    )
    return out


@pytest.mark.parametrize(
    ("kind", "profile", "variant", "file"),
    [
        ("collector", "agent-vm", "normal", "collector/agent-vm.yaml"),
        ("collector", "gateway", "emergency", "collector/emergency-gateway.yaml"),
        ("supervisor", "gateway", "normal", "supervisor/gateway.yaml"),
    ],
)
def test_lookup_output_equals_plan_output(
    plan: Path, tmp_path: Path, kind: str, profile: str, variant: str, file: str
) -> None:
    expr = (
        f"lookup('otelstack.platform.otelstack', '{kind}', configs_dir='{CONFIGS}', env='prod', "
        f"region='us-east-1', profile='{profile}', variant='{variant}')"
    )
    result = ansible_eval(expr, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == (plan / file).read_text(encoding="utf-8")


def releases(tmp_path: Path, *options: str) -> list[dict[str, str]]:
    """The release facts of the lookup for each set of options (``"arch='arm64'"``), in one evaluation."""
    calls = ", ".join(f"lookup('otelstack.platform.otelstack', 'release', {o})" for o in options)
    result = ansible_eval(f"[{calls}]", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    return list(json.loads(result.stdout))


def test_release_facts(tmp_path: Path) -> None:
    result = ansible_eval("lookup('otelstack.platform.otelstack', 'release', component='opampsupervisor')", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    release = json.loads(result.stdout)
    assert release["artefact"] == f"opampsupervisor_{release['version']}_linux_amd64"
    assert sorted(release) == ["artefact", "binary", "name", "sha256", "url", "version"]
    assert "cmd%2Fopampsupervisor%2Fv" in release["url"]
    assert release["sha256"] == "", "the catalog vouches for no supervisor digest: the role must be given a pin"


def test_release_carries_the_catalogs_pinned_digest_per_architecture(tmp_path: Path) -> None:
    amd64, arm64, other = releases(tmp_path, "arch='amd64'", "arch='arm64'", "arch='amd64', version='0.150.0'")
    # the published digest of the pinned release's amd64 archive, and no other
    assert amd64["artefact"] == "otelcol-contrib_0.159.0_linux_amd64.tar.gz"
    assert amd64["sha256"] == "9d589f6349f01179957a2052bc7307a99db2efc971e14e00575941a77122eaaf"
    assert arm64["sha256"] == "" and other["sha256"] == ""


def test_release_at_another_version_and_the_dist_build(tmp_path: Path) -> None:
    from otelstack.catalog.components import catalog

    other, dist, collector = releases(
        tmp_path,
        "component='opampsupervisor', version='v0.150.0'",
        "component='opampsupervisor', dist=true",
        "dist=true",
    )
    assert other["artefact"] == "opampsupervisor_0.150.0_linux_amd64"
    assert other["url"].endswith("cmd%2Fopampsupervisor%2Fv0.150.0/opampsupervisor_0.150.0_linux_amd64")
    # What `otelstack dist package` writes: the supervisor at the version the catalog's build section gives.
    assert dist["version"] == str(catalog().build["supervisor_version"]).removeprefix("v")
    assert collector["version"] == str(catalog().release["otelcol_contrib"])


def test_release_refuses_a_version_that_is_not_one(tmp_path: Path) -> None:
    result = ansible_eval("lookup('otelstack.platform.otelstack', 'release', version='latest')", tmp_path)
    assert result.returncode != 0
    assert "'latest' is not a release version such as 0.159.0" in result.stdout + result.stderr


def test_secrets_term_lists_the_env_references(tmp_path: Path) -> None:
    text = "a: ${env:OTELSTACK_INGEST_TOKEN}\\nb: ${env:OTELSTACK_INGEST_TOKEN} ${env:X_Y} ${file:/run/s}"
    result = ansible_eval(f"lookup('otelstack.platform.otelstack', 'secrets', text='{text}')", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == ["OTELSTACK_INGEST_TOKEN", "X_Y"]


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        ("", {"service": ["gateways.dev.internal"], "static": []}),
        ("lab", {"service": [], "static": ["gateway-1", "gateway-2"]}),
    ],
)
def test_gateway_names_are_what_agents_dial(region: str, expected: dict[str, list[str]], tmp_path: Path) -> None:
    term = f"'gateway_names', configs_dir='{CONFIGS}', env='dev', region='{region}'"
    result = ansible_eval(f"lookup('otelstack.platform.otelstack', {term})", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == expected


def test_bad_agent_level_fails_the_task_with_the_key(tmp_path: Path) -> None:
    expr = (
        f"lookup('otelstack.platform.otelstack', 'collector', configs_dir='{CONFIGS}', env='prod', "
        "agent={'sampling': {'tail': {'probabilistic_percentage': 120}}})"
    )
    result = ansible_eval(expr, tmp_path)
    assert result.returncode != 0
    assert "<agent level>: sampling.tail.probabilistic_percentage" in result.stdout + result.stderr


def test_layout_is_the_one_in_security_layout(tmp_path: Path) -> None:
    from otelstack.security.layout import VM, vm_facts

    result = ansible_eval("lookup('otelstack.platform.otelstack', 'layout')", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    layout = json.loads(result.stdout)
    assert layout == vm_facts()
    assert layout["queue_dir"] == VM.queue_dir and layout["ports"]["otlp_grpc"] == 4317


def test_unknown_term_names_the_allowed_ones(tmp_path: Path) -> None:
    result = ansible_eval(
        f"lookup('otelstack.platform.otelstack', 'colector', configs_dir='{CONFIGS}', env='dev')", tmp_path
    )
    assert result.returncode != 0
    assert "unknown term 'colector'" in result.stdout + result.stderr


def test_firewall_term_renders_the_flows_matrix(tmp_path: Path) -> None:
    from otelstack.security import nftables

    expr = (
        "lookup('otelstack.platform.otelstack', 'firewall', roles=['gateways'], host='gw-1', "
        "sources={'agents': ['10.0.0.7']}, from_inventory=false)"
    )
    result = ansible_eval(expr, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == nftables.render(["gateways"], {"agents": ["10.0.0.7"]}, host="gw-1")


def test_firewall_term_refuses_a_bad_address(tmp_path: Path) -> None:
    expr = "lookup('otelstack.platform.otelstack', 'firewall', roles=['gateways'], sources={'agents': ['10.0.0.300']})"
    result = ansible_eval(expr, tmp_path)
    assert result.returncode != 0
    assert "'10.0.0.300' is not an IP address" in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("roles=['gateway']", "unknown platform role 'gateway'; known roles: agents, gateways"),
        ("roles=['gateways'], sources={'agents': '10.0.0.1'}", "expected a list of addresses or networks, got str"),
        ("roles=['gateways'], sources={'agent': ['10.0.0.1']}", "unknown source role 'agent'"),
    ],
)
def test_firewall_term_names_bad_roles_and_sources(arguments: str, message: str, tmp_path: Path) -> None:
    result = ansible_eval(f"lookup('otelstack.platform.otelstack', 'firewall', {arguments})", tmp_path)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr


def test_firewall_term_takes_the_roles_from_the_hosts_groups(tmp_path: Path) -> None:
    """No roles given: localhost is in no platform group, so its table guards no port."""
    result = ansible_eval("lookup('otelstack.platform.otelstack', 'firewall', host='h')", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    from otelstack.security import nftables

    assert json.loads(result.stdout) == nftables.render([], {}, host="h")


def test_supervisor_with_an_agent_level_equals_the_renderer(tmp_path: Path) -> None:
    from otelstack.render import render_supervisor_config

    level = {"tiers": {"agent": {"log_include+": ["/srv/app/*.log"]}}}
    expr = (
        f"lookup('otelstack.platform.otelstack', 'supervisor', configs_dir='{CONFIGS}', env='prod', "
        "profile='agent-vm', agent={'tiers': {'agent': {'log_include+': ['/srv/app/*.log']}}})"
    )
    result = ansible_eval(expr, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    expected = render_supervisor_config(CONFIGS, "prod", profile="agent-vm", agent=level).text
    assert json.loads(result.stdout) == expected
    assert "otelstack.agent_overrides" in expected
