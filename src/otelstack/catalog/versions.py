"""The version matrix: every pinned upstream release, in one place.

``otelcol-contrib`` and ``opampsupervisor`` share one release (from ``components.yaml``, where each
fact carries its upstream source). Roles and stacks read these values; nothing else pins a version.
"""

from __future__ import annotations

from dataclasses import dataclass

from otelstack.catalog.components import catalog

ARCHES = ("amd64", "arm64")


@dataclass(frozen=True)
class Release:
    name: str
    version: str
    archive: str  # file name pattern with {version} and {arch}
    checksums: str  # checksum file name pattern with {artifact} (one file per artefact, bare hex digest)
    binary: str
    url_base: str  # with {version}

    def archive_name(self, arch: str) -> str:
        if arch not in ARCHES:
            raise ValueError(f"architecture {arch!r} is not published; allowed: {', '.join(ARCHES)}")
        return self.archive.format(version=self.version, arch=arch)

    def checksums_name(self, arch: str) -> str:
        return self.checksums.format(artifact=self.archive_name(arch))

    def url(self, file_name: str) -> str:
        return self.url_base.format(version=self.version) + file_name


def otelcol_contrib() -> Release:
    cat = catalog()
    art = cat.artifacts
    return Release(
        name="otelcol-contrib",
        version=str(cat.release["otelcol_contrib"]),
        archive=str(art["archive"]),
        checksums=str(art["checksums"]),
        binary=str(art["binary"]),
        url_base=str(art["url_base"]),
    )


def opampsupervisor() -> Release:
    cat = catalog()
    art = cat.artifacts
    return Release(
        name="opampsupervisor",
        version=str(cat.release["opampsupervisor"]),
        archive=str(art["supervisor_archive"]),
        checksums=str(art.get("supervisor_checksums", art["checksums"])),
        binary=str(art["supervisor_binary"]),
        url_base=str(art.get("supervisor_url_base", art["url_base"])),
    )


def matrix() -> dict[str, str]:
    """Component → pinned version, for docs, roles and stacks."""
    return {r.name: r.version for r in (otelcol_contrib(), opampsupervisor())}
