"""The repository root builds as the Ansible collection otelstack.platform."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.skipif(shutil.which("ansible-galaxy") is None, reason="ansible-galaxy comes with `make setup`")
def test_collection_builds_without_python_sources_or_tests(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["ansible-galaxy", "collection", "build", str(ROOT), "--output-path", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (archive,) = tmp_path.glob("otelstack-platform-*.tar.gz")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "MANIFEST.json" in names and "meta/runtime.yml" in names
    assert not [n for n in names if n.startswith(("src/", "tests/", ".venv/", "configs/"))]
