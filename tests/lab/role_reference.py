"""Generate docs/vm/roles.md from every role's meta/argument_specs.yml, so the page never drifts.

Regenerate with ``python -m tests.lab.role_reference > docs/vm/roles.md``; tests/unit/test_role_specs.py
fails when the committed page and the specs disagree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _cell(text: Any) -> str:
    if isinstance(text, list):
        text = " ".join(str(t) for t in text)
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def markdown(root: Path = ROOT) -> str:
    lines = [
        "# Role variables",
        "",
        "Generated from each role's `meta/argument_specs.yml` (`python -m tests.lab.role_reference`).",
        "Ansible validates every variable against the same specs when a role starts.",
        "",
    ]
    for role in sorted(p for p in (root / "roles").iterdir() if (p / "meta" / "argument_specs.yml").exists()):
        specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))["argument_specs"]
        main = specs["main"]
        lines += [f"## `otelstack.platform.{role.name}`", "", _cell(main.get("short_description", "")), ""]
        description = main.get("description")
        if description:
            lines += [_cell(description), ""]
        lines += ["| variable | type | default | description |", "| --- | --- | --- | --- |"]
        for name, option in sorted(main.get("options", {}).items()):
            kind = option.get("type", "str")
            if option.get("elements"):
                kind += f" of {option['elements']}"
            if option.get("choices"):
                kind += " (" + ", ".join(f"`{c}`" for c in option["choices"]) + ")"
            default = json.dumps(option.get("default"), ensure_ascii=False)
            lines.append(f"| `{name}` | {_cell(kind)} | `{_cell(default)}` | {_cell(option.get('description', ''))} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(), end="")
