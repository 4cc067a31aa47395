"""Dynamic batching: requests that arrive together are predicted as one batch.

>>> batcher = DynamicBatcher(model.predict, max_batch_rows=256, max_wait_us=500)  # doctest: +SKIP
>>> predictions = await batcher.submit(frame)          # this request's rows only  # doctest: +SKIP

One worker task per model takes the first waiting request, then gathers the requests that
are already queued or arrive within ``max_wait_us`` of it — but only while other requests
are still in flight: a lone request is predicted at once, so batching never adds latency
when there is nothing to batch with, and never more than ``max_wait_us`` when there is. The
batch is one ``predict`` call on the concatenated rows (run in a thread, so the event loop
keeps accepting requests); each request gets its own slice of the result. A ``predict`` that
raises fails every request of that batch with the same error, and the worker carries on.

Written here rather than taken from a library: the serving frameworks that batch (BentoML,
Ray Serve, Triton) each own the whole server; this is the one piece we need, on our loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

Predict = Callable[[Any], Any]  # a DataFrame or a 2-D array of rows in, one result per row out


@dataclass
class _Request:
    frame: pd.DataFrame | np.ndarray
    future: asyncio.Future[Any]
    arrived: float = field(default_factory=time.perf_counter)


@dataclass
class BatchStats:
    """Counters for metrics: how many batches, of how many rows and requests."""

    batches: int = 0
    requests: int = 0
    rows: int = 0
    largest: int = 0
    sizes: list[int] = field(default_factory=list)  # rows per batch, last 1,000

    def record(self, requests: int, rows: int) -> None:
        self.batches += 1
        self.requests += requests
        self.rows += rows
        self.largest = max(self.largest, rows)
        self.sizes.append(rows)
        del self.sizes[:-1000]


class DynamicBatcher:
    """Batches concurrent ``submit`` calls into single ``predict`` calls.

    ``max_batch_rows`` bounds the rows of one batch (a single request larger than it is
    predicted alone, never split); ``max_wait_us`` bounds how long the first request of a
    batch waits for company. Batches of at most ``inline_rows`` rows are predicted on the
    loop itself; ``on_batch(rows)`` is told each batch's size (for metrics). Create it inside
    the running event loop that will use it.
    """

    def __init__(self, predict: Predict, *, max_batch_rows: int = 256,
                 max_wait_us: int = 1000, in_thread: bool = True,
                 inline_rows: int = 0, on_batch: Callable[[int], None] | None = None) -> None:
        if max_batch_rows < 1 or max_wait_us < 0:
            raise ValueError(f"max_batch_rows must be >= 1 and max_wait_us >= 0; got "
                             f"{max_batch_rows} and {max_wait_us}.")
        self.predict = predict
        self.max_batch_rows = max_batch_rows
        self.max_wait = max_wait_us / 1e6
        self.in_thread = in_thread
        self.inline_rows = inline_rows
        self.on_batch = on_batch
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._pending = 0  # submitted and not yet answered
        self._carry: _Request | None = None  # did not fit the last batch: starts the next
        self._worker: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Requests submitted and not yet answered."""
        return self._pending

    async def submit(self, frame: pd.DataFrame | np.ndarray) -> Any:
        """Predict ``frame`` (one request's rows), batched with whatever arrives with it."""
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run())
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending += 1
        try:
            self._queue.put_nowait(_Request(frame, future))
            return await future
        finally:
            self._pending -= 1

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    async def _gather(self, first: _Request) -> list[_Request]:
        batch, rows = [first], len(first.frame)
        deadline = first.arrived + self.max_wait
        while rows < self.max_batch_rows:
            try:
                request = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                # Wait for company only while others are in flight (they may be about to be
                # queued); a lone request goes at once.
                remaining = deadline - time.perf_counter()
                if remaining <= 0 or self._pending <= len(batch):
                    break
                try:
                    request = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if rows + len(request.frame) > self.max_batch_rows:
                self._carry = request
                break
            batch.append(request)
            rows += len(request.frame)
        return batch

    async def _run(self) -> None:
        while True:
            first = self._carry if self._carry is not None else await self._queue.get()
            self._carry = None
            await asyncio.sleep(0)  # let requests that arrived together be queued
            batch = await self._gather(first)
            frames = [r.frame for r in batch]
            if len(frames) == 1:
                whole = frames[0]
            elif isinstance(frames[0], np.ndarray):
                whole = np.concatenate(frames)
            else:
                whole = pd.concat([f for f in frames if isinstance(f, pd.DataFrame)],
                                  ignore_index=True)
            try:
                # A small batch is predicted on the loop: handing it to a thread costs more
                # than the prediction (tens of microseconds); a big one goes to a thread so the
                # loop keeps accepting requests meanwhile.
                if self.in_thread and len(whole) > self.inline_rows:
                    result = await asyncio.to_thread(self.predict, whole)
                else:
                    result = self.predict(whole)
            except Exception as exc:
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(exc)
                continue
            self.stats.record(len(batch), len(whole))
            if self.on_batch is not None:
                self.on_batch(len(whole))
            start = 0
            for request in batch:
                stop = start + len(request.frame)
                if not request.future.done():  # a request cancelled by its client is skipped
                    request.future.set_result(_slice(result, start, stop))
                start = stop


def _slice(result: Any, start: int, stop: int) -> Any:
    if isinstance(result, pd.DataFrame | pd.Series):
        return result.iloc[start:stop]
    if isinstance(result, np.ndarray):
        return result[start:stop]
    return list(result)[start:stop]
