"""Build the stand-in release artefacts in the upstream layout, for the lab and CI only.

    python -m tests.standins.build --out DIR [--version V ...]

writes, per version and this machine's architecture, exactly the file names of the pinned release:
``otelcol-contrib_<v>_linux_<arch>.tar.gz`` (holding ``otelcol-contrib``), the plain binary
``opampsupervisor_<v>_linux_<arch>``, and one ``<artefact>.sha256`` per artefact (bare hex digest, as
goreleaser's split checksums). The programs inside are stand-ins and say so (see their docstrings);
each is one executable file, a Python zip application holding the program and the modules it imports
(shared.py, and opamp_wire.py for the supervisor), like the single static binaries upstream ships.
Default versions: the pinned release and one before it, so upgrade and rollback can be exercised;
``--broken V`` adds a version whose collector validates configs but exits on start.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import platform
import tarfile
import zipfile
from pathlib import Path

from otelstack.catalog.versions import opampsupervisor, otelcol_contrib

HERE = Path(__file__).parent
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "amd64": "amd64"}[platform.machine().lower()]


def previous(version: str) -> str:
    major, minor, patch = (int(p) for p in version.split("."))
    return f"{major}.{minor - 1}.{patch}"


def following(version: str) -> str:
    major, minor, patch = (int(p) for p in version.split("."))
    return f"{major}.{minor + 1}.{patch}"


# program -> the modules of this directory it imports
MODULES = {"otelcol_contrib.py": ["shared.py"], "opampsupervisor.py": ["shared.py", "opamp_wire.py"]}


def program(name: str, version: str, broken: bool = False) -> bytes:
    """An executable zip application: `#!/usr/bin/env python3`, then a zip whose __main__.py is the program."""
    text = (HERE / name).read_text(encoding="utf-8").replace("@VERSION@", version)
    text = text.replace("@BROKEN@", "yes" if broken else "no")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        members = [("__main__.py", text), *((m, (HERE / m).read_text(encoding="utf-8")) for m in MODULES[name])]
        for member, data in members:
            zf.writestr(zipfile.ZipInfo(member, date_time=(2026, 1, 1, 0, 0, 0)), data)
    return b"#!/usr/bin/env python3\n" + buffer.getvalue()


def write_checksum(path: Path) -> None:
    Path(f"{path}.sha256").write_text(hashlib.sha256(path.read_bytes()).hexdigest(), encoding="utf-8")


def build(out: Path, version: str, broken: bool = False) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    collector = otelcol_contrib()
    archive = out / collector.archive.format(version=version, arch=ARCH)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data, mode in (
            (collector.binary, program("otelcol_contrib.py", version, broken), 0o755),
            ("README.md", b"otelstack STAND-IN archive for tests; not the OpenTelemetry release.\n", 0o644),
            ("LICENSE", b"Apache-2.0 (stand-in)\n", 0o644),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    archive.write_bytes(buffer.getvalue())
    supervisor = out / opampsupervisor().archive.format(version=version, arch=ARCH)
    supervisor.write_bytes(program("opampsupervisor.py", version))
    supervisor.chmod(0o755)
    for artefact in (archive, supervisor):
        write_checksum(artefact)
    return [archive, supervisor]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--version", action="append", help="default: the pinned release and the one before")
    parser.add_argument(
        "--broken",
        action="append",
        default=[],
        help="a version whose collector dies on start ('next': the one after the pinned release)",
    )
    args = parser.parse_args()
    pinned = otelcol_contrib().version
    for version in args.version or [pinned, previous(pinned)]:
        for path in build(args.out, version):
            print(f"stand-in artefact: {path}")
    for version in args.broken:
        version = following(pinned) if version == "next" else version
        for path in build(args.out, version, broken=True):
            print(f"stand-in artefact (broken on start): {path}")


if __name__ == "__main__":
    main()
