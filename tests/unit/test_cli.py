"""The main job: `otelstack plan` writes validated artefacts, or nothing at all."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from otelstack.cli import main
from otelstack.render import PROFILES, VARIANTS

CONFIGS = Path(__file__).parents[2] / "configs"


def test_plan_writes_every_profile_variant_supervisor_and_sizing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "build" / "prod"
    assert main(["plan", "--env", "prod", "--configs", str(CONFIGS), "--out", str(out)]) == 0
    collector = sorted(p.name for p in (out / "collector").iterdir())
    assert len(collector) == len(PROFILES) * len(VARIANTS)
    assert {"agent-vm.yaml", "gateway.yaml", "emergency-gateway.yaml", "safe-minimal-agent-vm.yaml"} <= set(collector)
    assert sorted(p.name for p in (out / "supervisor").iterdir()) == ["agent-vm.yaml", "gateway.yaml"]
    assert (out / "sizing.md").read_text().startswith("# Sizing — prod")
    for path in (out / "collector").iterdir():
        assert isinstance(yaml.safe_load(path.read_text()), dict)
    captured = capsys.readouterr()
    k8s = sorted(p.name for p in (out / "k8s").iterdir())  # stacks/platform/Pulumi.prod.yaml exists
    assert k8s and k8s[0] == "01-namespace.yaml"
    written = [p for p in out.rglob("*") if p.is_file() and p.name != ".otelstack-plan"]
    assert len(written) > len(collector) + 4 + len(k8s)  # the backend files too
    assert f"wrote {len(written)} files to {out}/" in captured.out
    assert "  backends: alertmanager, clickhouse, grafana, loki, prometheus, tempo" in captured.out
    assert "collector gateway.yaml" in captured.err, "progress lines go to stderr"


def test_a_bad_spec_fails_clearly_and_leaves_the_previous_plan_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configs = tmp_path / "configs"
    shutil.copytree(CONFIGS, configs)
    out = tmp_path / "out"
    assert main(["plan", "--env", "dev", "--configs", str(configs), "--out", str(out), "--quiet"]) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (configs / "dev" / "platform.yaml").write_text("sampling: {tail: {probabilistic_percentage: 120}}\n")
    assert main(["plan", "--env", "dev", "--configs", str(configs), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "dev/platform.yaml: sampling.tail.probabilistic_percentage: Input should be less than or equal to 100" in err
    assert "Traceback" not in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not (tmp_path / "out.tmp").exists()


def test_unknown_environment_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--env", "qa", "--configs", str(CONFIGS)]) == 2
    assert "error: environment 'qa' not found under" in capsys.readouterr().err


def test_render_prints_one_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["render", "--env", "prod", "--configs", str(CONFIGS), "--profile", "gateway", "--variant", "emergency"])
        == 0
    )
    config = yaml.safe_load(capsys.readouterr().out)
    assert "filter/emergency" in config["processors"]


def test_validate_accepts_a_rendered_file_and_rejects_a_broken_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p"
    assert main(["plan", "--env", "prod", "--configs", str(CONFIGS), "--out", str(out), "--quiet"]) == 0
    good = out / "collector" / "gateway.yaml"
    assert main(["validate", str(good)]) == 0
    broken = tmp_path / "broken.yaml"
    config = yaml.safe_load(good.read_text())
    config["service"]["pipelines"]["logs"]["processors"].reverse()
    broken.write_text(yaml.safe_dump(config))
    assert main(["validate", str(broken)]) == 1
    assert "memory_limiter must be first" in capsys.readouterr().err


def test_sizing_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sizing", "--env", "prod", "--configs", str(CONFIGS)]) == 0
    assert "| gateway |" in capsys.readouterr().out


GATEWAY = Path(__file__).parents[2] / "tests" / "golden" / "prod" / "collector" / "gateway.yaml"


def test_validate_runs_the_real_binary_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(GATEWAY)]) == 0
    assert "(otelcol-contrib validate: ok)" in capsys.readouterr().out, "the built binary is found (make binaries)"


def test_validate_require_secrets_names_each_missing_secret(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTELSTACK_INGEST_TOKEN", raising=False)
    monkeypatch.setenv("OTELSTACK_CLICKHOUSE_PASSWORD", "set")
    assert main(["validate", "--require-secrets", str(GATEWAY)]) == 1
    err = capsys.readouterr().err
    assert "${env:OTELSTACK_INGEST_TOKEN} is referenced but OTELSTACK_INGEST_TOKEN is not set" in err
    assert "OTELSTACK_CLICKHOUSE_PASSWORD" not in err
    monkeypatch.setenv("OTELSTACK_INGEST_TOKEN", "set")
    assert main(["validate", "--require-secrets", str(GATEWAY)]) == 0


def test_validate_reports_a_file_that_is_not_utf8(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"receivers:\n  otlp: \xff\n")
    assert main(["validate", str(bad)]) == 1
    assert f"{bad}: not UTF-8 text (byte 19: invalid start byte)" in capsys.readouterr().err
