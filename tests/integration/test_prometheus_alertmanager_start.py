"""The real Prometheus and Alertmanager start from the rendered files and flags (paths moved into a
scratch directory, listening on loopback): the receivers and exemplar storage are on, retention is the
spec's, every rendered rule group is loaded, and Alertmanager routes alerts by severity. Skipped only
when the programs have not been built (``make binaries``)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from otelstack.backends.alertmanager import render_alertmanager
from otelstack.backends.prometheus import render_prometheus
from otelstack.backends.promtools import locate_tool, with_placeholder_files
from otelstack.model.spec import PlatformSpec
from tests.integration.backend_process import LOOPBACK, get_json, localised, start, write_files
from tests.integration.data_path.collectors import free_port

PROMETHEUS = locate_tool("prometheus")
ALERTMANAGER = locate_tool("alertmanager")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None or ALERTMANAGER is None, reason="prometheus/alertmanager not built: run `make binaries`"
)
RECEIVERS = [{"name": "hook", "kind": "webhook", "secret_file": "/etc/alertmanager/secrets/hook"}]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("prom-am")
    spec = PlatformSpec.model_validate(
        {
            "environment": "dev",
            "security": {"allow_insecure": True},
            "backends": {"prometheus": {"endpoint": "http://prometheus.observability.internal:9090/api/v1/write"}},
            "alerting": {"receivers": RECEIVERS},
            "retention": {"metrics": {"hot_days": 9, "warm_days": 90, "cold_days": 0}},
        }
    )
    files = render_prometheus(spec) | render_alertmanager(spec)
    write_files(work, files)
    prom_port, am_port, am_cluster = free_port(), free_port(), free_port()
    config = yaml.safe_load((work / "prometheus/prometheus.yml").read_text())
    config["alerting"]["alertmanagers"][0]["static_configs"] = [{"targets": [f"{LOOPBACK}:{am_port}"]}]
    config["scrape_configs"] = []  # no platform here to scrape; the rules and receivers are what is tested
    (work / "prometheus/prometheus.yml").write_text(yaml.safe_dump(config))
    am_config = with_placeholder_files(yaml.safe_load((work / "alertmanager/alertmanager.yml").read_text()), work)
    (work / "alertmanager/alertmanager.yml").write_text(yaml.safe_dump(am_config))
    prom_flags = localised(
        (work / "prometheus/flags.txt").read_text(),
        {
            "--config.file": str(work / "prometheus/prometheus.yml"),
            "--storage.tsdb.path": str(work / "prom-data"),
            "--web.listen-address": f"{LOOPBACK}:{prom_port}",
        },
    )
    am_flags = localised(
        (work / "alertmanager/flags.txt").read_text(),
        {
            "--config.file": str(work / "alertmanager/alertmanager.yml"),
            "--storage.path": str(work / "am-data"),
            "--web.listen-address": f"{LOOPBACK}:{am_port}",
            "--cluster.listen-address": f"{LOOPBACK}:{am_cluster}",
        },
    )
    logs = {"prometheus": work / "prometheus.log", "alertmanager": work / "alertmanager.log"}
    assert ALERTMANAGER is not None and PROMETHEUS is not None
    with (
        start(ALERTMANAGER, am_flags, logs["alertmanager"], f"http://{LOOPBACK}:{am_port}/-/ready"),
        start(PROMETHEUS, prom_flags, logs["prometheus"], f"http://{LOOPBACK}:{prom_port}/-/ready"),
    ):
        yield {"prom": f"http://{LOOPBACK}:{prom_port}", "am": f"http://{LOOPBACK}:{am_port}", "files": files}


def test_receivers_exemplars_and_retention_are_on(servers: dict[str, Any]) -> None:
    flags = get_json(f"{servers['prom']}/api/v1/status/flags")["data"]
    assert flags["web.enable-remote-write-receiver"] == "true"
    assert flags["web.enable-otlp-receiver"] == "true"
    assert "exemplar-storage" in flags["enable-feature"]
    runtime = get_json(f"{servers['prom']}/api/v1/status/runtimeinfo")["data"]
    assert runtime["storageRetention"].startswith("9d")
    empty = urllib.request.Request(
        f"{servers['prom']}/api/v1/otlp/v1/metrics", b"", {"Content-Type": "application/x-protobuf"}, method="POST"
    )
    with urllib.request.urlopen(empty, timeout=5) as resp:
        assert resp.status == 200  # the OTLP receiver takes an empty export request


def test_every_rendered_rule_group_is_loaded(servers: dict[str, Any]) -> None:
    rendered = {
        g["name"] for rel, text in servers["files"].items() if "/rules/" in rel for g in yaml.safe_load(text)["groups"]
    }
    loaded = {g["name"] for g in get_json(f"{servers['prom']}/api/v1/rules")["data"]["groups"]}
    assert loaded == rendered


def test_alertmanager_routes_by_severity(servers: dict[str, Any]) -> None:
    """The loaded config keeps the secret as a file path, and alerts go to the receiver of their severity."""
    status = get_json(f"{servers['am']}/api/v2/status")
    assert "url_file: " in status["config"]["original"]
    alerts = [
        {"labels": {"alertname": "OTelCollectorDown", "severity": "critical", "job": "otel-gateway"}},
        {"labels": {"alertname": "OTelCollectorQueueNearFull", "severity": "warning", "job": "otel-agent"}},
        {"labels": {"alertname": "Informational", "severity": "info"}},
    ]
    post = urllib.request.Request(
        f"{servers['am']}/api/v2/alerts", json.dumps(alerts).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(post, timeout=5) as resp:
        assert resp.status == 200
    routed = {
        a["labels"]["alertname"]: [r["name"] for r in a["receivers"]]
        for a in get_json(f"{servers['am']}/api/v2/alerts")
    }
    assert routed == {
        "OTelCollectorDown": ["critical"],
        "OTelCollectorQueueNearFull": ["warning"],
        "Informational": ["otelstack-unrouted"],
    }
