"""SHA256SUMS: written from a mirror's .sha256 files, read back into pins; malformed text is refused."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from otelstack.catalog import versions
from otelstack.dist.checksums import ChecksumsError, format_sums, parse_sums, write_sums

A, B = "a" * 64, "b" * 64


def test_round_trip_in_sha256sum_format() -> None:
    sums = {"x.tar.gz": A, "y": B}
    assert format_sums(sums) == f"{A}  x.tar.gz\n{B}  y\n"
    assert parse_sums(format_sums(sums)) == sums
    # sha256sum's binary marker, upper case digests, comments and blank lines
    assert parse_sums(f"# pins\n\n{A.upper()} *x.tar.gz\n") == {"x.tar.gz": A}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc  x\n", "SHA256SUMS:1: not '<64 hex digits>  <file name>'"),
        (f"{A}\n", "SHA256SUMS:1: not '<64 hex digits>"),
        (f"{A}  x\n{B}  x\n", "SHA256SUMS:2: x is listed twice with different digests"),
    ],
)
def test_malformed_text_is_refused_with_its_line(text: str, message: str) -> None:
    with pytest.raises(ChecksumsError, match=message):
        parse_sums(text)


def test_write_sums_lists_the_artefacts_present_and_sha256sum_checks_it(tmp_path: Path) -> None:
    for name, data in (("a.tar.gz", b"one"), ("b", b"two")):
        (tmp_path / name).write_bytes(data)
        (tmp_path / f"{name}.sha256").write_text(hashlib.sha256(data).hexdigest() + "\n")
    (tmp_path / "gone.sha256").write_text(A + "\n")  # its artefact was removed: not listed
    write_sums(tmp_path)
    assert sorted(parse_sums((tmp_path / "SHA256SUMS").read_text())) == ["a.tar.gz", "b"]
    checked = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    (tmp_path / "b").write_bytes(b"tampered")
    assert subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path, capture_output=True).returncode != 0


def test_the_catalog_pins_are_digests_and_a_bad_one_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    release = versions.otelcol_contrib()
    assert release.pinned_sha256(release.archive_name("amd64")) is not None
    assert release.pinned_sha256(release.archive_name("arm64")) is None

    real = versions.catalog()
    bad = SimpleNamespace(artifacts={**real.artifacts, "sha256": {"x.tar.gz": "not-a-digest"}}, release=real.release)
    monkeypatch.setattr(versions, "catalog", lambda: bad)
    with pytest.raises(ValueError, match=r"not a lower-case SHA-256 digest for x\.tar\.gz"):
        versions.otelcol_contrib()
