"""Lay the built programs out like the upstream release, for offline installs and minimal distributions.

Upstream (goreleaser, split checksums): ``otelcol-contrib_<v>_linux_<arch>.tar.gz`` holding the
``otelcol-contrib`` binary, the plain binary ``opampsupervisor_<v>_linux_<arch>``, and beside each
artefact ``<artefact>.sha256`` with the bare hex digest. The roles install from such a directory with
``otel_collector_mirror_url: file:///…`` exactly as from the upstream release, and ``SHA256SUMS`` lists
every artefact of the directory: the pins such a mirror's installs are verified against.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from collections.abc import Sequence
from pathlib import Path

from otelstack.catalog.versions import opampsupervisor, otelcol_contrib
from otelstack.dist.build import Built
from otelstack.dist.checksums import write_sums
from otelstack.dist.manifest import excluded, pins

FIXED_MTIME = 0  # reproducible archives: the same binary gives the same archive and checksum


def _readme(collector: Built) -> bytes:
    lines = [
        f"# otelcol-contrib {collector.version} — otelstack distribution",
        "",
        "Built with the OpenTelemetry Collector Builder from the published Go modules; it holds the",
        "components otelstack renders (`otelcol-contrib components` lists them):",
        "",
        *(
            f"- {p.kind} `{p.type}`: {p.gomod}" + (f" ({p.note})" if p.note else "")
            for p in pins(release=collector.version)
            if not any(line.startswith(f"{p.module}:") for line in collector.left_out)
        ),
    ]
    left_out = [f"- {c.kind} `{c.type}`: {c.module_note}" for c in excluded()]
    left_out += [f"- {line}" for line in collector.left_out]
    if left_out:
        lines += ["", "Left out or taken at another version:", "", *left_out]
    lines += ["", "The components are Apache-2.0 licensed by their authors.", ""]
    return "\n".join(lines).encode()


def _sha256_file(path: Path) -> Path:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    checksum = Path(f"{path}.sha256")
    checksum.write_text(digest + "\n", encoding="utf-8")
    return checksum


def _write_atomically(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.chmod(mode)
    os.replace(tmp, path)


def package(built: Sequence[Built], out: Path, arch: str) -> list[Path]:
    """Write the archives and checksum files into ``out``; returns every file written."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    by_name = {b.name: b for b in built}
    written: list[Path] = []
    collector = by_name["otelcol-contrib"]
    release = otelcol_contrib()
    buffer = io.BytesIO()
    # gzip stamps its header with the time unless told otherwise: fix it for reproducible archives
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=FIXED_MTIME, filename="", compresslevel=6) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name, data, mode in (
            (release.binary, collector.path.read_bytes(), 0o755),
            ("README.md", _readme(collector), 0o644),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, FIXED_MTIME
            tar.addfile(info, io.BytesIO(data))
    archive = out / release.archive.format(version=collector.version, arch=arch)
    _write_atomically(archive, buffer.getvalue())
    written += [archive, _sha256_file(archive)]
    supervisor = by_name["opampsupervisor"]
    plain = out / opampsupervisor().archive.format(version=supervisor.version, arch=arch)
    _write_atomically(plain, supervisor.path.read_bytes(), 0o755)
    written += [plain, _sha256_file(plain)]
    written.append(write_sums(out))
    return written
