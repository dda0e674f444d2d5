"""Properties of the hierarchy merge (the semantics documented in docs/hierarchy.md)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otelstack.errors import SpecError
from otelstack.layering import Layer, merge, merge_layers

KEYS = st.sampled_from(["a", "b", "c", "d"])
SCALARS = st.one_of(st.integers(-5, 5), st.text(alphabet="xyz", max_size=3), st.booleans())
VALUES = st.recursive(
    st.one_of(SCALARS, st.lists(SCALARS, max_size=3)),
    lambda children: st.dictionaries(KEYS, children, max_size=3),
    max_leaves=12,
)
DOCS = st.dictionaries(KEYS, VALUES, max_size=4)  # plain documents: no markers


def leaves(doc: Any, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Leaf paths of a document; a list or an empty map counts as a leaf."""
    if isinstance(doc, dict) and doc:
        out: dict[tuple[str, ...], Any] = {}
        for k, v in doc.items():
            out.update(leaves(v, (*path, k)))
        return out
    return {path: doc}


def set_leaves(doc: Any) -> dict[tuple[str, ...], Any]:
    """Leaves an override really sets: an empty map deep-merges as nothing."""
    return {p: v for p, v in leaves(doc).items() if v != {}}


def get(doc: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


@given(DOCS)
def test_empty_override_is_identity(a: dict[str, Any]) -> None:
    assert merge(a, {}) == a
    assert merge({}, a) == a


@given(DOCS, DOCS)
def test_override_wins_on_every_leaf_it_sets(a: dict[str, Any], b: dict[str, Any]) -> None:
    merged = merge(a, b)
    for path, value in set_leaves(b).items():
        if path:
            assert get(merged, path) == value


@given(DOCS, DOCS)
def test_keys_the_override_does_not_touch_survive(a: dict[str, Any], b: dict[str, Any]) -> None:
    merged = merge(a, b)
    b_paths = set(leaves(b))
    for path, value in leaves(a).items():
        touched = any(path[: len(p)] == p or p[: len(path)] == path for p in b_paths)
        if not touched:
            assert get(merged, path) == value


@given(DOCS, DOCS)
def test_merge_is_idempotent_and_pure(a: dict[str, Any], b: dict[str, Any]) -> None:
    a0, b0 = copy.deepcopy(a), copy.deepcopy(b)
    once = merge(a, b)
    assert merge(once, b) == once
    assert (a, b) == (a0, b0), "merge must not mutate its inputs"


@given(DOCS, DOCS, DOCS)
def test_layers_merge_left_to_right(a: dict[str, Any], b: dict[str, Any], c: dict[str, Any]) -> None:
    stacked = merge_layers([Layer("a", a), Layer("b", b), Layer("c", c)]).data
    assert stacked == merge(merge(a, b), c)


@given(DOCS, KEYS)
def test_null_deletes_a_key_and_everything_under_it(a: dict[str, Any], key: str) -> None:
    merged = merge(a, {key: None})
    assert key not in merged
    assert {k: v for k, v in a.items() if k != key} == merged


@given(DOCS, KEYS, st.lists(SCALARS, max_size=3))
def test_plus_suffix_appends_to_the_lower_list(a: dict[str, Any], key: str, items: list[Any]) -> None:
    if key in a and not isinstance(a[key], list):
        with pytest.raises(SpecError, match=r"appends to a list"):
            merge(a, {key + "+": items})
        return
    merged = merge(a, {key + "+": items})
    assert merged[key] == [*a.get(key, []), *items]


@given(DOCS, DOCS)
def test_provenance_names_the_last_level_that_set_each_leaf(a: dict[str, Any], b: dict[str, Any]) -> None:
    merged = merge_layers([Layer("global.yaml", a), Layer("prod.yaml", b)])
    b_leaves = set_leaves(b)
    for path in set_leaves(merged.data):
        if not path:
            continue
        expected = "prod.yaml" if any(path[: len(p)] == p for p in b_leaves if p) else "global.yaml"
        assert merged.source_of(path) == expected, path


@settings(max_examples=50)
@given(DOCS)
def test_markers_inside_a_replaced_subtree_apply_to_nothing(a: dict[str, Any]) -> None:
    merged = merge({"x": 1}, {"x": {"gone": None, "list+": [1], "kept": a}})
    assert merged == {"x": {"list": [1], "kept": a}}


def test_an_empty_map_merges_as_nothing() -> None:
    assert merge({"m": {"k": 1}}, {"m": {}}) == {"m": {"k": 1}}
    assert merge({"m": {"k": 1}}, {"m": None}) == {}


def test_lists_replace_wholesale() -> None:
    assert merge({"l": [1, 2, 3]}, {"l": [9]}) == {"l": [9]}


def test_maps_merge_deeply() -> None:
    base = {"sampling": {"tail": {"keep_errors": True, "probabilistic_percentage": 10}}}
    assert merge(base, {"sampling": {"tail": {"probabilistic_percentage": 5}}}) == {
        "sampling": {"tail": {"keep_errors": True, "probabilistic_percentage": 5}}
    }


def test_append_needs_a_list_value() -> None:
    with pytest.raises(SpecError, match=r"x\+ appends to a list, so its value must be a list"):
        merge({}, {"x+": "nope"})


def test_non_string_keys_are_refused() -> None:
    with pytest.raises(SpecError, match=r"key 1 at top level must be a string"):
        merge_layers([Layer("f.yaml", {1: "x"})])
