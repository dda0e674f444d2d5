"""Find the real programs otelstack validates with: the build of this catalog first, then PATH.

Order: ``$OTELSTACK_OTELCOL`` / ``$OTELSTACK_SUPERVISOR`` (an explicit path), ``.cache/bin/<name>`` of the
current directory (a clone after ``make binaries``), the per-user build cache for the pinned release
(``otelstack dist build``), then ``<name>`` on PATH (an installed upstream release).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ENV = {"otelcol-contrib": "OTELSTACK_OTELCOL", "opampsupervisor": "OTELSTACK_SUPERVISOR"}


def _cached(name: str) -> Path | None:
    from otelstack.dist.build import Targets, cache_root, host_arch

    try:
        targets = Targets(cache_root(), host_arch())
    except Exception:  # an unsupported machine has no cache: fall through to PATH
        return None
    path = targets.collector() if name == "otelcol-contrib" else targets.supervisor()
    return path if path.is_file() else None


def locate(name: str) -> str | None:
    """Path of ``name`` (otelcol-contrib or opampsupervisor), or None when none is available."""
    if name not in ENV:
        raise ValueError(f"unknown program {name!r}; known: {', '.join(ENV)}")
    if explicit := os.environ.get(ENV[name]):
        if not os.access(explicit, os.X_OK):
            raise FileNotFoundError(f"${ENV[name]} is {explicit!r}, which is not an executable file")
        return explicit
    local = Path(".cache/bin") / name
    if local.exists() and os.access(local, os.X_OK):
        return str(local.resolve())
    cached = _cached(name)
    if cached is not None:
        return str(cached)
    return shutil.which(name)
