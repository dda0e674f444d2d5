"""File descriptors: every WebSocket agent holds one, so the server's connection limit must fit the
process's open-file limit.

At start the server raises its soft RLIMIT_NOFILE to the hard limit (as Go programs do) and lowers
``limits.max_connections`` to what the descriptors allow, saying so. When descriptors run out anyway
(a flood of new connections), asyncio's accept loop would log every failed accept — millions of lines
a minute; the exception handler here logs that once per interval instead and counts the rest.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import time
from typing import Any

log = logging.getLogger("otelstack.opamp")

# Descriptors kept for what is not an agent: the listening sockets, the SQLite database and its WAL,
# TLS files, logs, the REST API's own requests.
RESERVED = 64
CEILING = 1 << 20


def open_files_limit() -> int:
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return CEILING if soft == resource.RLIM_INFINITY else soft


def raise_open_files_limit() -> int:
    """Raise the soft open-file limit to the hard one (at most 2**20); the soft limit in force after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = CEILING if hard == resource.RLIM_INFINITY else min(hard, CEILING)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
    return open_files_limit()


def connection_limit(configured: int, open_files: int) -> int:
    """limits.max_connections, lowered to what `open_files` descriptors allow (with a warning)."""
    allowed = max(open_files - RESERVED, 1)
    if configured <= allowed:
        return configured
    log.warning(
        "limits.max_connections is %d but this process may open only %d files: serving at most %d "
        "connections; raise LimitNOFILE (systemd) or ulimit -n, or lower limits.max_connections",
        configured,
        open_files,
        allowed,
    )
    return allowed


class AcceptErrorThrottle:
    """A loop exception handler that reports running out of descriptors once per `interval` seconds."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self.suppressed = 0
        self._last = -interval

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if not (isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE)):
            loop.default_exception_handler(context)
            return
        now = time.monotonic()
        if now - self._last < self.interval:
            self.suppressed += 1
            return
        log.error(
            "out of file descriptors (%s): new connections wait until some close%s; raise LimitNOFILE "
            "or lower limits.max_connections",
            exc.strerror,
            f" ({self.suppressed} more since the last report)" if self.suppressed else "",
        )
        self._last, self.suppressed = now, 0
