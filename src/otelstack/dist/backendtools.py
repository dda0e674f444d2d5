"""The backends' programs the tests run: Prometheus and promtool, Alertmanager and amtool, built from their
Go modules at the pins of ``catalog/backend_tools.yaml`` (the machinery is ``otelstack.dist.gotools``).

    otelstack dist backendtools --link .cache/bin     (part of `make binaries`)
    ~/.cache/otelstack/backend/prometheus-v3.16.0-<digest>-linux-<arch>/prometheus   (and the others)
"""

from __future__ import annotations

import argparse

from otelstack.dist.gotools import BACKENDS, Program, add_arguments, cmd_build, programs


def backend_programs() -> list[Program]:
    return programs(BACKENDS)


def cmd_backendtools(args: argparse.Namespace) -> int:
    return cmd_build(args, BACKENDS, "backend programs")


def register(dist: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    b = dist.add_parser(
        "backendtools", help="build prometheus, promtool, alertmanager and amtool from their Go modules (cached)"
    )
    add_arguments(b, BACKENDS)
    b.set_defaults(func=cmd_backendtools)
