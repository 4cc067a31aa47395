"""Cache keys: the same arguments give the same key whatever their order; others do not."""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mlwright.errors import PipelineError
from mlwright.pipelines.graph import Graph, canonical

from . import flows

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text("abcxyz", max_size=3), inner, max_size=4),
                      max_leaves=12)


def key(*args: Any, **kwargs: Any) -> str:
    graph = Graph("keys")
    graph.add(flows.make, args, kwargs)
    graph.assign_keys()
    return graph.nodes[0].key


def model(value: Any) -> Any:
    """The independent twin: a value's identity as type and content, dict order ignored."""
    if isinstance(value, bool | int | str) or value is None:
        return (type(value).__name__, value)
    if isinstance(value, float):
        return ("float", value.hex() if math.isfinite(value) else repr(value))
    if isinstance(value, list):
        return ("list", tuple(model(v) for v in value))
    return ("dict", frozenset((k, model(v)) for k, v in value.items()))


@given(st.dictionaries(st.text(max_size=5), VALUES, max_size=6), st.randoms())
def test_the_order_of_dict_entries_does_not_change_the_key(value: dict[str, Any],
                                                           rnd: Any) -> None:
    items = list(value.items())
    rnd.shuffle(items)
    assert key(value) == key(dict(items))
    assert canonical(value, "x") == canonical(dict(items), "x")


@given(VALUES, VALUES)
@example(math.nan, "nan")
@example(-math.inf, "-inf")
@example([math.inf], ["inf"])
def test_different_values_give_different_keys(first: Any, second: Any) -> None:
    assert (key(first) == key(second)) == (model(first) == model(second))


def test_keyword_order_does_not_change_the_key_but_names_do() -> None:
    assert key(a=1, b=[1, 2]) == key(b=[1, 2], a=1)
    assert key(a=1) != key(b=1)
    assert key(1) != key(a=1)
    assert key(1) != key(1.0) != key(True)  # type: ignore[comparison-overlap]
    assert key(b"ab") != key(b"ba")


def test_times_and_bytes_are_hashable_but_other_objects_are_not() -> None:
    assert canonical(date(2024, 1, 2), "x") == {"$time": "2024-01-02"}
    assert canonical(datetime(2024, 1, 2, 3, 4), "x") == {"$time": "2024-01-02T03:04:00"}
    assert set(canonical(b"abc", "x")) == {"$sha256"}
    assert json.dumps(canonical({"b": (1, 2), 3: "c"}, "x")) == '{"3": "c", "b": [1, 2]}'
    with pytest.raises(PipelineError, match=r"An argument of step 'make' is a object, which cannot "
                                            r"be part of a cache key"):
        key(object())
    with pytest.raises(PipelineError, match=r"Argument 'when' of step 'make' is a set"):
        key(when={1})


def test_the_key_chains_through_upstream_steps() -> None:
    one = flows.chain.trace(flows.chain.bind({"log": "x", "factor": 2.0}, None))[0]
    two = flows.chain.trace(flows.chain.bind({"log": "x", "factor": 3.0}, None))[0]
    assert [n.name for n in one.nodes] == ["load", "scale", "total"]
    assert one.nodes[0].key == two.nodes[0].key
    assert one.nodes[1].key != two.nodes[1].key
    assert one.nodes[2].key != two.nodes[2].key  # total's own arguments did not change


def test_same_body_with_other_decorators_hashes_the_same(tmp_path: Any) -> None:
    import importlib.util

    from mlwright.pipelines.steps import code_hash

    one = tmp_path / "one.py"
    two = tmp_path / "two.py"
    one.write_text("from mlwright.pipelines import step\n\n@step\ndef f(x):\n    return x + 1\n")
    two.write_text('from mlwright.pipelines import step\n\n@step(retries=2, backoff=0.1)\n'
                   'def f(x):\n    """Adds one."""\n    # why: a comment\n    return (x +\n'
                   '            1)\n')
    three = tmp_path / "three.py"
    three.write_text("from mlwright.pipelines import step\n\n@step\ndef f(x):\n    return x + 2\n")
    hashes = []
    for path in (one, two, three):
        spec = importlib.util.spec_from_file_location(f"hash_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        hashes.append(code_hash(module.f.fn))
    assert hashes[0] == hashes[1]
    assert hashes[0] != hashes[2]
