"""A damaged collector release in an offline mirror, for the upgrade scenario's failed-upgrade test.

    python -m tests.lab.damaged_release --mirror DIR [--version VERSION]

Writes ``otelcol-contrib_<VERSION>_linux_<arch>.tar.gz`` and its ``.sha256`` next to the pinned release's
archive in DIR (the output of ``otelstack dist package``): the same layout, with the real pinned binary cut
short, so the checksum matches and the install succeeds, but the program cannot run — a broken build
published with its checksum. VERSION defaults to the release after the pinned one.

The real programs cannot produce a release that validates a config and then dies on start; a release
whose binary cannot run at all is the failure the health gate meets first with real programs.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import tarfile
from pathlib import Path

from otelstack.catalog.versions import otelcol_contrib
from otelstack.dist.build import host_arch
from otelstack.dist.checksums import write_sums

KEEP_BYTES = 64 * 1024  # an ELF header and the start of the text: exec fails, the checksum still matches


def following(version: str) -> str:
    major, minor, patch = (int(p) for p in version.split("."))
    return f"{major}.{minor + 1}.{patch}"


def damage(mirror: Path, version: str, arch: str) -> Path:
    release = otelcol_contrib()
    source = mirror / release.archive.format(version=release.version, arch=arch)
    if not source.is_file():
        raise SystemExit(f"{source} is missing: run `otelstack dist package --out {mirror}` first")
    with tarfile.open(source, "r:gz") as tar:
        member = tar.extractfile(release.binary)
        if member is None:
            raise SystemExit(f"{source} holds no {release.binary}")
        binary = member.read(KEEP_BYTES)
    readme = f"otelcol-contrib {version}: damaged on purpose (cut short) for upgrade tests.\n".encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data, mode in ((release.binary, binary, 0o755), ("README.md", readme, 0o644)):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    archive = mirror / release.archive.format(version=version, arch=arch)
    archive.write_bytes(buffer.getvalue())
    Path(f"{archive}.sha256").write_text(hashlib.sha256(buffer.getvalue()).hexdigest() + "\n", encoding="utf-8")
    write_sums(mirror)
    return archive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mirror", type=Path, required=True, help="directory written by `otelstack dist package`")
    parser.add_argument("--version", help="version of the damaged release (default: the one after the pinned one)")
    args = parser.parse_args()
    version = args.version or following(otelcol_contrib().version)
    print(f"damaged release (cannot run): {damage(args.mirror, version, host_arch())}")


if __name__ == "__main__":
    main()
