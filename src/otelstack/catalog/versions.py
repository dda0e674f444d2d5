"""The version matrix: every pinned upstream release, in one place.

``otelcol-contrib`` and ``opampsupervisor`` share one release (from ``components.yaml``, where each
fact carries its upstream source). Roles and stacks read these values; nothing else pins a version.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from otelstack.catalog.components import catalog

ARCHES = ("amd64", "arm64")


@dataclass(frozen=True)
class Release:
    name: str
    version: str
    archive: str  # file name pattern with {version} and {arch}
    binary: str
    url_base: str  # with {version}
    sha256: Mapping[str, str] = field(default_factory=dict)  # artefact file name → pinned digest

    def pinned_sha256(self, file_name: str) -> str | None:
        """The catalog's pinned digest of an artefact, or None when the catalog vouches for none."""
        return self.sha256.get(file_name)

    def archive_name(self, arch: str) -> str:
        if arch not in ARCHES:
            raise ValueError(f"architecture {arch!r} is not published; allowed: {', '.join(ARCHES)}")
        return self.archive.format(version=self.version, arch=arch)

    def url(self, file_name: str) -> str:
        return self.url_base.format(version=self.version) + file_name


def _pins() -> dict[str, str]:
    pins = catalog().artifacts.get("sha256") or {}
    bad = [name for name, digest in pins.items() if not re.fullmatch(r"[0-9a-f]{64}", str(digest))]
    if bad:
        raise ValueError(f"catalog artifacts.sha256: not a lower-case SHA-256 digest for {', '.join(bad)}")
    return {str(name): str(digest) for name, digest in pins.items()}


def otelcol_contrib() -> Release:
    cat = catalog()
    art = cat.artifacts
    return Release(
        name="otelcol-contrib",
        version=str(cat.release["otelcol_contrib"]),
        archive=str(art["archive"]),
        binary=str(art["binary"]),
        url_base=str(art["url_base"]),
        sha256=_pins(),
    )


def opampsupervisor() -> Release:
    cat = catalog()
    art = cat.artifacts
    return Release(
        name="opampsupervisor",
        version=str(cat.release["opampsupervisor"]),
        archive=str(art["supervisor_archive"]),
        binary=str(art["supervisor_binary"]),
        url_base=str(art.get("supervisor_url_base", art["url_base"])),
        sha256=_pins(),
    )


def matrix() -> dict[str, str]:
    """Component → pinned version, for docs, roles and stacks."""
    return {r.name: r.version for r in (otelcol_contrib(), opampsupervisor())}


_RELEASE_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.]+))?")


def release_key(version: str) -> tuple[tuple[int, int, int], int, tuple[tuple[int, int | str], ...]] | None:
    """A sort key for an upstream release version (``0.159.0``, ``0.160.0-rc.1``); None for anything else.

    A pre-release sorts below its release (semver): ``0.160.0-rc.1`` < ``0.160.0``.
    """
    match = _RELEASE_VERSION.fullmatch(str(version).strip())
    if not match:
        return None
    core = (int(match[1]), int(match[2]), int(match[3]))
    pre = match[4]
    if pre is None:
        return core, 1, ()
    parts = tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))
    return core, 0, parts


def rollback_target(installed: list[str], active: str, previous: str = "") -> str:
    """The installed release a rollback returns to; empty when there is none.

    The release recorded as previous (the one the active link pointed at before its last switch) wins
    when it is installed and older than the active one. Otherwise the newest installed release older than
    the active one. Never a release at or above the active one: a rollback that rolls forward (to a
    release a failed, rescued upgrade left behind) is not a rollback. Names that are not release
    versions (stray directories) are ignored.
    """
    active_key = release_key(active)
    candidates = {v: k for v in map(str, installed) if (k := release_key(v)) is not None}
    if active_key is not None:
        candidates = {v: k for v, k in candidates.items() if k < active_key}
    else:
        # No (readable) active release: nothing to compare with, so nothing is "below" it. Only the
        # recorded previous release can be trusted.
        candidates = {v: k for v, k in candidates.items() if v == str(previous)}
    if previous and str(previous) in candidates:
        return str(previous)
    if not candidates:
        return ""
    return max(candidates, key=lambda v: candidates[v])
