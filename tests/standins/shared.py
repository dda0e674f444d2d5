"""Helpers both STAND-IN programs use (tests only). build.py packs this module into each program's
executable, so the programs need nothing on a host but Python 3 and PyYAML."""

from __future__ import annotations

import os
import sys
from typing import Any


def expand_env(text: str) -> str:
    """${env:NAME} → value (empty when unset), $$ → $ — as the collector and the supervisor do."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${env:", i) and "}" in text[i:]:
            end = text.index("}", i)
            out.append(os.environ.get(text[i + 6 : end], ""))
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Deep merge of config maps, the later file winning; lists are replaced (as the collector merges)."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def seconds(duration: str) -> float:
    """A Go duration as the configs write them (250ms, 30s, 5m, 1h) in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for suffix in ("ms", "s", "m", "h"):
        if duration.endswith(suffix):
            return float(duration[: -len(suffix)]) * units[suffix]
    return float(duration)


def say(program: str, message: str) -> None:
    print(f"{program}: {message}", file=sys.stderr, flush=True)
