"""Issue 9, as a property: whatever a level file holds, load_spec returns a spec or raises a SpecError
whose message names that file — never another exception, never a hang."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otelstack.errors import SpecError
from otelstack.model.loader import load_spec
from otelstack.model.spec import PlatformSpec
from tests.unit.test_bad_input_yaml import ENDPOINTS

# Words and punctuation that matter to YAML and to the spec, so random text often parses.
TOKENS = st.sampled_from(
    [
        *("size", "load", "agents", "tiers", "gateway", "min_replicas", "max_replicas", "backends", "tempo"),
        *("endpoint", "security", "tls", "agent_to_gateway", "sampling", "tail", "critical_services+"),
        *("collector_overrides", "agent", "processors", "batch", "cardinality", "route_patterns", "emergency"),
        *(": ", ":", "\n", "  ", "- ", "[", "]", "{", "}", ",", "&a ", "*a", "!!str ", "!!int ", "!!binary ", "#"),
        *("'", '"', "null", "~", "true", "0", "-1", "99999", "1e400", "2024-13-45", "<<", "? ", "|", ">", "+"),
        *("mtls", "tls", "insecure", "large", "env:X", "hunter2", "(", ")", "(?=", "\\", "\t", "---", "\ufeff"),
    ]
)
YAMLISH = st.lists(TOKENS, max_size=40).map("".join)
SPEC_KEYS = st.sampled_from(
    ["size", "load", "tiers", "backends", "security", "sampling", "cardinality", "emergency", "collector_overrides"]
)
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["mtls", "tls", "insecure", "large", "env:X", "(x", "tempo:4317", "http://x:1/v1/opamp"]),
)
FIELD_NAMES = st.sampled_from(
    [*PlatformSpec.model_fields, "gateway", "agent", "tempo", "endpoint", "tls", "min_replicas", "processors+", "x+"]
)
DOCS = st.dictionaries(
    SPEC_KEYS,
    st.recursive(
        LEAVES,
        lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(FIELD_NAMES, children, max_size=3)),
        max_leaves=15,
    ),
    max_size=4,
)


@pytest.fixture(scope="module")
def hierarchy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("configs")
    for rel, doc in (
        ("global/platform.yaml", "sampling: {tail: {probabilistic_percentage: 10}}\n"),
        ("prod/platform.yaml", "size: large\n"),
        ("prod/eu/platform.yaml", ENDPOINTS),
        ("dev/platform.yaml", "size: small\n"),
    ):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(doc)
    load_spec(root, "prod", "eu")  # warm the catalog and the model before timing examples
    return root


def loads_or_names_the_file(root: Path, env: str, region: str | None, rel: str, content: bytes) -> Any:
    path = root / rel
    original = path.read_bytes()
    path.write_bytes(content)
    try:
        return load_spec(root, env, region)
    except SpecError as exc:
        assert str(path) in str(exc), f"{exc} does not name {path}"
        return exc
    finally:
        path.write_bytes(original)


COMMON = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])


@COMMON
@given(content=st.binary(max_size=200))
def test_random_bytes_in_an_environment_level(hierarchy: Path, content: bytes) -> None:
    loads_or_names_the_file(hierarchy, "prod", "eu", "prod/platform.yaml", content)


@COMMON
@given(text=YAMLISH)
def test_yaml_like_text_in_a_region_level(hierarchy: Path, text: str) -> None:
    result = loads_or_names_the_file(hierarchy, "prod", "eu", "prod/eu/platform.yaml", (ENDPOINTS + text).encode())
    assert isinstance(result, PlatformSpec | SpecError)


@COMMON
@given(text=YAMLISH)
def test_yaml_like_text_in_the_dev_level(hierarchy: Path, text: str) -> None:
    loads_or_names_the_file(hierarchy, "dev", None, "dev/platform.yaml", text.encode())


@COMMON
@given(doc=DOCS)
def test_well_formed_documents_with_arbitrary_values(hierarchy: Path, doc: dict[str, Any]) -> None:
    """Valid YAML whose values are anything: the model, the merge and the messages must all cope."""
    text = yaml.safe_dump(doc, allow_unicode=True) if doc else "{}\n"
    loads_or_names_the_file(hierarchy, "dev", None, "dev/platform.yaml", text.encode())
