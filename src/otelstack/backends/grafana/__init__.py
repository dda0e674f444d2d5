"""Grafana: provisioning (datasources with fixed UIDs and their links, dashboards provider, grafana.ini) and
the platform's dashboards as code. ``render_grafana`` returns every file; ``check_grafana`` is otelstack's own
validator of them (UIDs, metric names, secrets, anonymous access)."""

from __future__ import annotations

import configparser
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import yaml

from otelstack.backends.endpoints import CLICKHOUSE_UID, DATASOURCE_UIDS
from otelstack.backends.grafana.dashboards import render_dashboards
from otelstack.backends.grafana.metrics import known_metrics
from otelstack.backends.grafana.promql import metric_names
from otelstack.backends.grafana.provisioning import (
    DASHBOARDS_PROVIDER_FILE,
    DATASOURCES_FILE,
    GRAFANA_INI_FILE,
    dashboards_provider,
    datasources,
    grafana_ini,
)
from otelstack.model.spec import PlatformSpec
from otelstack.yamlout import dump

__all__ = ["check_grafana", "dashboard_queries", "render_grafana"]

# `$` Grafana would expand in a provisioning file: not `$$`, and not a variable-expansion provider.
_EXPANDED = re.compile(r"(?<!\$)\$(?!\$|__(file|env|vault)\{)")
_SECRET_KEY = re.compile(r"(password|secret|token|key|cert)", re.IGNORECASE)
_REFERENCE = re.compile(r"^\$__(file|env)\{[^}]+\}$")


def render_grafana(spec: PlatformSpec) -> dict[str, str]:
    """Every Grafana file; raises ConfigValidationError when otelstack's own checks fail."""
    from otelstack.errors import ConfigValidationError

    header = f"Grafana provisioning for {spec.environment} — rendered by otelstack. Do not edit: change configs/."
    files = {
        DATASOURCES_FILE: dump(datasources(spec), header),
        DASHBOARDS_PROVIDER_FILE: dump(dashboards_provider(), header),
        GRAFANA_INI_FILE: grafana_ini(spec),
        **render_dashboards(spec),
    }
    required = [u for u in DATASOURCE_UIDS if u != CLICKHOUSE_UID or spec.backends.clickhouse.enabled]
    problems = check_grafana(files, known_metrics(spec), required)
    if problems:
        raise ConfigValidationError("rendered Grafana files are invalid; nothing was written", problems)
    return files


def _strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def _datasource_refs(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(where, uid) of every datasource reference in a dashboard."""
    if isinstance(node, Mapping):
        ds = node.get("datasource")
        if isinstance(ds, Mapping):
            yield path or "dashboard", str(ds.get("uid"))
        elif isinstance(ds, str):
            yield path or "dashboard", ds  # a datasource by name: never matches a UID, so it is reported
        for key, value in node.items():
            if key != "datasource":
                yield from _datasource_refs(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _datasource_refs(value, f"{path}[{i}]")


def dashboard_queries(board: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) of every query in a dashboard: panel targets and variable queries."""
    panels = list(board.get("panels", []))
    while panels:
        panel = panels.pop()
        panels.extend(panel.get("panels", []))
        for target in panel.get("targets", []):
            if "expr" in target:
                yield str(panel.get("title")), str(target["expr"])
    for variable in board.get("templating", {}).get("list", []):
        query = variable.get("query")
        text = query.get("query") if isinstance(query, Mapping) else query
        if isinstance(text, str):
            inner = re.fullmatch(r"label_values\((.+),\s*[A-Za-z_][A-Za-z0-9_]*\)", text)
            yield f"variable {variable.get('name')}", inner.group(1) if inner else text


def check_grafana(
    files: Mapping[str, str], metrics: frozenset[str] | None = None, required: Sequence[str] = DATASOURCE_UIDS
) -> list[str]:
    """One line per problem, naming the file and key. ``metrics``: the metric names panels may query;
    ``required``: the datasource UIDs that must be provisioned."""
    problems: list[str] = []
    provisioned: set[str] = set()
    text = files.get(DATASOURCES_FILE)
    if text is None:
        problems.append(f"{DATASOURCES_FILE}: missing")
    else:
        doc = yaml.safe_load(text) or {}
        for i, ds in enumerate(doc.get("datasources", [])):
            where = f"{DATASOURCES_FILE}: datasources[{i}] ({ds.get('name')})"
            uid = ds.get("uid")
            if not uid:
                problems.append(f"{where}: no uid; links and dashboards need fixed UIDs")
            elif uid in provisioned:
                problems.append(f"{where}: uid {uid!r} is provisioned twice")
            provisioned.add(str(uid))
            for key, value in _strings(ds.get("secureJsonData", {})):
                if _SECRET_KEY.search(key) and not _REFERENCE.match(value):
                    problems.append(f"{where}: secureJsonData.{key} is inline; allowed: $__file{{…}} or $__env{{…}}")
            for key, _ in _strings(ds.get("jsonData", {})):
                if re.search(r"password", key, re.IGNORECASE):
                    problems.append(f"{where}: jsonData.{key} holds a password; allowed: secureJsonData references")
            for key, value in _strings(ds):
                if _EXPANDED.search(value):
                    problems.append(
                        f"{where}: {key} = {value!r} has a `$` Grafana would expand as an environment variable; "
                        "write `$$` for a literal `$`"
                    )
        missing = set(required) - provisioned
        if missing:
            problems.append(f"{DATASOURCES_FILE}: datasources {sorted(missing)} are not provisioned")
    problems += _check_ini(files.get(GRAFANA_INI_FILE))
    for name, body in sorted(files.items()):
        if not (name.startswith("grafana/dashboards/") and name.endswith(".json")):
            continue
        board = json.loads(body)
        if not board.get("uid"):
            problems.append(f"{name}: no uid")
        for where, uid in _datasource_refs(board):
            if uid not in provisioned:
                problems.append(f"{name}: {where} queries datasource {uid!r}, which is not provisioned")
        if metrics is not None:
            for title, expr in dashboard_queries(board):
                unknown = metric_names(expr) - metrics
                if unknown:
                    problems.append(f"{name}: panel {title!r} queries unknown metrics {sorted(unknown)}")
    return problems


def _check_ini(text: str | None) -> list[str]:
    if text is None:
        return [f"{GRAFANA_INI_FILE}: missing"]
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string(text)
    problems: list[str] = []

    def need(section: str, key: str, ok: Any, allowed: str) -> None:
        value = ini.get(section, key, fallback=None)
        if value is None or not ok(value):
            problems.append(f"{GRAFANA_INI_FILE}: [{section}] {key} = {value!r}; allowed: {allowed}")

    need("auth.anonymous", "enabled", lambda v: v == "false", "false (no anonymous access)")
    need("security", "admin_password", lambda v: bool(_REFERENCE.match(v)), "a $__file{…} or $__env{…} reference")
    need("security", "secret_key", lambda v: bool(_REFERENCE.match(v)), "a $__file{…} or $__env{…} reference")
    need("security", "cookie_secure", lambda v: v == "true", "true")
    need("users", "allow_sign_up", lambda v: v == "false", "false")
    if ini.get("auth.anonymous", "org_role", fallback="Viewer") == "Admin":
        problems.append(f"{GRAFANA_INI_FILE}: [auth.anonymous] org_role = 'Admin'; anonymous users are never admins")
    return problems
