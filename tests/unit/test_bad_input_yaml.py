"""Issue 9, level files: bad YAML never loses data and never passes silently.

Each test names the case of the issue it covers. Every error names the file (and line where there is
one), says what is wrong and what is allowed, and is a SpecError — never a traceback.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from otelstack import cli
from otelstack.errors import SpecError
from otelstack.layering import MAX_DEPTH, MAX_LEVEL_BYTES, Layer, hierarchy_layers, load_yaml_file
from otelstack.model.loader import load_spec

ENDPOINTS = """\
backends:
  clickhouse: {endpoint: "tcp://clickhouse.prod.internal:9440?secure=true"}
  tempo: {endpoint: "tempo.prod.internal:4317"}
  loki: {endpoint: "https://loki.prod.internal:3100/otlp"}
  prometheus: {endpoint: "https://prometheus.prod.internal:9090/api/v1/write"}
"""


def configs(tmp_path: Path, env_doc: str | bytes, *, region_doc: str | bytes = ENDPOINTS) -> Path:
    """global → prod → prod/eu; the region names the endpoints so the prod file is free for the test."""
    for rel, doc in (
        ("global/platform.yaml", "sampling: {tail: {probabilistic_percentage: 10}}\n"),
        ("prod/platform.yaml", env_doc),
        ("prod/eu/platform.yaml", region_doc),
    ):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(doc, bytes):
            path.write_bytes(doc)
        else:
            path.write_text(doc, encoding="utf-8")
    return tmp_path


def error_of(root: Path, **kw: Any) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(root, "prod", "eu", **kw)
    return str(info.value)


def prod_file(root: Path) -> str:
    return str(root / "prod" / "platform.yaml")


def test_the_fixture_itself_loads(tmp_path: Path) -> None:
    assert load_spec(configs(tmp_path, "size: large\n"), "prod", "eu").size == "large"


# --- case 1: a key given twice ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "line", "key"),
    [
        ("size: large\nload: {agents: 5}\nsize: small\n", 3, "size"),
        ("tiers:\n  gateway:\n    min_replicas: 3\n    max_replicas: 9\n    min_replicas: 4\n", 5, "min_replicas"),
        ("tiers: {gateway: {min_replicas: 3, min_replicas: 4}}\n", 1, "min_replicas"),
        ("tiers:\n  agent: {cpu_limit: 1}\ntiers:\n  gateway: {min_replicas: 3}\n", 3, "tiers"),
    ],
)
def test_case1_a_key_given_twice_is_an_error_naming_file_line_and_key(
    tmp_path: Path, doc: str, line: int, key: str
) -> None:
    root = configs(tmp_path, doc)
    message = error_of(root)
    assert message.startswith(f"{prod_file(root)}:{line}:"), message
    assert f"key {key!r} is given twice" in message and "remove one of them" in message


def test_case1_yaml_merge_keys_are_refused_as_they_hide_duplicates(tmp_path: Path) -> None:
    root = configs(tmp_path, "tiers: {gateway: {min_replicas: 3, <<: {min_replicas: 4}}}\n")
    assert "YAML merge keys (<<) are not allowed" in error_of(root)


# --- case 2: an empty level file ----------------------------------------------------------------


@pytest.mark.parametrize("doc", ["", "\n\n", "# prod: to be filled in\n# (nothing yet)\n", "~\n", "---\n"])
def test_case2_an_empty_level_file_is_an_error(tmp_path: Path, doc: str) -> None:
    root = configs(tmp_path, doc)
    message = error_of(root)
    assert message == (
        f"{prod_file(root)}: empty level file (no keys: nothing, only comments or null); add keys or delete it "
        "(write {} for a level that deliberately changes nothing)"
    )


def test_case2_an_explicit_empty_map_is_a_level_that_changes_nothing(tmp_path: Path) -> None:
    root = configs(tmp_path, "{}  # prod uses the global settings as they are\n")
    assert load_spec(root, "prod", "eu").size == "medium"


# --- case 6: bytes that are not UTF-8 -------------------------------------------------------------


def test_case6_a_non_utf8_byte_names_the_file_and_offset(tmp_path: Path) -> None:
    root = configs(tmp_path, b"size: large\ncluster_name: caf\xe9\n")
    message = error_of(root)
    assert message == (
        f"{prod_file(root)}: byte 0xe9 at offset 29 (line 2, column 18) is not UTF-8; level files are UTF-8 "
        "text: re-save the file as UTF-8"
    )


def test_case6_the_cli_reports_it_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c").mkdir()
    root = configs(tmp_path / "c", b"size: \xff\xfe\n")
    code = cli.main(["plan", "--env", "prod", "--region", "eu", "--configs", str(root), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert f"error: {prod_file(root)}: byte 0xff at offset 6" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_case6_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    root = configs(tmp_path, "\ufeffsize: large\n")
    assert load_spec(root, "prod", "eu").size == "large"


# --- case 7: alias bombs and size ---------------------------------------------------------------

BILLION_LAUGHS = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(f"{n}: &{n} [{','.join([f'*{p}'] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi", strict=True)),
        "",
    ]
)


def test_case7_an_alias_bomb_is_refused_before_the_document_is_built(tmp_path: Path) -> None:
    assert len(BILLION_LAUGHS) < 600
    root = configs(tmp_path, BILLION_LAUGHS)
    started = time.monotonic()
    message = error_of(root)
    assert time.monotonic() - started < 2
    assert message.startswith(f"{prod_file(root)}:1:4: YAML anchor &a: anchors and aliases are not allowed")


def test_case7_an_alias_is_refused_where_it_is(tmp_path: Path) -> None:
    # Anchors come first in a document, so an alias is met alone only when its anchor is missing; it is
    # refused by the same rule, at its own line, before anything is resolved.
    root = configs(tmp_path, "size: large\ncollector_overrides:\n  agent: *shared\n")
    assert error_of(root).startswith(
        f"{prod_file(root)}:3:10: YAML alias *shared: anchors and aliases are not allowed in level files"
    )


def test_case7_a_file_above_the_size_limit_is_refused(tmp_path: Path) -> None:
    doc = "cluster_name: x\n" + "#" * MAX_LEVEL_BYTES + "\n"
    root = configs(tmp_path, doc)
    message = error_of(root)
    assert message.startswith(f"{prod_file(root)}: {len(doc)} bytes is larger than the limit for a level file")
    assert f"({MAX_LEVEL_BYTES} bytes, 1 MiB)" in message


@pytest.mark.parametrize(
    "doc",
    [
        "collector_overrides: {agent: " + "{a: " * (MAX_DEPTH + 5) + "1" + "}" * (MAX_DEPTH + 5) + "}\n",
        "collector_overrides:\n  agent:\n" + "".join("  " * (i + 2) + f"k{i}:\n" for i in range(MAX_DEPTH + 5)),
        "x: " + "[" * 5000 + "]" * 5000 + "\n",
    ],
)
def test_case7_deep_nesting_is_refused_without_a_crash(tmp_path: Path, doc: str) -> None:
    message = error_of(configs(tmp_path, doc))
    assert str(tmp_path / "prod" / "platform.yaml") in message
    assert "nested more than" in message or "maximum nesting depth" in message


def test_case7_agent_levels_from_the_opamp_server_are_bounded_too(tmp_path: Path) -> None:
    """Agent and namespace levels arrive as data (JSON from agents, the server's settings): no YAML
    aliases there, but the same depth bound applies, and a self-referencing document is refused."""
    root = configs(tmp_path, "size: large\n")
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    message = error_of(root, agent={"collector_overrides": {"agent": deep}})
    assert message.startswith("<agent level>: collector_overrides.agent.a.a") and "nested more than 64" in message
    loop: dict[str, Any] = {}
    loop["self"] = loop
    assert "<namespace level>" in error_of(root, namespace={"collector_overrides": {"agent": loop}})
    laughs: list[Any] = ["lol"] * 9
    for _ in range(8):
        laughs = [laughs] * 9  # what an alias bomb in the server's YAML settings becomes: shared lists
    started = time.monotonic()
    message = error_of(root, namespace={"collector_overrides": {"agent": {"x": laughs}}})
    assert (
        message
        == "<namespace level>: more than 100000 values; a level holds settings, not data (allowed: at most 100000)"
    )
    assert time.monotonic() - started < 5


# --- case 8: a syntax error names the file, not <unicode string> ------------------------------------


@pytest.mark.parametrize(
    ("doc", "where", "problem"),
    [
        ("size: large\na: [unclosed\n", ":3:1", "did not find expected ',' or ']'"),
        ("size: large\n  bad indent: 1\n", ":2:13", "mapping values are not allowed"),
        ("size: large\n---\nsize: small\n", ":2:1", "expected a single document"),
        ("size: !!python/object:os.system x\n", ":1:7", "could not determine a constructor"),
        ("tiers: {gateway: {min_replicas: 2024-13-45}}\n", ":1:33", "'2024-13-45' is not a valid timestamp"),
        ("size: 'unterminated\n", "", "while scanning a quoted scalar"),
    ],
)
def test_case8_a_yaml_error_names_the_file_and_line(tmp_path: Path, doc: str, where: str, problem: str) -> None:
    root = configs(tmp_path, doc)
    message = error_of(root)
    assert message.startswith(f"{prod_file(root)}{where}"), message
    assert "not valid YAML" in message and problem in message
    assert "<unicode string>" not in message and "<file>" not in message


def test_case8_control_characters_name_the_file(tmp_path: Path) -> None:
    root = configs(tmp_path, "size: large\x00\n")
    message = error_of(root)
    assert message.startswith(f"{prod_file(root)}: not valid YAML: character #x0000")


def test_keys_must_be_strings_and_the_line_is_named(tmp_path: Path) -> None:
    root = configs(tmp_path, "size: large\non: true\n")
    message = error_of(root)
    assert message.startswith(f"{prod_file(root)}:2:1: key True (bool) is not a string")
    assert "quote it ('on':)" in message


def test_parsed_files_are_cached_by_content_not_by_modification_time(tmp_path: Path) -> None:
    """Two writes within one clock tick used to return the first document from the cache."""
    path = tmp_path / "platform.yaml"
    path.write_text("size: small\n")
    assert load_yaml_file(path) == {"size": "small"}
    path.write_text("size: large\n")  # same size, very likely the same mtime
    assert load_yaml_file(path) == {"size": "large"}


def test_level_files_are_named_by_their_level(tmp_path: Path) -> None:
    layers = hierarchy_layers(configs(tmp_path, "size: large\n"), "prod", "eu")
    assert [layer.level for layer in layers] == ["global", "environment", "region"]
    assert isinstance(layers[0], Layer)


# --- case 12: configs not found -------------------------------------------------------------------


def test_case12_a_missing_configs_directory_says_how_to_name_it(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "nowhere", "prod")
    assert str(info.value) == (
        f"{tmp_path / 'nowhere'}: configs directory not found; pass --configs DIR (the hierarchy with "
        "global/platform.yaml), or run from the repository root"
    )


def test_case12_a_directory_without_the_global_level_says_so(tmp_path: Path) -> None:
    (tmp_path / "prod").mkdir()
    (tmp_path / "prod" / "platform.yaml").write_text("size: large\n")
    with pytest.raises(SpecError, match=r"the global level is required; is .* the hierarchy\? \(pass --configs DIR"):
        load_spec(tmp_path, "prod")
