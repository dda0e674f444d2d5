"""`otelstack plan` writes the backend files and refuses to write when their real checkers fail."""

from __future__ import annotations

from pathlib import Path

import pytest

import otelstack.render as render_module
from otelstack.backends import check_backends, render_backends
from otelstack.backends.promtools import locate_tool
from otelstack.errors import ConfigValidationError
from otelstack.model.loader import load_spec
from otelstack.render import render_platform

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_plan_holds_every_backend_file() -> None:
    files = render_platform(CONFIGS, "dev").files
    for prefix in ("clickhouse/", "prometheus/rules/", "prometheus/tests/", "alertmanager/", "tempo/", "loki/",
                   "grafana/dashboards/"):  # fmt: skip
        assert any(rel.startswith(prefix) for rel in files), prefix
    assert "prometheus/prometheus.yml" in files and "clickhouse/users.sql" in files


@pytest.mark.skipif(locate_tool("promtool") is None, reason="promtool not built: `make binaries`")
def test_a_broken_rule_is_a_problem_not_a_note() -> None:
    spec = load_spec(CONFIGS, "dev")
    files = render_backends(spec)
    rule = sorted(rel for rel in files if rel.startswith("prometheus/rules/"))[0]
    broken = dict(files) | {rule: files[rule].replace("expr:", "expr: sum(", 1)}
    problems, _notes = check_backends(spec, broken)
    assert any("promtool" in p and "failed" in p for p in problems), problems
    assert check_backends(spec, files)[0] == []


def test_plan_writes_nothing_when_a_backend_check_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render_module, "check_backends", lambda spec, files: (["promtool check rules failed: x"], []))
    with pytest.raises(ConfigValidationError) as raised:
        render_platform(CONFIGS, "dev")
    assert "promtool check rules failed: x" in raised.value.issues
