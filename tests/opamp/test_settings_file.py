"""The server's settings file is read like a configs/ level: bad YAML is refused with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from otelstack.errors import OtelstackError
from otelstack.opamp.remote_config import parse_host_overrides
from otelstack.opamp.settings import load_settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"listen: 127.0.0.1:4320\nlisten: 127.0.0.1:4321\n", "key 'listen' is given twice"),
        (b"base: &b {env: X}\nadmin_token: *b\n", "anchors and aliases are not allowed"),
        (b"listen: \xff\n", "not UTF-8"),
    ],
)
def test_bad_settings_files_name_the_file_and_the_problem(tmp_path: Path, text: bytes, expected: str) -> None:
    path = tmp_path / "server.yaml"
    path.write_bytes(text)
    with pytest.raises(OtelstackError, match=expected) as info:
        load_settings(path)
    assert str(path) in str(info.value)


def test_a_missing_settings_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(OtelstackError, match=r"server.yaml: cannot read: No such file"):
        load_settings(tmp_path / "server.yaml")


def test_host_overrides_nested_beyond_reason_are_an_error_not_a_crash() -> None:
    with pytest.raises(OtelstackError, match="nested too deeply"):
        parse_host_overrides("[" * 100_000 + "]" * 100_000)
