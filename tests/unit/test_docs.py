"""Documentation that is generated from code stays in step with it."""

from __future__ import annotations

from pathlib import Path

from otelstack.model.reference import markdown

ROOT = Path(__file__).parents[2]


def test_spec_reference_is_current() -> None:
    committed = (ROOT / "docs" / "reference" / "spec.md").read_text(encoding="utf-8")
    assert committed == markdown(), "regenerate: python -m otelstack.model.reference > docs/reference/spec.md"


def test_every_spec_field_has_a_description() -> None:
    rows = [line for line in markdown().splitlines() if line.startswith("| `")]
    undocumented = [row.split("|")[1].strip() for row in rows if not row.rstrip("|").split("|")[-1].strip()]
    assert not undocumented, f"fields without a description: {undocumented}"
