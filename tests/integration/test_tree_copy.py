"""roles/common/tasks/tree.yml on a local host: a controller directory mirrored on the host, checked in one
round trip, copied only when the host's files differ in name, content, owner, group or mode."""

from __future__ import annotations

import grp
import json
import os
import pwd
from pathlib import Path

from tests.lab.playbooks import output, run_in_a_role, tail


def converge(tmp_path: Path, src: Path, dest: Path):  # type: ignore[no-untyped-def]
    tasks = (
        "- ansible.builtin.include_role:\n"
        "    name: otelstack.platform.common\n"
        "    tasks_from: tree.yml\n"
        "- ansible.builtin.debug:\n"
        "    msg: 'copied={{ common_tree_copied is changed }}'\n"
    )
    variables = {
        "common_tree_src": str(src),
        "common_tree_dest": str(dest),
        "common_tree_owner": pwd.getpwuid(os.getuid()).pw_name,
        "common_tree_group": grp.getgrgid(os.getgid()).gr_name,
        "common_tree_mode": "0640",
        "common_tree_dir_mode": "0750",
    }
    result = run_in_a_role(tmp_path, tasks, ["-e", json.dumps(variables)])
    assert result.returncode == 0, tail(result)
    return "copied=True" in output(result)


def test_the_tree_is_copied_only_when_the_host_differs(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    (src / "sub").mkdir(parents=True)
    (src / "a.yaml").write_text("a: 1\n")
    (src / "sub" / "b.yaml").write_text("b: 2\n")
    assert converge(tmp_path, src, dest), "absent on the host: copied"
    assert (dest / "sub" / "b.yaml").read_text() == "b: 2\n"
    assert oct((dest / "a.yaml").stat().st_mode & 0o777) == "0o640"
    assert oct((dest / "sub").stat().st_mode & 0o777) == "0o750"
    assert not converge(tmp_path, src, dest), "equal: not copied"

    (dest / "sub" / "b.yaml").write_text("b: 3\n")  # content drift
    assert converge(tmp_path, src, dest) and (dest / "sub" / "b.yaml").read_text() == "b: 2\n"
    (dest / "a.yaml").chmod(0o644)  # mode drift
    assert converge(tmp_path, src, dest) and oct((dest / "a.yaml").stat().st_mode & 0o777) == "0o640"
    (src / "c.yaml").write_text("c: 1\n")  # a new file on the controller
    assert converge(tmp_path, src, dest) and (dest / "c.yaml").exists()
    assert not converge(tmp_path, src, dest)


def test_files_the_host_has_beyond_the_controllers_do_not_make_it_copy_every_run(tmp_path: Path) -> None:
    # e.g. the wheels of the release before an upgrade, still in the wheels directory
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    (src / "new.whl").write_text("new\n")
    assert converge(tmp_path, src, dest)
    (dest / "old.whl").write_text("old\n")
    os.chmod(dest / "old.whl", 0o600)
    assert not converge(tmp_path, src, dest)
    (src / "new.whl").unlink()
    (src / "newer.whl").write_text("newer\n")
    assert converge(tmp_path, src, dest) and (dest / "newer.whl").exists()
