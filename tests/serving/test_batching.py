"""The dynamic batcher: requests arriving together become one predict call, each gets its
own rows back, a lone request does not wait, and a failing predict fails only its batch."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlwright.serving import DynamicBatcher


class Model:
    """Predicts a + 2b per row and records the size of every batch it saw."""

    def __init__(self, fail_on: float | None = None) -> None:
        self.batches: list[int] = []
        self.fail_on = fail_on

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        self.batches.append(len(frame))
        if self.fail_on is not None and (frame["a"] == self.fail_on).any():
            raise ValueError("model failed")
        return (frame["a"] + 2 * frame["b"]).to_numpy()


def frame(start: int, rows: int) -> pd.DataFrame:
    values = np.arange(start, start + rows, dtype=float)
    return pd.DataFrame({"a": values, "b": values * 10})


def expected(f: pd.DataFrame) -> list[float]:
    return list(f["a"] + 2 * f["b"])


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_requests_arriving_together_are_one_batch_and_get_their_own_rows() -> None:
    model = Model()

    async def main() -> list[Any]:
        batcher = DynamicBatcher(model.predict, max_batch_rows=1000, max_wait_us=50_000)
        frames = [frame(i * 100, 1 + i % 4) for i in range(30)]
        results = await asyncio.gather(*(batcher.submit(f) for f in frames))
        await batcher.close()
        return [(list(r), expected(f)) for r, f in zip(results, frames, strict=True)]

    for got, want in run(main()):
        assert got == want
    assert len(model.batches) < 30 and sum(model.batches) == sum(1 + i % 4 for i in range(30))


def test_batches_never_exceed_the_row_limit_and_a_big_request_goes_alone() -> None:
    model = Model()

    async def main() -> list[Any]:
        batcher = DynamicBatcher(model.predict, max_batch_rows=10, max_wait_us=20_000)
        frames = [frame(0, 3) for _ in range(9)] + [frame(0, 25)]
        results = await asyncio.gather(*(batcher.submit(f) for f in frames))
        await batcher.close()
        return [len(r) for r in results]

    assert run(main()) == [3] * 9 + [25]
    assert 25 in model.batches
    assert all(size <= 10 for size in model.batches if size != 25)


def test_a_lone_request_does_not_wait_for_company() -> None:
    model = Model()

    async def main() -> Any:
        # A wait of 60 s would time the request out below if a lone request waited for it.
        batcher = DynamicBatcher(model.predict, max_batch_rows=100, max_wait_us=60_000_000)
        result = await asyncio.wait_for(batcher.submit(frame(1, 2)), timeout=10)
        await batcher.close()
        return result

    assert list(run(main())) == expected(frame(1, 2))
    assert model.batches == [2]


def test_a_request_after_the_wait_is_over_starts_a_new_batch() -> None:
    model = Model()

    async def main() -> None:
        batcher = DynamicBatcher(model.predict, max_batch_rows=100, max_wait_us=1000)
        first = asyncio.ensure_future(batcher.submit(frame(0, 1)))
        await asyncio.sleep(0.05)
        await asyncio.gather(first, batcher.submit(frame(5, 1)))
        await batcher.close()

    run(main())
    assert model.batches == [1, 1]


def test_a_failing_predict_fails_its_batch_and_the_next_batch_works() -> None:
    model = Model(fail_on=7.0)

    async def main() -> tuple[list[Any], Any]:
        batcher = DynamicBatcher(model.predict, max_batch_rows=100, max_wait_us=50_000)
        outcomes = await asyncio.gather(batcher.submit(frame(7, 1)), batcher.submit(frame(1, 1)),
                                        return_exceptions=True)
        after = await batcher.submit(frame(2, 1))
        await batcher.close()
        return list(outcomes), after

    outcomes, after = run(main())
    assert all(isinstance(o, ValueError) for o in outcomes)
    assert list(after) == expected(frame(2, 1))
    assert model.batches[-1] == 1


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_batch_rows must be >= 1"):
        DynamicBatcher(Model().predict, max_batch_rows=0)


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(1, 12), min_size=1, max_size=25),
       gaps=st.lists(st.sampled_from([0.0, 0.0, 0.001, 0.003]), min_size=25, max_size=25),
       limit=st.integers(1, 30), in_thread=st.booleans())
def test_any_arrival_pattern_gives_each_request_exactly_its_predictions(
        sizes: list[int], gaps: list[float], limit: int, in_thread: bool) -> None:
    model = Model()
    frames = [frame(i * 1000, n) for i, n in enumerate(sizes)]

    async def main() -> list[Any]:
        batcher = DynamicBatcher(model.predict, max_batch_rows=limit, max_wait_us=2000,
                                 in_thread=in_thread)
        tasks = []
        for f, gap in zip(frames, gaps, strict=False):
            tasks.append(asyncio.ensure_future(batcher.submit(f)))
            if gap:
                await asyncio.sleep(gap)
        results = await asyncio.gather(*tasks)
        stats = batcher.stats
        await batcher.close()
        assert stats.requests == len(frames) and stats.rows == sum(sizes)
        return list(results)

    results = run(main())
    for got, f in zip(results, frames, strict=True):
        assert list(got) == expected(f)
    # A batch holds at most `limit` rows, unless it is one request bigger than that.
    assert all(size <= limit or size in sizes for size in model.batches)
    assert sum(model.batches) == sum(sizes)
