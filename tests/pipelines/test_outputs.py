"""Step outputs round-trip through the artifact store in data formats; nothing is pickled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from mlwright.errors import PipelineError
from mlwright.pipelines import StepFailedError, records
from mlwright.pipelines.outputs import decode, encode
from mlwright.workspace import Workspace

from . import flows


def assert_same(kind: str, got: object, expected: object) -> None:
    if kind == "arrow":
        assert isinstance(got, pa.Table) and got.equals(expected)
    elif kind == "pandas":
        assert isinstance(got, pd.DataFrame)
        pd.testing.assert_frame_equal(got, expected)
    elif kind == "polars":
        assert isinstance(got, pl.DataFrame) and got.equals(expected)
    elif kind == "numpy":
        assert isinstance(got, np.ndarray) and got.dtype == np.float32
        np.testing.assert_array_equal(got, expected)
    else:
        assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("kind", ["arrow", "pandas", "polars", "numpy", "json", "scalar", "bytes"])
def test_every_storable_kind_round_trips_through_output(workspace: Workspace, kind: str) -> None:
    result = flows.emit.run(workspace=workspace, kind=kind, executor="inline")
    assert result.steps[0].output_kind == ("json" if kind == "scalar" else kind)
    assert_same(kind, result.output(), flows.sample(kind))
    cached = flows.emit.run(workspace=workspace, kind=kind, executor="inline")
    assert cached.ran == []
    assert_same(kind, cached.output(), flows.sample(kind))


@pytest.mark.parametrize("kind", ["arrow", "pandas", "polars", "numpy", "json", "bytes"])
def test_encode_then_decode_gives_the_value_back(kind: str) -> None:
    stored_kind, data = encode(flows.sample(kind), "make")
    assert stored_kind == kind
    assert_same(kind, decode(stored_kind, data), flows.sample(kind))


def test_json_keeps_non_finite_floats() -> None:
    kind, data = encode({"loss": float("nan"), "best": float("inf")}, "fit")
    value = decode(kind, data)
    assert np.isnan(value["loss"]) and value["best"] == float("inf")


@pytest.mark.parametrize(("kind", "type_name"), [("lambda", "builtins.function"),
                                                 ("object", "flows.Opaque"),
                                                 ("object-array", "NumPy array of Python objects")])
def test_an_unstorable_output_fails_its_step_with_a_clear_error(workspace: Workspace, kind: str,
                                                                type_name: str) -> None:
    with pytest.raises(StepFailedError) as caught:
        flows.emit.run(workspace=workspace, kind=kind, executor="inline")
    message = str(caught.value)
    assert "Step 'make'" in message and type_name in message
    assert "pickle" in message
    result = caught.value.result
    assert result.status == "failed"
    stored = records.get_run(workspace, result.run_id)
    assert stored.status == "failed" and "Step 'make'" in (stored.error or "")
    (step,) = stored.steps
    assert (step.status, step.attempts, step.output_digest) == ("failed", 1, None)
    assert step.error is not None and step.error.startswith("PipelineError: Step 'make' returned")


def test_encode_refuses_a_dict_with_non_string_keys() -> None:
    with pytest.raises(PipelineError, match=r"Step 'count' returned a builtins\.dict"):
        encode({1: "a"}, "count")
