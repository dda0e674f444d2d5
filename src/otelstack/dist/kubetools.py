"""The Kubernetes-side test programs and CRDs: kube-apiserver, etcd, the Pulumi CLI, its Python host and
the Kubernetes provider, built from their Go modules at the pins of ``catalog/kubernetes_tools.yaml``
(the machinery is ``otelstack.dist.gotools``); the pinned CRD files, read from their Go modules.

    ~/.cache/otelstack/kube/kube-apiserver-v1.37.2-<digest>-linux-<arch>/kube-apiserver   (and the others)
    ~/.cache/otelstack/kube/pulumi-v3.276.0-<digest>-linux-<arch>/pulumi-resource-pulumi-python

The last is no build: otelstack's launcher of Python dynamic providers (``otelstack.dist.dynamic_provider``),
written next to the built ``pulumi`` (where the engine looks for the plugins a CLI release bundles) and
linked with it.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from otelstack.dist import dynamic_provider
from otelstack.dist.build import BuildError, Note, cache_root, progress_printer
from otelstack.dist.gotools import (
    KUBERNETES,
    BuiltTool,
    Program,
    add_arguments,
    cmd_build,
    download,
    link_tools,
)
from otelstack.dist.gotools import build_tools as _build_tools
from otelstack.dist.gotools import program as _program
from otelstack.dist.gotools import programs as _programs

__all__ = [
    "BuiltTool",
    "build_tools",
    "crd_files",
    "link_tools",
    "program",
    "programs",
    "register",
    "tools_catalog",
    "with_launchers",
]


def tools_catalog() -> dict[str, Any]:
    return KUBERNETES.data()


def programs() -> list[Program]:
    return _programs(KUBERNETES)


def program(name: str) -> Program:
    return _program(name, KUBERNETES)


def build_tools(
    names: tuple[str, ...] | list[str] = (), root: Path | None = None, arch: str | None = None, note: Note | None = None
) -> list[BuiltTool]:
    return with_launchers(_build_tools(names, root, arch, note, KUBERNETES), note or (lambda _m: None))


def with_launchers(built: list[BuiltTool], note: Note) -> list[BuiltTool]:
    """The built programs, ``pulumi`` with the dynamic-provider launcher written next to it (an extra)."""
    out = []
    for item in built:
        if item.name == dynamic_provider.NEXT_TO:
            launcher = dynamic_provider.write_launcher(item.path.parent, note)
            item = replace(item, extras=(*item.extras, launcher))
        out.append(item)
    return out


# --- CRDs --------------------------------------------------------------------------------------------------


def crd_files(root: Path | None = None, note: Note | None = None) -> list[Path]:
    """The pinned CRD files (cert-manager, OpenTelemetry Operator) from the Go module cache, downloading
    the modules when needed."""
    crds = tools_catalog().get("crds") or {}
    wanted = {name: f"{c['module']}@{c['version']}" for name, c in crds.items()}
    docs = download(sorted(set(wanted.values())), (root or cache_root()) / "src", note or (lambda _m: None))
    files: list[Path] = []
    for name, key in wanted.items():
        directory = Path(docs[key]["Dir"]) / str(crds[name]["dir"])
        found = sorted(directory.glob("*.yaml"))
        if not found:
            raise BuildError(f"CRDs {name}: {key} has no YAML files under {crds[name]['dir']}")
        files += found
    return files


# --- command line ------------------------------------------------------------------------------------------


def cmd_kubetools(args: argparse.Namespace) -> int:
    cmd_build(args, KUBERNETES, "Kubernetes test programs", with_launchers)
    if args.crds:
        note = progress_printer() if not args.quiet else (lambda _m: None)
        for path in crd_files(args.cache or cache_root(), note):
            print(f"crd {path}")
    return 0


def register(dist: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    k = dist.add_parser(
        "kubetools",
        help="build kube-apiserver, etcd, the Pulumi CLI, its Python host and the Kubernetes provider (cached)",
    )
    add_arguments(k, KUBERNETES)
    k.add_argument("--crds", action="store_true", help="also fetch the pinned CRD modules and print the CRD files")
    k.set_defaults(func=cmd_kubetools)
