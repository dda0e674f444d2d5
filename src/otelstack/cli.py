"""Command line: ``otelstack plan``, ``render``, ``validate``, ``sizing`` (and the OpAMP commands)."""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from otelstack import __version__
from otelstack.errors import OtelstackError
from otelstack.model.loader import load_spec
from otelstack.render import PROFILES, VARIANTS, render_collector, render_platform, render_supervisor_for
from otelstack.sizing import size_platform, sizing_markdown
from otelstack.validate.collector import run_otelcol_validate, validate_collector_config

DEFAULT_CONFIGS = Path("configs")
# Sub-command groups living beside the core (each module has ``register(subparsers)``).
PLUGGABLE_COMMANDS = ("otelstack.opamp.cli",)


def _progress(enabled: bool) -> object:
    start = time.monotonic()

    def note(message: str) -> None:
        if enabled:
            print(f"  [{time.monotonic() - start:5.1f}s] {message}", file=sys.stderr, flush=True)

    return note


def cmd_plan(args: argparse.Namespace) -> int:
    started = time.monotonic()
    where = args.env + (f"/{args.region}" if args.region else "")
    print(f"otelstack {__version__}: planning {where} from {args.configs}", file=sys.stderr)
    result = render_platform(args.configs, args.env, args.region, progress=_progress(not args.quiet))  # type: ignore[arg-type]
    out = Path(args.out) if args.out else Path("build") / (args.env + (f"-{args.region}" if args.region else ""))
    _write_atomically(out, result.files)
    sizing = size_platform(result.spec)
    print(f"wrote {len(result.files)} files to {out}/ in {time.monotonic() - started:.2f}s")
    print(
        f"  collector configs: {sum(1 for f in result.files if f.startswith('collector/'))} "
        f"({len(PROFILES)} profiles × {len(VARIANTS)} variants), "
        f"supervisor configs: {sum(1 for f in result.files if f.startswith('supervisor/'))}"
    )
    print(
        f"  gateways: {sizing.gateway.replicas} × {sizing.gateway.cpu_limit:g} CPU / "
        f"{sizing.gateway.memory_limit_mib} MiB; agents: {sizing.agent.replicas}"
    )
    for warning in result.warnings:
        print(f"  warning: {warning}")
    if not result.binary_checked:
        print("  note: otelcol-contrib not on PATH; configs checked by otelstack's validator only")
    return 0


def _write_atomically(out: Path, files: dict[str, str]) -> None:
    """Write into a sibling directory, then swap it in: a failed plan never leaves half a tree."""
    staging = out.with_name(out.name + ".tmp")
    if staging.exists():
        shutil.rmtree(staging)
    for rel, content in files.items():
        path = staging / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    if out.exists():
        old = out.with_name(out.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        out.rename(old)
        staging.rename(out)
        shutil.rmtree(old)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(out)


def cmd_render(args: argparse.Namespace) -> int:
    spec = load_spec(args.configs, args.env, args.region)
    if args.supervisor:
        sys.stdout.write(render_supervisor_for(spec, args.profile).text)
    else:
        sys.stdout.write(render_collector(spec, args.profile, args.variant).text)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    failed = 0
    for file in args.files:
        path = Path(file)
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            print(f"{path}: cannot read as YAML: {exc}", file=sys.stderr)
            failed += 1
            continue
        findings = validate_collector_config(config, source=str(path), insecure_allowed=args.allow_insecure)
        errors = [f for f in findings if f.severity == "error"]
        for finding in findings:
            print(str(finding), file=sys.stderr)
        real = run_otelcol_validate(path.read_text(encoding="utf-8"))
        real_failed = real is not None and not real[0]
        if real is not None and real_failed:
            print(f"{path}: otelcol-contrib validate failed:\n{real[1]}", file=sys.stderr)
        if errors or real_failed:
            failed += 1
        else:
            print(f"{path}: ok" + ("" if real is None else " (otelcol-contrib validate: ok)"))
    return 1 if failed else 0


def cmd_sizing(args: argparse.Namespace) -> int:
    sys.stdout.write(sizing_markdown(size_platform(load_spec(args.configs, args.env, args.region))))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otelstack", description=__doc__)
    parser.add_argument("--version", action="version", version=f"otelstack {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def env_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--env", required=True, help="environment: a directory under configs/ (dev, staging, prod)")
        p.add_argument("--region", help="region: a directory under configs/ENV/")
        p.add_argument("--configs", type=Path, default=DEFAULT_CONFIGS, help="the hierarchy (default: ./configs)")

    p = sub.add_parser("plan", help="render and validate every artefact of an environment into build/ENV/")
    env_args(p)
    p.add_argument("--out", help="output directory (default: build/ENV or build/ENV-REGION)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("render", help="print one collector (or supervisor) config")
    env_args(p)
    p.add_argument("--profile", default="agent-vm", choices=sorted(PROFILES))
    p.add_argument("--variant", default="normal", choices=VARIANTS)
    p.add_argument("--supervisor", action="store_true", help="print the supervisor config for the profile")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("validate", help="validate collector config files (and run otelcol-contrib if on PATH)")
    p.add_argument("files", nargs="+")
    p.add_argument("--allow-insecure", action="store_true", help="permit plaintext hops (dev only)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("sizing", help="print the sizing report of an environment")
    env_args(p)
    p.set_defaults(func=cmd_sizing)

    for module_name in PLUGGABLE_COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # Only "this command group is not installed" is tolerated, not a broken import inside it.
            if exc.name is None or not module_name.startswith(exc.name):
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except OtelstackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
