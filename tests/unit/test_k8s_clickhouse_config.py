"""The in-cluster ClickHouse's config.d/ on the real engine (chDB, ClickHouse 26.9): the files the pod mounts
— the rendered otelstack.xml and the stack's otelstack-kubernetes.xml — are merged by ClickHouse's own
config processor over a main config.xml, and the merged settings are read back from system.server_settings.

What chDB reports there: the ``openSSL.server`` keys, ``logger.*`` (so the ``remove`` of the image's log
files is proven), and the rendered fragment's settings. users.d is merged the same way over a users.xml
like the image's, and ``system.users``/``system.grants`` show the admin user as ClickHouse parsed it. What
it does not report: the listeners (``https_port``, ``tcp_port_secure``, ``listen_host``; clickhouse-local
opens none); those names come from ClickHouse's reference (clickhouse_config.py). The engine runs in a
child process: its configuration is process-wide."""

from __future__ import annotations

import json
import os
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
# The image's users.xml as far as the fragment touches it: the passwordless default user, open to all.
USERS_XML = """<clickhouse>
  <profiles><default/></profiles><quotas><default/></quotas>
  <users><default><password></password><networks><ip>::/0</ip></networks><profile>default</profile>
    <quota>default</quota></default></users>
</clickhouse>
"""
# chDB always logs in as `default`, which the fragment removes: this test-only file (merged after it) brings a
# local one back so the engine can be asked what it made of the fragment.
LOCAL_DEFAULT = """<clickhouse><users><default><no_password/><networks><ip>127.0.0.1</ip></networks>
  <profile>default</profile><quota>default</quota><access_management>1</access_management></default></users>
</clickhouse>
"""
READ_BACK = """
import json, sys
import chdb
conn = chdb.connect(f"file:{sys.argv[1]}/data?config-file={sys.argv[1]}/config.xml")
cur = conn.cursor()
cur.execute(sys.argv[2])
print(json.dumps([list(row) for row in cur.fetchall()]))
conn.close()
"""


def engine(directory: Path, query: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", READ_BACK, str(directory), query],
        capture_output=True, text=True, timeout=300, check=False, env={**os.environ, **(env or {})},
    )  # fmt: skip


def merged_settings(directory: Path, config_d: dict[str, str]) -> dict[str, str]:
    (directory / "config.d").mkdir(parents=True)
    (directory / "config.xml").write_text(MAIN_CONFIG, encoding="utf-8")
    for name, text in config_d.items():
        (directory / "config.d" / name).write_text(text, encoding="utf-8")
    proc = engine(directory, "SELECT name, value FROM system.server_settings")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {name: value for name, value in json.loads(proc.stdout.strip().splitlines()[-1])}


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


def test_the_mounted_users_d_gives_the_admin_user_and_removes_the_default_one(tmp_path: Path) -> None:
    pytest.importorskip("chdb")
    users_d = find(render("prod"), "ConfigMap", "clickhouse-users")["data"]
    (tmp_path / "users.d").mkdir()
    (tmp_path / "config.xml").write_text(
        "<clickhouse><user_directories><users_xml><path>users.xml</path></users_xml></user_directories></clickhouse>",
        encoding="utf-8",
    )
    (tmp_path / "users.xml").write_text(USERS_XML, encoding="utf-8")
    for name, text in users_d.items():
        (tmp_path / "users.d" / name).write_text(text, encoding="utf-8")
    password = {"CLICKHOUSE_ADMIN_PASSWORD": "test-only"}
    refused = engine(tmp_path, "SELECT 1", password)  # the image's default user is gone
    assert refused.returncode != 0 and "Authentication failed" in refused.stderr
    (tmp_path / "users.d" / "zz-local-default.xml").write_text(LOCAL_DEFAULT, encoding="utf-8")
    users = engine(tmp_path, "SELECT name, storage, auth_type, host_ip FROM system.users ORDER BY name", password)
    assert users.returncode == 0, users.stderr[-3000:]
    rows = {row[0]: row[1:] for row in json.loads(users.stdout.strip().splitlines()[-1])}
    storage, auth_type, _ = rows["otelstack_admin"]
    assert storage == "users_xml" and "plaintext_password" in str(auth_type)  # the password from_env
    assert "::/0" not in str(rows["default"][2])  # not the image's default, merged: that one was removed
    grants = engine(tmp_path, "SELECT access_type, grant_option FROM system.grants WHERE user_name = 'otelstack_admin'",
                    password)  # fmt: skip
    granted = dict(json.loads(grants.stdout.strip().splitlines()[-1]))
    # What the schema Job does: create users and roles, grant with replace option, create tables and views.
    assert all(granted.get(a) == 1 for a in ("CREATE USER", "ALTER USER", "CREATE ROLE", "ROLE ADMIN", "CREATE"))
