"""Build upstream Go programs from their Go modules, pinned in a catalog of programs.

One catalog per family of programs, each a YAML file in ``otelstack/catalog`` (``ToolCatalog``):

    kubernetes_tools.yaml  -> ~/.cache/otelstack/kube/      kube-apiserver, etcd, pulumi, … (kubetools)
    backend_tools.yaml     -> ~/.cache/otelstack/backend/   prometheus, alertmanager, … (backendtools)

    ~/.cache/otelstack/<dir>/<name>-<version>-<digest>-linux-<arch>/<binary>
    ~/.cache/otelstack/src/<dir>-<name>-…        the generated wrapper module of each build

($OTELSTACK_CACHE overrides the root.)

Each program's directory name carries a digest of its catalog entry, so a changed pin builds again and a
present program is never rebuilt. The wrapper go.mod is generated here: it requires the pinned module,
turns each local ``replace`` of that module's own go.mod into the published module (``local_replaces_at``),
copies its other replaces, excludes and godebug settings, adds the catalog's own ``replace`` pins, and
records the main package with ``go get -tool``. When a module lacks files its ``//go:embed`` lines need,
``vendor_copy`` builds from a writable copy with those files written first. Nothing fetched is kept in the
repository: the inputs are the catalog and the Go module proxy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from otelstack.dist.build import (
    BuildError,
    Note,
    _go_env,
    _json_stream,
    _locked,
    _run,
    cache_root,
    go_executable,
    host_arch,
    progress_printer,
)

RECIPE = "1"  # part of every digest: raise it when the way a wrapper is generated changes
WRAPPER_GO = "1.26.0"  # the lowest `go` line of a wrapper (raised to the pinned module's)


@dataclass(frozen=True)
class ToolCatalog:
    """One catalog file of programs and the cache directory its builds land in."""

    file: str  # under otelstack/catalog
    directory: str  # under the cache root

    def data(self) -> dict[str, Any]:
        return _catalog_data(self.file)


KUBERNETES = ToolCatalog("kubernetes_tools.yaml", "kube")
BACKENDS = ToolCatalog("backend_tools.yaml", "backend")


@cache
def _catalog_data(file: str) -> dict[str, Any]:
    text = resources.files("otelstack.catalog").joinpath(file).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or not isinstance(data.get("programs"), dict):
        raise BuildError(f"catalog/{file}: a mapping with `programs:` is expected")
    return data


@dataclass(frozen=True)
class Program:
    name: str
    module: str
    version: str
    package: str
    binary: str
    version_string: str
    local_replaces_at: str | None
    require: dict[str, str]
    ldflags: tuple[str, ...]
    tags: str
    extras: dict[str, str]
    vendor_copy: dict[str, str]
    cgo: bool
    replace: dict[str, str] = field(default_factory=dict)
    catalog: ToolCatalog = KUBERNETES

    @property
    def digest(self) -> str:
        entry = self.catalog.data()["programs"][self.name]
        blob = json.dumps({"recipe": RECIPE, "entry": entry}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    def directory(self, root: Path, arch: str) -> Path:
        return root / self.catalog.directory / f"{self.name}-{self.version_string}-{self.digest}-linux-{arch}"

    def ldflag_values(self) -> list[str]:
        found = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)(.*)", self.version_string)
        if found is None:
            raise BuildError(f"{self.name}: version_string {self.version_string!r} is not vX.Y.Z")
        fill = {
            "version": self.version_string,
            "bare": self.version_string.lstrip("v"),
            "major": found.group(1),
            "minor": found.group(2),
            "module_version": self.version,
        }
        return [f"-X {flag.format(**fill)}" for flag in self.ldflags]


def _strings(entry: dict[str, Any], key: str) -> dict[str, str]:
    return {str(k): str(v) for k, v in (entry.get(key) or {}).items()}


def programs(catalog: ToolCatalog = KUBERNETES) -> list[Program]:
    out = []
    for name, entry in catalog.data()["programs"].items():
        try:
            out.append(
                Program(
                    name=str(name),
                    module=str(entry["module"]),
                    version=str(entry["version"]),
                    package=str(entry["package"]),
                    binary=str(entry.get("binary", name)),
                    version_string=str(entry.get("version_string", entry["version"])),
                    local_replaces_at=entry.get("local_replaces_at"),
                    require=_strings(entry, "require"),
                    ldflags=tuple(str(f) for f in entry.get("ldflags") or ()),
                    tags=str(entry.get("tags") or ""),
                    extras=_strings(entry, "extras"),
                    vendor_copy=_strings(entry, "vendor_copy"),
                    cgo=bool(entry.get("cgo", False)),
                    replace=_strings(entry, "replace"),
                    catalog=catalog,
                )
            )
        except KeyError as missing:
            raise BuildError(f"catalog/{catalog.file}: programs.{name} lacks {missing}") from None
    return out


def program(name: str, catalog: ToolCatalog = KUBERNETES) -> Program:
    for p in programs(catalog):
        if p.name == name:
            return p
    known = [p.name for p in programs(catalog)]
    raise BuildError(f"no program {name!r} in catalog/{catalog.file}; known: {known}")


# --- go.mod reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GoMod:
    go: str
    replaces: tuple[tuple[str, str, str | None], ...]  # (path, target, target version or None when local)
    excludes: tuple[str, ...]
    godebug: tuple[str, ...]


def _directive_lines(text: str, verb: str) -> Iterator[str]:
    """The arguments of every ``verb`` line of a go.mod, single-line and block forms."""
    block = False
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].strip()
        if block:
            if line == ")":
                block = False
            elif line:
                yield line
            continue
        if line == f"{verb} (":
            block = True
        elif line.startswith(f"{verb} "):
            yield line[len(verb) + 1 :].strip()


def parse_gomod(text: str) -> GoMod:
    go = next((line for line in _directive_lines(text, "go")), WRAPPER_GO)
    replaces = []
    for line in _directive_lines(text, "replace"):
        left, _, right = line.partition("=>")
        target = right.split()
        path = left.split()[0]
        if not target:
            raise BuildError(f"cannot read the go.mod replace line {line!r}")
        replaces.append((path, target[0], target[1] if len(target) > 1 else None))
    return GoMod(
        go=go,
        replaces=tuple(replaces),
        excludes=tuple(_directive_lines(text, "exclude")),
        godebug=tuple(_directive_lines(text, "godebug")),
    )


def _version_key(go: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", go))


def wrapper_gomod(p: Program, upstream: GoMod, local_copy: Path | None = None) -> str:
    """The wrapper module's go.mod for ``p``, from the pinned module's own go.mod."""
    go = max(WRAPPER_GO, upstream.go, key=_version_key)
    lines = [f"// {p.name}: generated by otelstack from catalog/{p.catalog.file}", ""]
    lines += [f"module otelstack.local/{p.name}", "", f"go {go}", ""]
    if upstream.godebug:
        lines += ["godebug (", *(f"\t{g}" for g in upstream.godebug), ")", ""]
    lines += ["require (", f"\t{p.module} {p.version}", *(f"\t{m} {v}" for m, v in sorted(p.require.items())), ")", ""]
    replaces: list[str] = []
    for path, target, version in upstream.replaces:
        if version is not None:  # a fork or a pin: copied as it is
            replaces.append(f"\t{path} => {target} {version}")
        elif p.local_replaces_at:  # a sibling directory of the same repository: its published module
            replaces.append(f"\t{path} => {path} {p.local_replaces_at}")
        else:
            raise BuildError(
                f"{p.module}@{p.version} replaces {path} with the local {target}, "
                f"and catalog/{p.catalog.file} gives no local_replaces_at for it"
            )
    for path, version in sorted(p.replace.items()):  # the catalog's own pins (a conflict upstream fixed so)
        replaces.append(f"\t{path} => {path} {version}")
    if local_copy is not None:
        replaces.append(f"\t{p.module} => {local_copy}")
    if replaces:
        lines += ["replace (", *replaces, ")", ""]
    if upstream.excludes:
        lines += ["exclude (", *(f"\t{e}" for e in upstream.excludes), ")", ""]
    return "\n".join(lines)


# --- module cache ----------------------------------------------------------------------------------------


def download(modules: Sequence[str], cwd: Path, note: Note) -> dict[str, dict[str, Any]]:
    """``go mod download -json`` for ``module@version`` strings: module@version -> its JSON (Dir, GoMod)."""
    cwd.mkdir(parents=True, exist_ok=True)
    argv = [go_executable(), "mod", "download", "-json", *modules]
    note(f"go mod download {' '.join(modules)}")
    proc = subprocess.run(argv, cwd=cwd, env=_go_env(host_arch()), capture_output=True, text=True, check=False)
    found: dict[str, dict[str, Any]] = {}
    errors = []
    for doc in _json_stream(proc.stdout):
        key = f"{doc.get('Path')}@{doc.get('Version')}"
        if doc.get("Error"):
            errors.append(f"{key}: {doc['Error']}")
        else:
            found[key] = doc
    if errors or proc.returncode != 0:
        raise BuildError(
            "the Go module proxy did not serve every module asked for",
            [f"command: {' '.join(argv)}", *errors, *proc.stderr.splitlines()[-10:]],
        )
    return found


def _writable_copy(source: Path, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    for base, dirs, files in os.walk(target):
        for name in [*dirs, *files]:
            path = Path(base) / name
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    target.chmod(target.stat().st_mode | stat.S_IWUSR)


PLACEHOLDER = (
    "<!doctype html><title>no UI</title><p>Built by otelstack from the Go module, which does not carry "
    "the compiled web UI; the HTTP API is served as usual.</p>\n"
)


def _generate(p: Program, copy: Path, target: str, recipe: str) -> None:
    """Write one file that the module's ``//go:embed`` expects but its zip lacks (our own generator)."""
    how, _, source = recipe.partition(" ")
    if how == "placeholder":
        (copy / target).parent.mkdir(parents=True, exist_ok=True)
        (copy / target).write_text(PLACEHOLDER, encoding="utf-8")
        return
    data = json.loads((copy / source).read_text(encoding="utf-8"))
    if how == "schema-with-version":
        data["version"] = p.version_string.lstrip("v")
    elif how != "compact-json":
        raise BuildError(
            f"{p.name}: unknown vendor_copy recipe {how!r} (schema-with-version, compact-json, placeholder)"
        )
    (copy / target).write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")


# --- building ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltTool:
    name: str
    version: str
    path: Path
    seconds: float  # 0 when it was already in the cache
    extras: tuple[Path, ...] = ()


def build_program(p: Program, root: Path, arch: str, note: Note) -> BuiltTool:
    final = p.directory(root, arch)
    binary = final / p.binary
    if binary.exists():
        return BuiltTool(p.name, p.version_string, binary, 0, tuple(final / e for e in p.extras))
    started = time.monotonic()
    src = root / "src" / f"{p.catalog.directory}-{final.name}"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    note(f"{p.name}: {p.module}@{p.version}")
    key = f"{p.module}@{p.version}"
    doc = download([key], src, note)[key]
    upstream = parse_gomod(Path(doc["GoMod"]).read_text(encoding="utf-8"))
    local_copy = None
    if p.vendor_copy:
        local_copy = src / "module"
        _writable_copy(Path(doc["Dir"]), local_copy)
        for target, recipe in p.vendor_copy.items():
            _generate(p, local_copy, target, recipe)
            note(f"{p.name}: generated {target}")
    (src / "go.mod").write_text(wrapper_gomod(p, upstream, local_copy), encoding="utf-8")
    env = _go_env(arch)
    env["CGO_ENABLED"] = "1" if p.cgo else "0"
    go = go_executable()
    _run(f"{p.name} (modules)", [go, "get", "-tool", f"{p.package}@{p.version}"], cwd=src, env=env, note=note)
    staging = src / "out"
    staging.mkdir()
    argv = [go, "build", "-trimpath", f"-ldflags=-s -w {' '.join(p.ldflag_values())}".strip()]
    if p.tags:
        argv.append(f"-tags={p.tags}")
    argv += ["-o", str(staging / p.binary), p.package]
    note(f"{p.name}: compiling {p.package} (minutes on a cold Go build cache)")
    _run(f"{p.name} (compile)", argv, cwd=src, env=env, note=note)
    for name, path in p.extras.items():
        extra = Path(doc["Dir"]) / path
        if not extra.is_file():
            raise BuildError(f"{p.name}: {key} has no {path} to place next to the program as {name}")
        shutil.copyfile(extra, staging / name)
    for item in staging.iterdir():
        item.chmod(0o755)
    final.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(staging, final)  # the whole directory appears at once
    shutil.rmtree(src, ignore_errors=True)
    return BuiltTool(p.name, p.version_string, binary, time.monotonic() - started, tuple(final / e for e in p.extras))


def build_tools(
    names: Sequence[str] = (),
    root: Path | None = None,
    arch: str | None = None,
    note: Note | None = None,
    catalog: ToolCatalog = KUBERNETES,
) -> list[BuiltTool]:
    """The programs named (default: all of the catalog's), from the cache when present."""
    root = root or cache_root()
    arch = arch or host_arch()
    say = note or (lambda _m: None)
    chosen = [program(n, catalog) for n in names] if names else programs(catalog)
    with _locked(root):
        return [build_program(p, root, arch, say) for p in chosen]


def link_tools(built: Sequence[BuiltTool], directory: Path) -> list[Path]:
    """Symlink each program (and the files that sit next to it) into ``directory`` under its plain name."""
    directory.mkdir(parents=True, exist_ok=True)
    links = []
    for item in built:
        for path in (item.path, *item.extras):
            target = directory / path.name
            if target.exists() and not target.is_symlink():
                raise BuildError(f"{target} exists and is not a link otelstack made; remove it first")
            tmp = directory / f".{path.name}.link"
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(path)
            os.replace(tmp, target)
            links.append(target)
    return links


def cmd_build(
    args: argparse.Namespace,
    catalog: ToolCatalog,
    what: str,
    complete: Callable[[list[BuiltTool], Note], list[BuiltTool]] | None = None,
) -> int:
    """``otelstack dist kubetools|backendtools``: build (or find) the catalog's programs, print each.
    ``complete`` may add files of otelstack's own next to the built programs (as their extras, linked too)."""
    note = progress_printer() if not args.quiet else (lambda _m: None)
    root = args.cache or cache_root()
    arch = args.arch or host_arch()
    if not args.quiet:
        print(f"otelstack dist: {what} for linux/{arch} in {root / catalog.directory}", file=sys.stderr)
    built = build_tools(args.program or (), root, arch, note, catalog)
    if complete is not None:
        built = complete(built, note)
    for item in built:
        state = f"built in {item.seconds:.0f}s" if item.seconds else "cached"
        print(f"{item.name} {item.version} ({state}): {item.path}")
    if args.link:
        for path in link_tools(built, args.link):
            print(f"linked {path}")
    return 0


def add_arguments(parser: argparse.ArgumentParser, catalog: ToolCatalog) -> None:
    names = ", ".join(p.name for p in programs(catalog))
    parser.add_argument("program", nargs="*", help=f"only these (default: all): {names}")
    parser.add_argument("--arch", choices=["amd64", "arm64"], help="target architecture (default: this machine)")
    parser.add_argument("--cache", type=Path, help="build cache (default: $OTELSTACK_CACHE or ~/.cache/otelstack)")
    parser.add_argument("--link", type=Path, help="symlink the programs into this directory (e.g. .cache/bin)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
