"""The fast (libyaml) and pure-Python emitters write identical bytes, so output never depends on the machine."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from otelstack.yamlout import FAST_DUMPER, PURE_DUMPER, dump

GOLDEN = Path(__file__).parents[1] / "golden"


@pytest.mark.parametrize("path", sorted(GOLDEN.rglob("*.yaml")), ids=lambda p: str(p.relative_to(GOLDEN)))
def test_both_emitters_write_identical_bytes(path: Path) -> None:
    # The k8s/ files are multi-document streams (one document per object): each document is compared.
    documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    assert documents, f"{path} holds no document"
    for index, data in enumerate(documents):
        assert dump(data, dumper=FAST_DUMPER) == dump(data, dumper=PURE_DUMPER), f"document {index}"


def test_multiline_strings_use_block_style_and_no_aliases_are_emitted() -> None:
    shared = ["a", "b"]
    text = dump({"x": shared, "y": shared, "z": "line1\nline2\n"})
    assert "&id" not in text and "*id" not in text
    assert "z: |\n  line1\n  line2\n" in text
