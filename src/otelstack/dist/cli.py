"""`otelstack dist …`: build the pinned collector and supervisor from Go modules, package them.

otelstack dist manifest                 print the Collector Builder manifest generated from the catalog
otelstack dist build [--link DIR]       build both programs into the per-user cache (skipped when present)
otelstack dist package --out DIR        build if needed, then write the upstream archive layout + checksums
otelstack dist kubetools [--link DIR]   build kube-apiserver, etcd, the Pulumi CLI, its Python host and the
                                        Kubernetes provider (catalog/kubernetes_tools.yaml) into the cache
otelstack dist backendtools [--link DIR] build prometheus, promtool, alertmanager and amtool
                                        (catalog/backend_tools.yaml) into the cache
  --release VERSION|previous            the collector at another release ('previous': the one before the
                                        pinned one, to test upgrades); modules the Go proxy does not serve at that
                                        release are left out and named
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from otelstack.dist import backendtools, kubetools
from otelstack.dist.build import MANIFEST_HEADER, build_all, cache_root, host_arch, link, progress_printer
from otelstack.dist.manifest import builder_manifest, excluded
from otelstack.dist.package import package
from otelstack.yamlout import dump


def cmd_manifest(args: argparse.Namespace) -> int:
    sys.stdout.write(dump(builder_manifest(args.output_path), MANIFEST_HEADER))
    for comp in excluded():
        print(f"# left out: {comp.kind} {comp.type}: {comp.module_note}", file=sys.stderr)
    return 0


def _build(args: argparse.Namespace) -> list:  # type: ignore[type-arg]
    note = progress_printer() if not args.quiet else (lambda _m: None)
    arch = args.arch or host_arch()
    root = args.cache or cache_root()
    if not args.quiet:
        print(f"otelstack dist: collector and supervisor for linux/{arch} in {root}", file=sys.stderr)
    built = build_all(arch, root, note, args.release)
    for item in built:
        state = f"built in {item.seconds:.0f}s" if item.seconds else "cached"
        print(f"{item.name} {item.version} ({state}): {item.path}")
        for line in item.left_out:
            print(f"  {line}")
    return built


def cmd_build(args: argparse.Namespace) -> int:
    built = _build(args)
    if args.link:
        for path in link(built, args.link):
            print(f"linked {path}")
    return 0


def cmd_package(args: argparse.Namespace) -> int:
    built = _build(args)
    for path in package(built, args.out, args.arch or host_arch()):
        print(f"wrote {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("dist", help="build the pinned collector and supervisor from Go modules; package them")
    dist = p.add_subparsers(dest="dist_command", required=True)

    m = dist.add_parser("manifest", help="print the Collector Builder manifest generated from the catalog")
    m.add_argument("--output-path", default="./build", help="dist.output_path written into the manifest")
    m.set_defaults(func=cmd_manifest)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--arch", choices=["amd64", "arm64"], help="target architecture (default: this machine)")
        q.add_argument("--cache", type=Path, help="build cache (default: $OTELSTACK_CACHE or ~/.cache/otelstack)")
        q.add_argument("--quiet", action="store_true", help="no progress lines")
        q.add_argument(
            "--release",
            metavar="VERSION",
            help="build the collector at this release instead of the pinned one ('previous': the one before it, "
            "for upgrade tests); modules the Go proxy does not serve there are left out and named",
        )

    b = dist.add_parser("build", help="build both programs into the cache (skipped when present)")
    common(b)
    b.add_argument("--link", type=Path, help="symlink the programs into this directory (e.g. .cache/bin)")
    b.set_defaults(func=cmd_build)

    k = dist.add_parser("package", help="write the upstream archive layout with checksum files")
    common(k)
    k.add_argument("--out", type=Path, required=True, help="directory for the archives and .sha256 files")
    k.set_defaults(func=cmd_package)

    kubetools.register(dist)
    backendtools.register(dist)
