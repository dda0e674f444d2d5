"""Golden files: every artefact of every shipped environment and region, byte for byte.

Regenerate after an intended change with ``UPDATE_GOLDEN=1 pytest tests/unit/test_golden.py`` and
review the diff like code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from otelstack.layering import available_environments, available_regions
from otelstack.render import render_platform

ROOT = Path(__file__).parents[2]
CONFIGS = ROOT / "configs"
GOLDEN = ROOT / "tests" / "golden"
TARGETS = [
    (env, region) for env in available_environments(CONFIGS) for region in [None, *available_regions(CONFIGS, env)]
]


@pytest.mark.parametrize(("env", "region"), TARGETS, ids=[f"{e}-{r}" if r else e for e, r in TARGETS])
def test_rendered_artefacts_match_golden_files(env: str, region: str | None) -> None:
    files = render_platform(CONFIGS, env, region).files
    target = GOLDEN / (env + (f"-{region}" if region else ""))
    if os.environ.get("UPDATE_GOLDEN") == "1":
        for rel, text in files.items():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            (target / rel).write_text(text, encoding="utf-8")
        for stale in target.rglob("*"):
            if stale.is_file() and str(stale.relative_to(target)) not in files:
                stale.unlink()
    expected = {str(p.relative_to(target)): p.read_text(encoding="utf-8") for p in target.rglob("*") if p.is_file()}
    assert sorted(files) == sorted(expected), "set of artefacts changed; regenerate with UPDATE_GOLDEN=1"
    for rel, text in files.items():
        assert text == expected[rel], f"{target.name}/{rel} differs; regenerate with UPDATE_GOLDEN=1"


def test_rendering_is_deterministic() -> None:
    first = render_platform(CONFIGS, "prod", "us-east-1").files
    second = render_platform(CONFIGS, "prod", "us-east-1").files
    assert first == second
