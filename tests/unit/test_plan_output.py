"""`otelstack plan --out`: plan replaces only a directory it wrote itself; anything else is refused with a
clear message and left exactly as it was (the file trees are compared before and after)."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from otelstack import cli
from otelstack.cli import PLAN_MARKER, main

CONFIGS = Path(__file__).parents[2] / "configs"


def tree(root: Path) -> dict[str, tuple[str, object]]:
    """Every entry under root (root included): kind, and content, link target or mode."""
    found: dict[str, tuple[str, object]] = {}
    for dirpath, dirs, files in os.walk(root):
        here = Path(dirpath)
        found[str(here.relative_to(root))] = ("dir", stat.S_IMODE(here.lstat().st_mode))
        for name in [*dirs, *files]:
            path = here / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = ("link", os.readlink(path))
            elif path.is_file():
                found[rel] = ("file", path.read_bytes())
    return found


def plan(out: Path | str, *extra: str, configs: Path = CONFIGS) -> list[str]:
    return ["plan", "--env", "dev", "--configs", str(configs), "--out", str(out), *extra]


def user_directory(path: Path) -> Path:
    """A directory a user keeps: notes and a git repository."""
    (path / ".git" / "objects").mkdir(parents=True)
    (path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (path / "notes.md").write_text("my notes\n")
    return path


def assert_refused(err: str, *fragments: str) -> None:
    assert err.startswith("error: --out "), err
    assert "Nothing was written" in err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tmp_path as the current directory (it holds nothing of the repository)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_users_directory_with_notes_and_git_is_refused_and_untouched(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = user_directory(workdir / "mine")
    (workdir / "mine.old").mkdir()
    (workdir / "mine.old" / "keep.txt").write_text("an older copy\n")
    (workdir / "mine.tmp").mkdir()
    (workdir / "mine.tmp" / "keep.txt").write_text("scratch\n")
    before = tree(workdir)
    assert main(plan(out, "--quiet")) == 2
    assert_refused(capsys.readouterr().err, "is a directory otelstack did not write", ".git", "notes.md", PLAN_MARKER)
    assert tree(workdir) == before


def test_replacing_its_own_plan_never_touches_siblings_and_leaves_no_scratch(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = workdir / "build" / "dev"
    out.parent.mkdir()
    for sibling in ("dev.old", "dev.tmp"):
        (out.parent / sibling).mkdir()
        (out.parent / sibling / "keep.txt").write_text(f"{sibling} is mine\n")
    siblings = tree(out.parent / "dev.old"), tree(out.parent / "dev.tmp")
    assert main(plan(out, "--quiet")) == 0
    first = tree(out)
    assert main(plan(out, "--quiet")) == 0, capsys.readouterr().err
    assert tree(out) == first
    assert (tree(out.parent / "dev.old"), tree(out.parent / "dev.tmp")) == siblings
    assert sorted(p.name for p in out.parent.iterdir()) == ["dev", "dev.old", "dev.tmp"]


def test_the_marker_names_the_tool_environment_and_files(workdir: Path) -> None:
    out = workdir / "out"
    assert main(plan(out, "--quiet")) == 0
    marker = json.loads((out / PLAN_MARKER).read_text())
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name != PLAN_MARKER)
    assert marker["tool"] == "otelstack" and marker["env"] == "dev" and marker["region"] is None
    assert marker["version"] == cli.__version__
    assert marker["files"] == written
    assert stat.S_IMODE(out.stat().st_mode) & 0o755 == 0o755, "not left with mkdtemp's 0700"


def test_a_plan_directory_the_user_added_files_to_is_refused(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = workdir / "out"
    assert main(plan(out, "--quiet")) == 0
    (out / "collector" / "my-edit.yaml").write_text("mine\n")
    (out / "scratch").mkdir()
    before = tree(workdir)
    assert main(plan(out, "--quiet")) == 2
    assert_refused(
        capsys.readouterr().err, "holds files otelstack plan did not write", "collector/my-edit.yaml", "scratch/"
    )
    assert tree(workdir) == before


def test_a_marker_otelstack_did_not_write_is_refused(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = workdir / "out"
    out.mkdir()
    (out / "data.csv").write_text("1,2\n")
    for content in ("not json", json.dumps({"tool": "other", "files": ["data.csv"]})):
        (out / PLAN_MARKER).write_text(content)
        before = tree(workdir)
        assert main(plan(out, "--quiet")) == 2
        assert_refused(capsys.readouterr().err, PLAN_MARKER)
        assert tree(workdir) == before


def test_a_file_is_refused_and_not_renamed(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = workdir / "report.txt"
    target.write_text("important\n")
    before = tree(workdir)
    assert main(plan(target, "--quiet")) == 2
    assert_refused(capsys.readouterr().err, "is a file, not a directory")
    assert tree(workdir) == before
    assert not (workdir / "report.txt.old").exists()


@pytest.mark.parametrize("given", [".", "", "{cwd}", "..", "{cwd}/sub/.."])
def test_the_current_directory_and_its_ancestors_are_refused(
    workdir: Path, capsys: pytest.CaptureFixture[str], given: str
) -> None:
    (workdir / "sub").mkdir()
    (workdir / "keep.txt").write_text("mine\n")
    before = tree(workdir.parent) if given == ".." else tree(workdir)
    assert main(plan(given.format(cwd=workdir), "--quiet")) == 2
    assert_refused(capsys.readouterr().err, "current directory")
    assert (tree(workdir.parent) if given == ".." else tree(workdir)) == before


def test_the_root_directory_is_refused(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = sorted(os.listdir("/"))
    assert main(plan("/", "--quiet")) == 2
    assert_refused(capsys.readouterr().err, "is the root directory")
    assert sorted(os.listdir("/")) == before


@pytest.mark.parametrize("where", ["configs", "configs/dev", "configs/dev/new-out", "."])
def test_the_configs_directory_inside_and_around_it_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    configs = tmp_path / "configs"
    shutil.copytree(CONFIGS, configs)
    before = tree(tmp_path)
    assert main(plan(tmp_path / where, "--quiet", configs=configs)) == 2
    assert_refused(capsys.readouterr().err, "configs directory")
    assert tree(tmp_path) == before


@pytest.mark.parametrize("points_to", ["user", "plan"])
def test_a_symbolic_link_is_refused(workdir: Path, capsys: pytest.CaptureFixture[str], points_to: str) -> None:
    target = workdir / "target"
    if points_to == "user":
        user_directory(target)
    else:
        assert main(plan(target, "--quiet")) == 0
    (workdir / "link").symlink_to(target)
    before = tree(workdir)
    assert main(plan(workdir / "link", "--quiet")) == 2
    assert_refused(capsys.readouterr().err, "is a symbolic link to")
    assert tree(workdir) == before


def test_an_empty_directory_may_be_used(workdir: Path) -> None:
    out = workdir / "empty"
    out.mkdir()
    assert main(plan(out, "--quiet")) == 0
    assert (out / PLAN_MARKER).is_file() and (out / "sizing.md").is_file()


def test_a_path_under_a_file_is_a_clear_error(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "afile").write_text("x\n")
    before = tree(workdir)
    assert main(plan(workdir / "afile" / "out", "--quiet")) == 2
    err = capsys.readouterr().err
    assert f"cannot create it: {workdir / 'afile'} is not a directory" in err and "Traceback" not in err
    assert tree(workdir) == before


def test_an_unwritable_parent_names_the_path_and_the_os_reason(capsys: pytest.CaptureFixture[str]) -> None:
    # The tests run as root, whom chmod does not stop; /proc refuses new directories to everyone.
    out = Path("/proc/otelstack-plan-test/out")
    assert main(plan(out, "--quiet")) == 2
    err = capsys.readouterr().err
    assert f"cannot write the plan to {out}: No such file or directory (/proc/otelstack-plan-test)" in err, err
    assert "Traceback" not in err and "Nothing was written" in err
    assert not out.parent.exists()


def test_a_parent_where_no_directory_can_be_created_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    out = Path("/proc/otelstack-plan-test")
    assert main(plan(out, "--quiet")) == 2
    err = capsys.readouterr().err
    assert f"cannot write the plan to {out}: cannot create a directory in /proc: " in err, err
    assert "Traceback" not in err and not out.exists()


def test_parents_created_for_the_plan_are_removed_when_it_cannot_be_written(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(*args: object, **kwargs: object) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli.tempfile, "mkdtemp", no_space)
    assert main(plan(workdir / "a" / "b" / "out", "--quiet")) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert list(workdir.iterdir()) == []


def test_nothing_is_left_behind_when_rendering_fails_into_new_parents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configs = tmp_path / "configs"
    shutil.copytree(CONFIGS, configs)
    (configs / "dev" / "platform.yaml").write_text("sampling: {tail: {probabilistic_percentage: 120}}\n")
    before = tree(tmp_path)
    assert main(plan(tmp_path / "a" / "b" / "out", "--quiet", configs=configs)) == 2
    assert "probabilistic_percentage" in capsys.readouterr().err
    assert tree(tmp_path) == before


def test_a_failed_swap_puts_the_previous_plan_back(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = workdir / "out"
    assert main(plan(out, "--quiet")) == 0
    before = tree(workdir)
    real_rename = os.rename

    def rename(src: object, dst: object) -> None:
        if Path(str(dst)) == out and ".plan-" in str(src):
            raise OSError(28, "No space left on device", str(dst))
        real_rename(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(cli.os, "rename", rename)
    assert main(plan(out, "--quiet")) == 2
    assert "cannot write the plan to" in capsys.readouterr().err
    assert tree(workdir) == before


def test_quiet_prints_nothing_on_success(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(plan(workdir / "out", "--quiet")) == 0
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "")


def test_without_quiet_the_header_progress_and_summary_are_printed(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(plan(workdir / "out")) == 0
    captured = capsys.readouterr()
    assert "otelstack " in captured.err and "planning dev" in captured.err
    assert "wrote " in captured.out


def test_configs_not_found_reaches_the_user_and_help_names_the_option(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "--env", "dev", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "configs directory not found" in err and "Traceback" not in err
    assert list(workdir.iterdir()) == [], "a failed plan leaves no build/ behind"
    with pytest.raises(SystemExit):
        main(["plan", "--help"])
    assert "--configs DIR outside the repository" in " ".join(capsys.readouterr().out.split())
