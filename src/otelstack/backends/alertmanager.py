"""Alertmanager 0.35 from the spec: routing by severity, receivers whose secrets Alertmanager reads from
files when it sends (``url_file``, ``routing_key_file``, ``api_url_file``: never a secret in the config),
and inhibit rules so that a cause silences its symptoms.

    alertmanager/alertmanager.yml     the configuration
    alertmanager/flags.txt            the command-line flags, one per line
    alertmanager/web.yml              HTTPS (--web.config.file) where Prometheus is HTTPS: it sends alerts
                                      to Alertmanager with https and the platform CA

``check_alertmanager`` runs the real ``amtool check-config`` on a rendered directory, and ``promtool check
web-config`` (the same exporter-toolkit format) on its web config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from otelstack.backends.prometheus import serves_tls  # HTTPS exactly when Prometheus is (it sends with https)
from otelstack.backends.promtools import locate_tool, missing_tool, run_tool, scratch_copy, web_config
from otelstack.model.spec import AlertReceiver, PlatformSpec
from otelstack.security.layout import ALERTMANAGER_CLUSTER_PORT, ALERTMANAGER_PORT
from otelstack.yamlout import dump

CONFIG_FILE = "alertmanager/alertmanager.yml"
FLAGS_FILE = "alertmanager/flags.txt"
WEB_FILE = "alertmanager/web.yml"
CONFIG_DIR = "/etc/alertmanager"
TLS_DIR = f"{CONFIG_DIR}/tls"
DATA_DIR = "/var/lib/alertmanager"
SEVERITIES = ("critical", "warning")
NOWHERE = "otelstack-unrouted"  # the root's receiver: no integration (alerts stay visible in Alertmanager)
HEADER = "Rendered by otelstack (otelstack.backends.alertmanager); changes are overwritten on the next plan."
# How often a still-firing alert is sent again: pages often, tickets daily.
REPEAT = {"critical": "1h", "warning": "12h"}


def integration(receiver: AlertReceiver) -> tuple[str, dict[str, Any]]:
    """(the receiver-config list it belongs to, its settings): the secret only as a file path."""
    if receiver.kind == "pagerduty":
        return "pagerduty_configs", {"routing_key_file": receiver.secret_file, "send_resolved": True}
    if receiver.kind == "slack":
        config: dict[str, Any] = {"api_url_file": receiver.secret_file, "send_resolved": True}
        if receiver.channel:
            config["channel"] = receiver.channel
        return "slack_configs", config
    return "webhook_configs", {"url_file": receiver.secret_file, "send_resolved": True}


def receivers(spec: PlatformSpec) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"name": NOWHERE}]
    for severity in SEVERITIES:
        entry: dict[str, Any] = {"name": severity}
        for r in spec.alerting.receivers:
            if severity in r.severities:
                key, config = integration(r)
                entry.setdefault(key, []).append(config)
        out.append(entry)
    return out


def alertmanager_config(spec: PlatformSpec) -> dict[str, Any]:
    return {
        "route": {
            "receiver": NOWHERE,
            "group_by": ["alertname", "job", "service_name", "slo"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": "12h",
            "routes": [
                {"receiver": s, "matchers": [f'severity="{s}"'], "repeat_interval": REPEAT[s]} for s in SEVERITIES
            ],
        },
        "receivers": receivers(spec),
        "inhibit_rules": [
            # a page silences the ticket for the same thing
            {
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="warning"'],
                "equal": ["alertname", "job", "instance"],
            },
            # a fast SLO burn silences the slower tiers of the same SLO and service
            {
                "source_matchers": ['severity="critical"', 'slo=~".+"'],
                "target_matchers": ['severity="warning"', 'slo=~".+"'],
                "equal": ["slo", "service_name"],
            },
            # a collector that is down explains its other alerts
            {
                "source_matchers": ['alertname="OTelCollectorDown"'],
                "target_matchers": ['alertname=~"OTelCollector.+|OTelLoadBalancer.+"'],
                "equal": ["job", "instance"],
            },
            # no gateway at all explains too few gateways
            {
                "source_matchers": ['alertname="OTelLoadBalancerNoBackends"'],
                "target_matchers": ['alertname="OTelLoadBalancerFewBackends"'],
                "equal": ["job", "instance"],
            },
        ],
    }


def flags(spec: PlatformSpec) -> list[str]:
    out = [
        f"--config.file={CONFIG_DIR}/alertmanager.yml",
        f"--storage.path={DATA_DIR}",
        f"--web.listen-address=:{ALERTMANAGER_PORT}",
        f"--cluster.listen-address=0.0.0.0:{ALERTMANAGER_CLUSTER_PORT}",
    ]
    if serves_tls(spec):
        out.append(f"--web.config.file={CONFIG_DIR}/web.yml")
    return out


def render_alertmanager(spec: PlatformSpec) -> dict[str, str]:
    """Every Alertmanager file of the environment, by path relative to build/ENV/."""
    files = {
        CONFIG_FILE: dump(alertmanager_config(spec), HEADER),
        FLAGS_FILE: "\n".join(flags(spec)) + "\n",
    }
    if serves_tls(spec):
        files[WEB_FILE] = dump(web_config(spec, TLS_DIR), HEADER)
    return files


def check_alertmanager(directory: Path | str) -> list[str]:
    """Problems the real ``amtool check-config`` finds in a rendered ``alertmanager/`` directory (secret
    files swapped for placeholders); a missing amtool is one note, never a silent pass."""
    directory = Path(directory)
    amtool = locate_tool("amtool")
    if amtool is None:
        return [missing_tool("amtool")]
    tmp, copy = scratch_copy(directory, "alertmanager.yml", "web.yml")
    problems: list[str] = []
    with tmp:
        ok, output = run_tool([amtool, "check-config", "alertmanager.yml"], copy, Path(tmp.name))
        if not ok:
            problems.append(f"amtool check-config failed: {output}")
        if (copy / "web.yml").is_file():
            promtool = locate_tool("promtool")
            if promtool is None:
                problems.append(missing_tool("promtool"))
            else:
                ok, output = run_tool([promtool, "check", "web-config", "web.yml"], copy, Path(tmp.name))
                if not ok:
                    problems.append(f"promtool check web-config (alertmanager/web.yml) failed: {output}")
    return problems
