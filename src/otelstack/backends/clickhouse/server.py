"""The server-side fragment ClickHouse needs for the platform: its Prometheus endpoint (scraped by the
``clickhouse`` job on :data:`CLICKHOUSE_METRICS_PORT`) with the asynchronous metrics the disk alerts read.

ClickHouse 26.8 changed how per-disk asynchronous metrics reach the Prometheus endpoint: by default
(``asynchronous_metrics_key_values_mode: key_values``) ``DiskAvailable_default`` became one family with a
label. The fragment asks for ``legacy_names`` — the scalar ``ClickHouseAsyncMetrics_DiskAvailable_default``
the rules and dashboards query — which every earlier release publishes anyway (it does not know the
setting and leaves an unknown element of the server config alone), so one rule set fits both.
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

from otelstack.security.layout import CLICKHOUSE_METRICS_PORT

from .migrations import DIRECTORY

SERVER_CONFIG = f"{DIRECTORY}/config.d/otelstack.xml"
METRICS_ENDPOINT = "/metrics"
KEY_VALUES_MODE = "legacy_names"


def _element(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, tag).text = text


def render_server_config() -> dict[str, str]:
    """``clickhouse/config.d/otelstack.xml``: goes to the server's ``config.d/`` (merged over config.xml)."""
    root = ET.Element("clickhouse")
    prometheus = ET.SubElement(root, "prometheus")
    _element(prometheus, "endpoint", METRICS_ENDPOINT)
    _element(prometheus, "port", str(CLICKHOUSE_METRICS_PORT))
    for family in ("metrics", "events", "asynchronous_metrics", "errors"):
        _element(prometheus, family, "true")
    _element(root, "asynchronous_metrics_key_values_mode", KEY_VALUES_MODE)
    ET.indent(root)
    comment = (
        "<!-- otelstack: ClickHouse's Prometheus endpoint for the clickhouse scrape job; per-disk asynchronous\n"
        "     metrics under their scalar names (DiskAvailable_default), which the disk alerts query. -->\n"
    )
    return {SERVER_CONFIG: '<?xml version="1.0"?>\n' + comment + ET.tostring(root, encoding="unicode") + "\n"}
