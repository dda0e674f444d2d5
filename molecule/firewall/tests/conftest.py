"""Hosts of the firewall scenario: molecule's podman containers, reached with `podman exec`."""

from __future__ import annotations

import functools
import json

import testinfra

# One probe script per source host: connects to every (address, port) at once and reports, for each,
# `open`, `timeout` (the SYN was dropped) or `refused` (nothing listens there).
PROBE = """
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
def probe(target):
    address, port = target
    try:
        socket.create_connection((address, port), timeout=3).close()
        return "open"
    except TimeoutError:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
targets = json.loads(sys.argv[1])
with ThreadPoolExecutor(len(targets)) as pool:
    print(json.dumps(list(pool.map(probe, targets))))
"""


def host(name: str):  # type: ignore[no-untyped-def]
    return testinfra.get_host(f"podman://{name}")


@functools.cache
def address(name: str) -> str:
    """The host's IPv4 address on the scenario's network (what the firewall role took from its facts)."""
    return str(host(name).check_output("ip -4 -o route get 1.1.1.1").split(" src ")[1].split()[0])


def probe(source: str, targets: list[tuple[str, int]]) -> dict[tuple[str, int], str]:
    """Outcome of a connection from `source` to each (host name, port); a host probing itself uses 127.0.0.1."""
    pairs = [("127.0.0.1" if name == source else address(name), port) for name, port in targets]
    out = host(source).check_output("python3 -c %s %s", PROBE, json.dumps(pairs))
    return dict(zip(targets, json.loads(out), strict=True))
