"""The Prometheus and Alertmanager renders judged by the real promtool and amtool (built at the catalog's
pins by `make binaries`): check config, check rules, test rules (every alert fires in one case and stays
silent in another), check web-config, amtool check-config; and their errors come back through
check_prometheus / check_alertmanager. Skipped only when the programs have not been built."""

from __future__ import annotations

from pathlib import Path

import pytest

from otelstack.backends import alertmanager as am
from otelstack.backends import prometheus as prom
from otelstack.backends.alertmanager import check_alertmanager, render_alertmanager
from otelstack.backends.prometheus import check_prometheus, render_prometheus
from otelstack.backends.promtools import locate_tool
from otelstack.model.spec import PlatformSpec

PROMTOOL = locate_tool("promtool")
AMTOOL = locate_tool("amtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not built: run `make binaries`")
needs_amtool = pytest.mark.skipif(AMTOOL is None, reason="amtool is not built: run `make binaries`")

RECEIVERS = [
    {"name": "oncall", "kind": "pagerduty", "secret_file": "/etc/alertmanager/secrets/pagerduty"},
    {"name": "chat", "kind": "slack", "secret_file": "/etc/alertmanager/secrets/slack", "severities": ["warning"]},
    {"name": "hook", "kind": "webhook", "secret_file": "/etc/alertmanager/secrets/hook", "severities": ["critical"]},
]


def spec(env: str, **kw: object) -> PlatformSpec:
    extra: dict[str, object] = {"alerting": {"receivers": RECEIVERS}}
    if env == "dev":
        extra["security"] = {"allow_insecure": True}
    return PlatformSpec.model_validate({"environment": env, **extra, **kw})


def write(files: dict[str, str], root: Path) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@needs_promtool
@pytest.mark.parametrize("env", ["dev", "prod"])
def test_promtool_accepts_the_render_and_every_rule_test_passes(env: str, tmp_path: Path) -> None:
    write(render_prometheus(spec(env)), tmp_path)
    assert check_prometheus(tmp_path / "prometheus") == []


@needs_promtool
def test_a_service_slo_with_a_latency_threshold_passes(tmp_path: Path) -> None:
    slos = [{"name": "checkout_fast", "kind": "latency", "latency_threshold_ms": 500, "service": "checkout"}]
    write(render_prometheus(spec("prod", alerting={"slos": slos})), tmp_path)
    assert check_prometheus(tmp_path / "prometheus") == []


@needs_promtool
def test_a_broken_rule_gives_promtools_error(tmp_path: Path) -> None:
    write(render_prometheus(spec("prod")), tmp_path)
    rule = tmp_path / "prometheus/rules/opamp.yml"
    rule.write_text(rule.read_text().replace('up{job="opamp-server"} == 0', 'up{job="opamp-server" == 0'))
    problems = check_prometheus(tmp_path / "prometheus")
    assert problems and any("parse error" in p or "unexpected" in p for p in problems), problems


@needs_promtool
def test_a_rule_test_that_expects_the_wrong_thing_fails(tmp_path: Path) -> None:
    write(render_prometheus(spec("prod")), tmp_path)
    test = tmp_path / "prometheus/tests/opamp.yml"
    test.write_text(test.read_text().replace("severity: critical", "severity: info", 1))
    problems = check_prometheus(tmp_path / "prometheus")
    assert any("test rules" in p and "OpAMPServerDown" in p for p in problems), problems


@needs_amtool
@pytest.mark.parametrize("env", ["dev", "prod"])
def test_amtool_accepts_the_render(env: str, tmp_path: Path) -> None:
    write(render_alertmanager(spec(env)), tmp_path)
    assert check_alertmanager(tmp_path / "alertmanager") == []


@needs_amtool
def test_a_route_to_an_unknown_receiver_gives_amtools_error(tmp_path: Path) -> None:
    write(render_alertmanager(spec("prod")), tmp_path)
    config = tmp_path / "alertmanager/alertmanager.yml"
    config.write_text(config.read_text().replace("receiver: warning", "receiver: nobody"))
    problems = check_alertmanager(tmp_path / "alertmanager")
    assert problems and 'undefined receiver "nobody"' in problems[0], problems


@needs_amtool
def test_an_inline_secret_beside_its_file_is_refused_by_amtool(tmp_path: Path) -> None:
    write(render_alertmanager(spec("prod")), tmp_path)
    config = tmp_path / "alertmanager/alertmanager.yml"
    text = config.read_text().replace(
        "  - routing_key_file: /etc/alertmanager/secrets/pagerduty\n",
        "  - routing_key_file: /etc/alertmanager/secrets/pagerduty\n    routing_key: inline\n",
    )
    config.write_text(text)
    problems = check_alertmanager(tmp_path / "alertmanager")
    assert problems and "routing_key" in problems[0], problems


def test_a_missing_tool_is_a_note_not_a_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(render_prometheus(spec("prod")) | render_alertmanager(spec("prod")), tmp_path)
    monkeypatch.setattr(prom, "locate_tool", lambda _name: None)
    monkeypatch.setattr(am, "locate_tool", lambda _name: None)
    (p,) = check_prometheus(tmp_path / "prometheus")
    (a,) = check_alertmanager(tmp_path / "alertmanager")
    assert "promtool not found" in p and "amtool not found" in a


@needs_amtool
@needs_promtool
def test_alertmanager_serves_https_where_prometheus_sends_with_https(tmp_path: Path) -> None:
    """Prometheus' alerting config speaks https to Alertmanager exactly where Alertmanager has a web config
    (the real promtool checks it, the format is the exporter toolkit's); a broken one is reported."""
    import yaml

    from otelstack.backends.prometheus import prometheus_config

    for env in ("dev", "prod"):
        files = render_alertmanager(spec(env))
        scheme = prometheus_config(spec(env))["alerting"]["alertmanagers"][0].get("scheme", "http")
        has_web = "alertmanager/web.yml" in files
        assert (
            has_web
            == (scheme == "https")
            == ("--web.config.file=/etc/alertmanager/web.yml" in files["alertmanager/flags.txt"])
        ), env
    assert scheme == "https"  # prod
    write(render_alertmanager(spec("prod")), tmp_path)
    assert check_alertmanager(tmp_path / "alertmanager") == []
    web = tmp_path / "alertmanager/web.yml"
    data = yaml.safe_load(web.read_text())
    data["tls_server_config"]["min_version"] = "TLS99"
    web.write_text(yaml.safe_dump(data))
    problems = check_alertmanager(tmp_path / "alertmanager")
    assert len(problems) == 1 and "promtool check web-config (alertmanager/web.yml) failed" in problems[0], problems
