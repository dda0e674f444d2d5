"""The in-cluster ClickHouse's config.d/ on the real engine (chDB, ClickHouse 26.9): the files the pod mounts
— the rendered otelstack.xml and the stack's otelstack-kubernetes.xml — are merged by ClickHouse's own
config processor over a main config.xml, and the merged settings are read back from system.server_settings.

What chDB reports there: the ``openSSL.server`` keys, ``logger.*`` (so the ``remove`` of the image's log
files is proven), and the rendered fragment's settings. What it does not: the listeners (``https_port``,
``tcp_port_secure``, ``listen_host``; clickhouse-local opens none) and users.d (no server access storage);
those names come from ClickHouse's reference (clickhouse_config.py). The engine runs in a child process:
its configuration is process-wide."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from otelstack.kubernetes import clickhouse_config
from tests.unit.k8s_helpers import find
from tests.unit.test_k8s_clickhouse_server import render

# The image's main config as far as the fragments touch it: log files and the plaintext listeners.
MAIN_CONFIG = """<clickhouse>
  <logger><level>trace</level><log>/var/log/clickhouse-server/clickhouse-server.log</log>
    <errorlog>/var/log/clickhouse-server/clickhouse-server.err.log</errorlog></logger>
  <http_port>8123</http_port><tcp_port>9000</tcp_port><mysql_port>9004</mysql_port>
</clickhouse>
"""
READ_BACK = """
import json, sys
import chdb
conn = chdb.connect(f"file:{sys.argv[1]}/data?config-file={sys.argv[1]}/config.xml")
cur = conn.cursor()
cur.execute("SELECT name, value FROM system.server_settings")
print(json.dumps(dict(cur.fetchall())))
conn.close()
"""


def merged_settings(directory: Path, config_d: dict[str, str]) -> dict[str, str]:
    (directory / "config.d").mkdir(parents=True)
    (directory / "config.xml").write_text(MAIN_CONFIG, encoding="utf-8")
    for name, text in config_d.items():
        (directory / "config.d" / name).write_text(text, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-c", READ_BACK, str(directory)], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    settings: dict[str, str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return settings


@pytest.mark.parametrize("env", ["prod", "dev"])
def test_the_mounted_config_d_merges_on_the_engine(env: str, tmp_path: Path) -> None:
    pytest.importorskip("chdb")
    config_d = find(render(env), "ConfigMap", "clickhouse-config")["data"]
    settings = merged_settings(tmp_path, config_d)
    assert settings["asynchronous_metrics_key_values_mode"] == "legacy_names"  # the rendered otelstack.xml
    assert settings["logger.log"] == settings["logger.errorlog"] == ""  # removed: the root file system is read-only
    assert settings["logger.console"] == "1"
    fragment = ET.fromstring(config_d[clickhouse_config.SERVER_FILE])
    server = fragment.find("openSSL/server")
    if env == "dev":
        assert server is None
        assert settings["openSSL.server.certificateFile"] == ""
        return
    assert server is not None
    for element in server:
        assert settings[f"openSSL.server.{element.tag}"] == _engine_value(element.text), element.tag


def _engine_value(text: Any) -> str:
    """How system.server_settings shows a value of the fragment (booleans as 0/1)."""
    return {"true": "1", "false": "0"}.get(str(text), str(text))


def test_a_misspelt_openssl_key_is_not_reported(tmp_path: Path) -> None:
    """The check can fail: a key the engine does not know is absent from system.server_settings."""
    pytest.importorskip("chdb")
    wrong = "<clickhouse><openSSL><server><certFile>/x.crt</certFile></server></openSSL></clickhouse>"
    settings = merged_settings(tmp_path, {"wrong.xml": wrong})
    assert "openSSL.server.certFile" not in settings and settings["openSSL.server.certificateFile"] == ""
