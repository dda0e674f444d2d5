"""Properties of the hierarchy merge (the semantics documented in docs/hierarchy.md)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import assume, given, settings
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


@given(DOCS, KEYS, st.one_of(SCALARS, st.dictionaries(KEYS, SCALARS, max_size=2)))
def test_a_plus_key_whose_value_is_not_a_list_is_an_ordinary_key(a: dict[str, Any], key: str, value: Any) -> None:
    """Only `key+: [list]` appends, so a key that really ends in + (a route regex "/a+") can be written."""
    merged = merge(a, {key + "+": value})
    assert merged[key + "+"] == value
    assert {k: v for k, v in merged.items() if k != key + "+"} == a


def test_appending_to_a_non_list_names_the_level_that_set_it() -> None:
    with pytest.raises(SpecError, match=r"b.yaml: x\+ appends to a list, but a.yaml set x to a number"):
        merge_layers([Layer("a.yaml", {"x": 1}), Layer("b.yaml", {"x+": [2]})])


def test_non_string_keys_are_refused() -> None:
    with pytest.raises(SpecError, match=r"key 1 at top level must be a string"):
        merge_layers([Layer("f.yaml", {1: "x"})])


# --- deferred maps (collector_overrides): levels combine first, then apply over the rendered config --

DEFERRED = [("o",)]


@st.composite
def overlays(draw: st.DrawFn, depth: int = 2) -> dict[str, Any]:
    """A level's override document with markers: `key: null` deletes, `key+: [..]` appends."""
    doc: dict[str, Any] = {}
    for key in draw(st.lists(KEYS, unique=True, max_size=3)):
        choice = draw(st.integers(0, 3 if depth else 2))
        if choice == 0:
            doc[key] = draw(st.one_of(SCALARS, st.lists(SCALARS, max_size=3)))
        elif choice == 1:
            doc[key] = None
        elif choice == 2:
            doc[key + "+"] = draw(st.lists(SCALARS, max_size=3))
        else:
            doc[key] = draw(overlays(depth - 1))
    return doc


def map_over_non_map(lower: dict[str, Any], higher: dict[str, Any]) -> bool:
    """The one documented difference: a higher level's map where a lower level wrote null or a non-map
    merges into the rendered config (the lower level's value is not replayed)."""
    return any(
        isinstance(value, dict)
        and key in lower
        and (not isinstance(lower[key], dict) or map_over_non_map(lower[key], value))
        for key, value in higher.items()
    )


def outcome(fn: Any) -> Any:
    try:
        return fn()
    except SpecError:
        return SpecError


@given(DOCS, overlays(), overlays())
def test_deferred_levels_combine_like_applying_them_one_after_another(
    rendered: dict[str, Any], a: dict[str, Any], b: dict[str, Any]
) -> None:
    assume(not map_over_non_map(a, b))
    one_by_one = outcome(lambda: merge(merge(rendered, a), b))
    combined = outcome(lambda: merge_layers([Layer("a", {"o": a}), Layer("b", {"o": b})], deferred=DEFERRED))
    if combined is SpecError:
        assert one_by_one is SpecError  # an append to a non-list is refused at load time only when it is wrong
        return
    applied = outcome(lambda: merge(rendered, combined.data.get("o", {})))
    if one_by_one is not SpecError:
        assert applied == one_by_one


@given(overlays())
def test_a_single_level_deferred_map_keeps_its_markers(a: dict[str, Any]) -> None:
    merged = merge_layers([Layer("a", {"o": a})], deferred=DEFERRED)
    assert merged.data.get("o", {}) == a


def test_appends_in_collector_overrides_reach_the_rendered_lists() -> None:
    rendered = {"service": {"pipelines": {"traces": {"processors": ["memory_limiter", "batch"]}}}}
    levels = [
        Layer("global.yaml", {"o": {"service": {"pipelines": {"traces": {"processors+": ["transform/a"]}}}}}),
        Layer("prod.yaml", {"o": {"service": {"pipelines": {"traces": {"processors+": ["transform/b"]}}}}}),
    ]
    merged = merge_layers(levels, deferred=DEFERRED)
    assert merge(rendered, merged.data["o"])["service"]["pipelines"]["traces"]["processors"] == [
        "memory_limiter",
        "batch",
        "transform/a",
        "transform/b",
    ]
    assert merged.source_of(("o", "service", "pipelines", "traces", "processors+", "1")) == "prod.yaml"


def test_null_in_collector_overrides_deletes_from_the_rendered_config() -> None:
    rendered = {"processors": {"batch": {}, "memory_limiter": {}}}
    merged = merge_layers([Layer("prod.yaml", {"o": {"processors": {"batch": None}}})], deferred=DEFERRED)
    assert merge(rendered, merged.data["o"]) == {"processors": {"memory_limiter": {}}}


def test_a_higher_level_setting_the_key_drops_lower_appends() -> None:
    merged = merge_layers([Layer("a", {"o": {"l+": [1]}}), Layer("b", {"o": {"l": [9]}})], deferred=DEFERRED)
    assert merged.data["o"] == {"l": [9]}
