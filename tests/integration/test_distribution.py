"""otelstack's collector distribution: catalog, renderer and the built binary cannot drift apart.

The binary is the one `make binaries` builds (`otelstack dist build`); these tests fail, not skip, when
it is missing, because every other test of the real data path depends on it.
"""

from __future__ import annotations

import hashlib
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from otelstack.catalog.components import KINDS, catalog
from otelstack.dist import build as dist_build
from otelstack.dist.build import Built, Targets, build_all, link
from otelstack.dist.checksums import parse_sums
from otelstack.dist.locate import locate
from otelstack.dist.manifest import SECTIONS, builder_manifest, component_types, excluded, manifest_digest, pins
from otelstack.dist.package import package
from otelstack.layering import available_environments, available_regions
from otelstack.render import PROFILES, VARIANTS, render_platform
from otelstack.validate.binary import run_otelcol_validate, secret_references, with_placeholders

ROOT = Path(__file__).parents[2]
CONFIGS = ROOT / "configs"
GOLDEN = ROOT / "tests" / "golden"
TARGETS = [(env, r) for env in available_environments(CONFIGS) for r in [None, *available_regions(CONFIGS, env)]]
MISSING = "otelcol-contrib is not built: run `make binaries` (otelstack dist build --link .cache/bin)"


def binary(name: str = "otelcol-contrib") -> str:
    path = locate(name)
    if path is None:
        pytest.fail(MISSING)
    return path


def rendered_types() -> set[tuple[str, str]]:
    """(kind, type) of every component any shipped environment renders, in any profile and variant."""
    found: set[tuple[str, str]] = set()
    for env, region in TARGETS:
        for rel, text in render_platform(CONFIGS, env, region).files.items():
            if not rel.startswith("collector/"):
                continue
            config = yaml.safe_load(text)
            for kind in KINDS:
                for component_id in config.get(kind) or {}:
                    found.add((kind[:-1], component_id.split("/")[0]))
    return found


def test_every_rendered_component_is_in_the_generated_manifest() -> None:
    missing = rendered_types() - component_types()
    assert not missing, f"rendered but not compiled into the distribution: {sorted(missing)}"


def test_the_manifest_holds_every_catalog_module_at_the_release_or_its_stated_version() -> None:
    manifest = builder_manifest("/tmp/out")
    listed = sorted(entry["gomod"] for section in SECTIONS.values() for entry in manifest.get(section, []))
    assert listed == sorted(p.gomod for p in pins())
    release = catalog().release["otelcol_contrib"]
    for pin in pins():
        if pin.note:
            assert pin.version != f"v{release}", f"{pin.type}: a note explains a version that differs"
        else:
            assert pin.version == f"v{release}", f"{pin.type} {pin.version} without a note"
    for comp in excluded():
        assert comp.module_note, f"{comp.kind} {comp.type} is left out without a reason"
    assert manifest["dist"]["version"] == release


def test_the_cache_key_changes_with_the_manifest() -> None:
    before = manifest_digest()
    cat = catalog()
    changed = type(cat)(**{**cat.__dict__, "build": {**cat.build, "build_tags": "other"}})
    assert manifest_digest(changed) != before


def test_the_built_binary_holds_exactly_the_manifest_components() -> None:
    out = subprocess.run([binary(), "components"], capture_output=True, text=True, check=True, timeout=60).stdout
    listed = yaml.safe_load(out)
    compiled: dict[tuple[str, str], str] = {}
    for kind in KINDS:
        for entry in listed.get(kind) or []:
            compiled[(kind[:-1], entry["name"])] = entry["module"]
    expected = {(p.kind, p.type): p.gomod for p in pins()}
    assert compiled == expected
    assert listed["buildinfo"]["version"] == catalog().release["otelcol_contrib"]


@pytest.mark.parametrize(("env", "region"), TARGETS, ids=[f"{e}-{r}" if r else e for e, r in TARGETS])
def test_every_golden_collector_config_passes_the_real_validate(env: str, region: str | None) -> None:
    exe = binary()
    target = GOLDEN / (env + (f"-{region}" if region else ""))
    configs = sorted((target / "collector").glob("*.yaml"))
    assert len(configs) == len(PROFILES) * len(VARIANTS)  # every profile in every variant
    failures = []
    for path in configs:
        checked = run_otelcol_validate(path.read_text(encoding="utf-8"), exe)
        assert checked is not None
        if not checked.ok:
            failures.append(f"{path.name}: {checked.output}")
    assert not failures, "\n".join(failures)


def test_the_real_validate_rejects_what_our_validator_cannot_know() -> None:
    """Proof that the check is live: a config the binary refuses (a processor option of the wrong type)."""
    text = (GOLDEN / "prod" / "collector" / "gateway.yaml").read_text(encoding="utf-8")
    broken = text.replace("check_interval: 1s", "check_interval: soon", 1)
    checked = run_otelcol_validate(broken, binary())
    assert checked is not None and not checked.ok
    assert "check_interval" in checked.output


def test_secrets_get_placeholders_for_the_check_and_are_listed() -> None:
    text = "token: ${env:OTELSTACK_INGEST_TOKEN}\npw: ${file:/run/secrets/ch}\nlit: $${env:NOT_A_REF}\n"
    assert secret_references(text) == [("env", "OTELSTACK_INGEST_TOKEN"), ("file", "/run/secrets/ch")]
    config, env = with_placeholders(text)
    assert "${env:OTELSTACK_VALIDATE_FILE_0}" in config and "$${env:NOT_A_REF}" in config
    assert set(env) == {"OTELSTACK_INGEST_TOKEN", "OTELSTACK_VALIDATE_FILE_0"}


def test_without_placeholders_the_real_bearer_token_extension_refuses_an_empty_token(tmp_path: Path) -> None:
    """Why the placeholders exist: the real binary checks the token, so the roles must validate with the
    service's environment file (see the otel_collector role)."""
    text = (GOLDEN / "prod" / "collector" / "gateway.yaml").read_text(encoding="utf-8")
    config = tmp_path / "gateway.yaml"
    config.write_text(text, encoding="utf-8")
    proc = subprocess.run(
        [binary(), "validate", f"--config={config}"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin"},
    )
    assert proc.returncode != 0
    assert "bearertokenauth" in proc.stdout + proc.stderr


def test_a_present_build_is_reused_and_never_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    t = Targets(tmp_path, "amd64")
    for path in (t.collector(), t.supervisor()):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"#!/bin/sh\n")

    def no_go(*_a: Any, **_k: Any) -> None:
        raise AssertionError("a cached program must not be rebuilt")

    monkeypatch.setattr(dist_build, "_run", no_go)
    built = build_all("amd64", tmp_path)
    assert [b.seconds for b in built] == [0, 0]
    links = link(built, tmp_path / "links")
    assert [p.resolve() for p in links] == [t.collector(), t.supervisor()]


def test_link_refuses_to_replace_a_file_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "otelcol-contrib").write_text("mine")
    with pytest.raises(dist_build.BuildError, match="not a link otelstack made"):
        link([Built("otelcol-contrib", "0", tmp_path / "x", 0)], tmp_path)
    assert (tmp_path / "otelcol-contrib").read_text() == "mine"


def test_a_failed_go_step_names_the_command_and_shows_its_output(tmp_path: Path) -> None:
    with pytest.raises(dist_build.BuildError) as info:
        dist_build._run("probe", ["sh", "-c", "echo first; echo boom >&2; exit 3"], cwd=tmp_path, env={}, note=print)
    message = str(info.value)
    assert "probe failed (exit 3)" in message and "boom" in message and "command: sh -c" in message


def test_an_unknown_architecture_is_refused() -> None:
    with pytest.raises(dist_build.BuildError, match="allowed: amd64, arm64"):
        build_all("riscv64")


def test_package_writes_the_upstream_layout_with_checksums(tmp_path: Path) -> None:
    collector, supervisor = Path(binary()), Path(binary("opampsupervisor"))
    version = catalog().release["otelcol_contrib"]
    sup_version = str(catalog().build["supervisor_version"]).lstrip("v")
    built = [Built("otelcol-contrib", version, collector, 0), Built("opampsupervisor", sup_version, supervisor, 0)]
    written = package(built, tmp_path, "amd64")
    names = sorted(p.name for p in written)
    archive = f"otelcol-contrib_{version}_linux_amd64.tar.gz"
    plain = f"opampsupervisor_{sup_version}_linux_amd64"
    assert names == sorted([archive, f"{archive}.sha256", plain, f"{plain}.sha256", "SHA256SUMS"])
    sums = parse_sums((tmp_path / "SHA256SUMS").read_text())
    assert sorted(sums) == sorted([archive, plain])
    for name in (archive, plain):
        digest = (tmp_path / f"{name}.sha256").read_text().split()[0]
        assert digest == hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == sums[name]
    # the format sha256sum checks
    checked = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path, capture_output=True, text=True)
    assert checked.returncode == 0 and checked.stdout.count(": OK") == 2, checked.stdout + checked.stderr
    with tarfile.open(tmp_path / archive) as tar:
        member = tar.getmember("otelcol-contrib")
        assert member.mode & 0o111
        extracted = tar.extractfile(member)
        assert extracted is not None
        assert hashlib.sha256(extracted.read()).digest() == hashlib.sha256(collector.read_bytes()).digest()
    again = package(built, tmp_path / "again", "amd64")
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in written], "reproducible"


# --- another release than the pinned one (`otelstack dist build --release`) ---------------------------


def test_another_release_puts_every_module_and_the_builder_at_that_release() -> None:
    previous = dist_build.previous_release()
    pinned = catalog().release["otelcol_contrib"]
    assert previous != pinned
    older = {p.module: p.version for p in pins(release=previous)}
    # every module at the release, except a catalog override older than it (kept: it is what the proxy serves)
    overrides = {c.module: c.module_version for c in catalog().components if c.module and c.module_version}
    for module, version in older.items():
        override = overrides.get(module)
        assert version == (override if override and override < f"v{previous}" else f"v{previous}"), module
    manifest = builder_manifest("/out", release=previous, leave_out={next(iter(older))})
    assert manifest["dist"]["version"] == previous
    assert {"gomod": f"{next(iter(older))} v{previous}"} not in manifest["receivers"], "left out"
    assert dist_build.Targets(Path("/c"), "amd64", previous).builder().name == f"builder-v{previous}"
    assert f"-{previous}-" in dist_build.Targets(Path("/c"), "amd64", previous).collector().name
    # the pinned build keeps its own key, the other release gets another one
    assert manifest_digest(release=pinned) == manifest_digest() != manifest_digest(release=previous)


def test_a_release_that_is_not_a_release_number_is_refused(tmp_path: Path) -> None:
    with pytest.raises(dist_build.BuildError, match="not a collector release number"):
        build_all("amd64", tmp_path, release="0.158")
    assert not (tmp_path / "bin").exists(), "nothing built or created"


def test_a_dependency_the_proxy_does_not_serve_is_recognised_in_the_builders_output() -> None:
    lines = [
        "Error: failed to download go modules: go subcommand failed with args '[mod download]': exit status 1,"
        " error message: go: github.com/open-telemetry/opentelemetry-collector-contrib/pkg/winperfcounters@v0.158.0:"
        " invalid version: git ls-remote -q --end-of-options origin",
    ]
    assert dist_build._unserved_dependency(lines) == (
        "github.com/open-telemetry/opentelemetry-collector-contrib/pkg/winperfcounters"
    )
    forbidden = ["go: example.com/m@v1.2.3: reading https://proxy.example/m/@v/v1.2.3.zip: 403 Forbidden"]
    assert dist_build._unserved_dependency(forbidden) == "example.com/m"
    assert dist_build._unserved_dependency(["main.go:3: undefined: x"]) is None, "a compile error is not retried"


def test_the_release_before_the_pinned_one_is_built_and_runs_the_agent_config() -> None:
    """`make binaries` builds it (the upgrade scenario starts there): the real program at that release."""
    previous = dist_build.previous_release()
    path = dist_build.Targets(dist_build.cache_root(), dist_build.host_arch(), previous).collector()
    if not path.is_file():
        pytest.fail(f"the release before the pinned one is not built: run `make binaries` ({path})")
    version = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=60, check=True)
    assert previous in version.stdout
    text = (GOLDEN / "dev-lab" / "collector" / "agent-vm-static.yaml").read_text(encoding="utf-8")
    result = run_otelcol_validate(text, str(path))
    assert result is not None and result.ok, result


def test_a_build_that_keeps_missing_dependencies_stops_with_the_builders_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each retry takes one more unserved dependency at the pinned release; past the bound the builder's
    own error is raised and nothing lands in the cache."""
    previous = dist_build.previous_release()
    t = Targets(tmp_path, "amd64", previous)
    t.builder().parent.mkdir(parents=True)
    t.builder().write_bytes(b"#!/bin/sh\n")
    monkeypatch.setattr(dist_build, "unserved", lambda *_a: {})
    attempts: list[int] = []

    def always_another(_step: str, _argv: Any, **_k: Any) -> None:
        attempts.append(1)
        module = f"example.com/dep{len(attempts)}"
        raise dist_build.BuildError("collector failed", [f"go: {module}@v{previous}: invalid version: unknown"])

    monkeypatch.setattr(dist_build, "_run", always_another)
    with pytest.raises(dist_build.BuildError, match="collector failed"):
        dist_build.build_collector(t, lambda _m: None)
    assert len(attempts) == dist_build.MAX_REPLACES + 1
    assert not t.collector().exists()
