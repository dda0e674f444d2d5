"""Backend renders: the stores the gateways write to and Grafana on top of them.

:func:`render_backends` gives every backend file of an environment (paths relative to build/ENV/);
:func:`check_backends` runs the real checkers on them (promtool, amtool, chDB) and returns the problems
and, for checkers that are not installed, notes saying what was not run.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from otelstack.model.spec import PlatformSpec

NOTE_PREFIXES = ("note: ", "clickhouse: chDB is not installed")


def render_backends(spec: PlatformSpec) -> dict[str, str]:
    """ClickHouse migrations, Prometheus (config, rules, rule tests), Alertmanager, Tempo, Loki and Grafana."""
    from otelstack.backends.alertmanager import render_alertmanager
    from otelstack.backends.clickhouse import render_clickhouse
    from otelstack.backends.grafana import render_grafana
    from otelstack.backends.loki import render_loki
    from otelstack.backends.prometheus import render_prometheus
    from otelstack.backends.tempo import render_tempo

    files: dict[str, str] = {}
    for render in (
        render_clickhouse,
        render_prometheus,
        render_alertmanager,
        render_tempo,
        render_loki,
        render_grafana,
    ):
        files |= render(spec)
    return files


def check_backends(spec: PlatformSpec, files: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """(problems, notes): the real promtool/amtool on the rendered directories, the ClickHouse files on chDB.
    The same spec and files are checked once per process (the checks take seconds; their result depends on
    nothing else)."""
    key = hashlib.sha256(spec.model_dump_json().encode())
    for rel, text in sorted(files.items()):
        key.update(f"\0{rel}\0{text}".encode())
    digest = key.hexdigest()
    if digest not in _CHECKED:
        _CHECKED[digest] = _check(spec, files)
    problems, notes = _CHECKED[digest]
    return list(problems), list(notes)


_CHECKED: dict[str, tuple[list[str], list[str]]] = {}


def _check(spec: PlatformSpec, files: Mapping[str, str]) -> tuple[list[str], list[str]]:
    from otelstack.backends.alertmanager import check_alertmanager
    from otelstack.backends.clickhouse import check_clickhouse
    from otelstack.backends.prometheus import check_prometheus

    found: list[str] = []
    with tempfile.TemporaryDirectory(prefix="otelstack-backends-") as tmp:
        root = Path(tmp)
        for rel, text in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        if any(rel.startswith("prometheus/") for rel in files):
            found += check_prometheus(root / "prometheus")
        if any(rel.startswith("alertmanager/") for rel in files):
            found += check_alertmanager(root / "alertmanager")
    found += check_clickhouse(spec)
    notes = [p for p in found if p.startswith(NOTE_PREFIXES)]
    return [p for p in found if p not in notes], notes
