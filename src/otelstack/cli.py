"""Command line: ``otelstack plan``, ``render``, ``validate``, ``sizing`` (and the OpAMP commands)."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from otelstack import __version__
from otelstack.errors import OtelstackError
from otelstack.model.loader import load_spec
from otelstack.render import PROFILES, VARIANTS, render_collector, render_platform, render_supervisor_for
from otelstack.sizing import size_platform, sizing_markdown
from otelstack.validate.binary import missing_secrets, run_otelcol_validate
from otelstack.validate.collector import validate_collector_config

DEFAULT_CONFIGS = Path("configs")
# Sub-command groups living beside the core (each module has ``register(subparsers)``).
PLUGGABLE_COMMANDS = ("otelstack.opamp.cli", "otelstack.dist.cli")


def _progress(enabled: bool) -> object:
    start = time.monotonic()

    def note(message: str) -> None:
        if enabled:
            print(f"  [{time.monotonic() - start:5.1f}s] {message}", file=sys.stderr, flush=True)

    return note


def cmd_plan(args: argparse.Namespace) -> int:
    started = time.monotonic()
    where = args.env + (f"/{args.region}" if args.region else "")
    out = (
        Path(args.out)
        if args.out is not None
        else Path("build") / (args.env + (f"-{args.region}" if args.region else ""))
    )
    with PlanOutput(out, args.configs) as target:
        if not args.quiet:
            print(f"otelstack {__version__}: planning {where} from {args.configs}", file=sys.stderr)
        result = render_platform(args.configs, args.env, args.region, progress=_progress(not args.quiet))  # type: ignore[arg-type]
        target.commit(result.files, {"env": args.env, "region": args.region})
    # Validator warnings are findings about the user's spec: they are shown even with --quiet (stderr).
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.quiet:
        return 0
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
    if result.binary is None:
        print(
            "  note: no otelcol-contrib found (`make binaries` or `otelstack dist build` builds it); "
            "configs checked by otelstack's validator only"
        )
    else:
        print(f"  every collector config passed `otelcol-contrib validate` ({result.binary})")
    k8s = sum(1 for f in result.files if f.startswith("k8s/"))
    if k8s:
        print(f"  kubernetes: {k8s} component files in k8s/")
    backends = sorted({f.split("/", 1)[0] for f in result.files if f.split("/", 1)[0] in BACKEND_DIRS})
    if backends:
        print(f"  backends: {', '.join(backends)} (checked by promtool, amtool and chDB where installed)")
    for line in result.notes:
        print(f"  note: {line.removeprefix('note: ')}")
    return 0


BACKEND_DIRS = ("alertmanager", "clickhouse", "grafana", "loki", "prometheus", "tempo")


# --- the plan's output directory --------------------------------------------------------------------
#
# `plan` replaces its output directory whole, so it only ever replaces a directory it wrote itself: one
# holding PLAN_MARKER (and nothing but the files that marker lists), or an empty one. Anything else is
# refused before a byte is written. The new tree is written into a fresh staging directory beside the
# output (tempfile.mkdtemp: a unique hidden name, never a user's DIR.tmp) and renamed into place; the
# previous plan is renamed aside under another unique name and removed after the swap.

PLAN_MARKER = ".otelstack-plan"
PLAN_TOOL = "otelstack"


class PlanOutputError(OtelstackError):
    """The --out target cannot be (re)placed by `plan`; nothing was written."""


def _refused(out: Path, why: str, todo: str = "") -> PlanOutputError:
    return PlanOutputError(
        f"--out {out}: {why}; plan only replaces a directory it wrote itself (one holding {PLAN_MARKER}). "
        + (todo or "Choose a new or empty directory, or remove this one yourself.")
        + " Nothing was written."
    )


def _listing(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(sorted(names)[:limit])
    return shown + (f", … ({len(names)} in all)" if len(names) > limit else "")


def read_plan_marker(directory: Path) -> dict[str, Any]:
    """The marker `plan` leaves in its output directory; PlanOutputError when it is absent or not otelstack's."""
    marker = directory / PLAN_MARKER
    if marker.is_symlink() or not marker.is_file():
        raise FileNotFoundError(marker)
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _refused(directory, f"its {PLAN_MARKER} cannot be read ({exc})") from exc
    files = data.get("files") if isinstance(data, dict) else None
    if (
        not isinstance(data, dict)
        or data.get("tool") != PLAN_TOOL
        or not isinstance(files, list)
        or not all(isinstance(f, str) for f in files)
    ):
        raise _refused(directory, f"its {PLAN_MARKER} was not written by otelstack plan")
    return data


def check_plan_output(out: Path, configs: Path) -> None:
    """Raise PlanOutputError unless `plan` may write ``out``: a new path, an empty directory, or a
    directory an earlier plan wrote that holds nothing else."""
    if out.is_symlink():
        raise _refused(
            out,
            f"is a symbolic link to {os.readlink(out)}",
            "Give a real directory (a new or empty one, or a previous plan), not a link to one.",
        )
    try:
        target = out.resolve()
        cwd = Path.cwd().resolve()
        configs_dir = configs.resolve()
    except (OSError, RuntimeError) as exc:
        raise PlanOutputError(f"--out {out}: cannot resolve the path: {exc}") from exc
    if target == target.parent:
        raise _refused(out, "is the root directory", "Choose a new or empty directory, such as build/ENV.")
    if target == cwd:
        raise _refused(out, "is the current directory", "Choose a new or empty directory, such as build/ENV.")
    if target in cwd.parents:
        raise _refused(out, "contains the current directory", "Choose a new or empty directory, such as build/ENV.")
    if target == configs_dir or configs_dir in target.parents:
        raise _refused(out, f"is inside the configs directory ({configs})", "Choose a directory outside it.")
    if target in configs_dir.parents:
        raise _refused(out, f"contains the configs directory ({configs})", "Choose a directory outside it.")
    if not out.exists():
        ancestor = Path(os.path.abspath(out)).parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise PlanOutputError(f"--out {out}: cannot create it: {ancestor} is not a directory. Nothing was written.")
        return
    if not out.is_dir():
        raise _refused(out, "is a file, not a directory", "Choose a new or empty directory.")
    try:
        entries = sorted(p.name for p in out.iterdir())
    except OSError as exc:
        raise PlanOutputError(f"--out {out}: cannot list it: {exc.strerror or exc}. Nothing was written.") from exc
    if not entries:
        return
    try:
        marker = read_plan_marker(out)
    except FileNotFoundError:
        raise _refused(
            out, f"is a directory otelstack did not write (it holds {_listing(entries)}; no {PLAN_MARKER})"
        ) from None
    listed = {str(Path(f)) for f in marker["files"]} | {PLAN_MARKER}
    allowed_dirs = {str(parent) for f in listed for parent in Path(f).parents if str(parent) != "."}
    foreign: list[str] = []

    def unreadable(exc: OSError) -> None:
        raise exc

    try:
        for root, dirs, names in os.walk(out, onerror=unreadable):
            base = Path(root).relative_to(out)
            descend = []
            for name in dirs:
                rel = base / name
                if (out / rel).is_symlink() or str(rel) not in allowed_dirs:
                    foreign.append(f"{rel}/")
                else:
                    descend.append(name)
            dirs[:] = descend
            foreign += [str(base / n) for n in names if str(base / n) not in listed or (out / base / n).is_symlink()]
    except OSError as exc:
        raise PlanOutputError(
            f"--out {out}: cannot list {exc.filename}: {exc.strerror or exc}. Nothing was written."
        ) from exc
    if foreign:
        raise _refused(
            out,
            f"holds files otelstack plan did not write: {_listing(foreign)}",
            "Move them out of it, choose another directory, or remove this one yourself.",
        )


class PlanOutput:
    """``with PlanOutput(out, configs) as target: …; target.commit(files, info)`` — checks ``out`` and
    creates the staging directory on entry (a refused or unwritable --out fails before anything is
    rendered); on exit everything it created that is not the committed plan is removed."""

    def __init__(self, out: Path, configs: Path) -> None:
        self.out = out
        self.configs = configs
        self.parent = Path(os.path.abspath(out)).parent
        self.staging: Path | None = None
        self.created: list[Path] = []

    def _os_error(self, exc: OSError) -> PlanOutputError:
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(self.out) else ""
        return PlanOutputError(
            f"cannot write the plan to {self.out}: {exc.strerror or exc}{where}. Nothing was written."
        )

    def __enter__(self) -> PlanOutput:
        check_plan_output(self.out, self.configs)
        try:
            missing = [p for p in [self.parent, *self.parent.parents] if not p.exists()]
            for directory in reversed(missing):
                directory.mkdir()
                self.created.append(directory)
        except OSError as exc:
            self._cleanup()
            raise self._os_error(exc) from exc
        try:
            self.staging = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.plan-", dir=self.parent))
        except OSError as exc:
            self._cleanup()
            raise PlanOutputError(
                f"cannot write the plan to {self.out}: cannot create a directory in {self.parent}: "
                f"{exc.strerror or exc}. Nothing was written."
            ) from exc
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging = None
        for directory in reversed(self.created):
            with contextlib.suppress(OSError):
                directory.rmdir()
        self.created = []

    def commit(self, files: dict[str, str], info: dict[str, Any]) -> None:
        """Write ``files`` and the marker into the staging directory, then rename it to ``out``."""
        assert self.staging is not None, "commit() outside the with block"
        staging = self.staging
        marker = {"tool": PLAN_TOOL, "version": __version__, **info, "files": sorted(files)}
        try:
            for rel, content in files.items():
                path = staging / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content, encoding="utf-8")
            (staging / PLAN_MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
            check_plan_output(self.out, self.configs)  # again: it may have changed while rendering
            if self.out.is_dir():
                os.chmod(staging, stat.S_IMODE(self.out.stat().st_mode))
                old = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.old-", dir=self.parent))
                os.rename(self.out, old)  # onto the empty directory mkdtemp made: a unique name
                try:
                    os.rename(staging, self.out)
                except OSError:
                    try:
                        os.rename(old, self.out)
                    except OSError as exc:
                        raise PlanOutputError(
                            f"cannot put the previous plan back at {self.out}: {exc.strerror or exc}; it is in {old}"
                        ) from exc
                    raise
                self.staging = None
                self.created = []
                try:
                    shutil.rmtree(old)
                except OSError as exc:
                    print(f"warning: the previous plan is left at {old}: {exc.strerror or exc}", file=sys.stderr)
            else:
                umask = os.umask(0)
                os.umask(umask)
                os.chmod(staging, 0o777 & ~umask)
                os.rename(staging, self.out)
                self.staging = None
                self.created = []
        except OSError as exc:
            raise self._os_error(exc) from exc


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
            text = path.read_text(encoding="utf-8")
            config = yaml.safe_load(text)
        except UnicodeDecodeError as exc:
            print(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})", file=sys.stderr)
            failed += 1
            continue
        except (OSError, yaml.YAMLError) as exc:
            print(f"{path}: cannot read as YAML: {exc}", file=sys.stderr)
            failed += 1
            continue
        findings = validate_collector_config(config, source=str(path), insecure_allowed=args.allow_insecure)
        errors = [f for f in findings if f.severity == "error"]
        for finding in findings:
            print(str(finding), file=sys.stderr)
        missing = missing_secrets(text) if args.require_secrets else []
        for line in missing:
            print(f"{path}: {line}", file=sys.stderr)
        real = run_otelcol_validate(text)
        real_failed = real is not None and not real.ok
        if real is not None and real_failed:
            print(f"{path}: otelcol-contrib validate failed:\n{real.output}", file=sys.stderr)
        if errors or real_failed or missing:
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
        p.add_argument(
            "--configs",
            type=Path,
            default=DEFAULT_CONFIGS,
            help="the configs/ hierarchy (default: ./configs, so give --configs DIR outside the repository's root)",
        )

    p = sub.add_parser("plan", help="render and validate every artefact of an environment into build/ENV/")
    env_args(p)
    p.add_argument(
        "--out",
        help="output directory (default: build/ENV or build/ENV-REGION): a new or empty directory, or one an "
        f"earlier plan wrote (it holds {PLAN_MARKER}); anything else is refused",
    )
    p.add_argument("--quiet", action="store_true", help="print only errors and warnings (exit status 0: written)")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("render", help="print one collector (or supervisor) config")
    env_args(p)
    p.add_argument("--profile", default="agent-vm", choices=sorted(PROFILES))
    p.add_argument("--variant", default="normal", choices=VARIANTS)
    p.add_argument("--supervisor", action="store_true", help="print the supervisor config for the profile")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("validate", help="validate collector config files (also with the real otelcol-contrib)")
    p.add_argument("files", nargs="+")
    p.add_argument("--allow-insecure", action="store_true", help="permit plaintext hops (dev only)")
    p.add_argument(
        "--require-secrets",
        action="store_true",
        help="fail when a ${env:NAME} the config references is unset or a ${file:/path} is unreadable here "
        "(without it, secrets get placeholder values for the check)",
    )
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
    except OSError as exc:
        # What the commands do not turn into an OtelstackError themselves: still one line, no traceback.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
