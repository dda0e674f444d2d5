"""Errors logged once: a failure that repeats for one agent (every heartbeat) costs one log line."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field

log = logging.getLogger("otelstack.opamp")


@dataclass
class OnceLog:
    """Logs an error once per key (with its traceback) and counts its repeats; a flood of one failure
    costs one log line."""

    limit: int = 1000
    seen: dict[str, int] = field(default_factory=dict)

    def error(self, key: str, message: str, *args: object) -> None:
        if key in self.seen:
            self.seen[key] += 1
            return
        if len(self.seen) >= self.limit:
            self.seen.clear()
        self.seen[key] = 1
        log.error(message + " (logged once; repeats are not logged)", *args, exc_info=sys.exc_info()[0] is not None)

    def failure(self, where: str, exc: BaseException, message: str, *args: object) -> None:
        """``error`` keyed by where it happened and the error itself (so a new error is logged too)."""
        self.error(f"{where}:{type(exc).__name__}:{str(exc)[:200]}", message, *args)

    def repeats(self, key: str) -> int:
        return self.seen.get(key, 0)
