"""The models a worker serves: loaded, batched, logged, and following their aliases.

>>> host = ModelHost("demo", ["delays@champion"], settings=ServeSettings())   # doctest: +SKIP
>>> await host.start()                                                       # doctest: +SKIP
>>> (await host.infer("delays", {"distance": [1200.0]})).outputs             # doctest: +SKIP

Every API (REST ``/v1`` and ``/v2``, gRPC, the stream consumer) calls :meth:`ModelHost.infer`:
check the columns against the signature → look up features → predict through the model's
dynamic batcher → log the request off the request path. A served reference that names an
alias is followed: when the alias moves, the new version is loaded in a thread while the old
one keeps answering, then one assignment switches to it; requests already queued on the old
version finish there, so no request fails during a switch.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlwright.errors import LimitExceededError, NotFoundError, ServingError
from mlwright.registry.versions import get_model_version, parse_model_ref
from mlwright.serving.batching import DynamicBatcher
from mlwright.serving.cache import ResponseCache
from mlwright.serving.metrics import ServingMetrics
from mlwright.serving.predlog import PredictionLog, PredictionRecord
from mlwright.serving.scoring import ScoringPath, load_scoring_path
from mlwright.serving.settings import ServeSettings
from mlwright.workspace import Workspace, as_workspace

log = logging.getLogger("mlwright.serving")
WorkspaceArg = Workspace | str | os.PathLike[str] | None
_OIP = {"f": "FP64", "i": "INT64", "u": "UINT64", "b": "BOOL", "U": "BYTES", "O": "BYTES"}


@dataclass(frozen=True)
class TensorSpec:
    """An input or output as the Open Inference Protocol describes it."""

    name: str
    datatype: str
    shape: list[int]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": self.shape}


@dataclass
class ServedModel:
    """One loaded version of a served model, with its batcher and cache."""

    name: str
    ref: str  # what was asked for: NAME@ALIAS follows the alias, NAME@N stays
    path: ScoringPath
    batcher: DynamicBatcher
    cache: ResponseCache | None = None
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)

    @property
    def version(self) -> int:
        return self.path.version.version

    @property
    def flavor(self) -> str:
        return self.path.version.flavor


@dataclass
class Inference:
    """A request's answer: predictions per output, and what the log needs."""

    request_id: str
    model: str
    version: int
    outputs: dict[str, np.ndarray]
    rows: int
    latency_ms: float
    cached: bool = False


_PREFIX = uuid.uuid4().hex[:16]
_COUNTER = itertools.count()


def _new_prefix() -> None:  # a forked child must not repeat its parent's ids
    global _PREFIX
    _PREFIX = uuid.uuid4().hex[:16]


os.register_at_fork(after_in_child=_new_prefix)


def new_request_id() -> str:
    """A request id unique across processes: a random per-process prefix and a counter
    (uuid4 reads the OS's random source on every call: 5% of a small request's time)."""
    return f"{_PREFIX}{next(_COUNTER):016x}"


class ModelHost:
    """Loads the served versions, predicts through their batchers and follows aliases."""

    def __init__(self, workspace: WorkspaceArg, refs: list[str], *,
                 settings: ServeSettings | None = None, metrics: ServingMetrics | None = None,
                 worker_id: str | None = None) -> None:
        self.workspace = as_workspace(workspace)
        self.refs = list(refs)
        self.settings = settings or ServeSettings()
        self.metrics = metrics or ServingMetrics()
        self.worker_id = worker_id or f"{os.getpid()}"
        self.log: PredictionLog | None = None
        self._models: dict[str, ServedModel] = {}
        self._follower: asyncio.Task[None] | None = None
        self._retired: list[ServedModel] = []
        self.started = False

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Load every served version (in threads: the loop stays free) and begin following."""
        names = [parse_model_ref(ref)[0] for ref in self.refs]
        duplicated = {n for n in names if names.count(n) > 1}
        if duplicated:
            raise ServingError(f"Model {sorted(duplicated)[0]!r} is named twice; serve one "
                               "reference per model.")
        if self.settings.log_predictions:
            self.log = PredictionLog(self.workspace.predictions_dir, writer_id=self.worker_id,
                                     flush_interval=self.settings.log_flush_seconds)
        for ref in self.refs:
            served = await asyncio.to_thread(self._load, ref)
            self._models[served.name] = served
            self.metrics.model_loaded(served.name, served.version)
        if any(not parse_model_ref(r)[1] or not str(parse_model_ref(r)[1]).isdigit()
               for r in self.refs):
            self._follower = asyncio.get_running_loop().create_task(self._follow())
        self.started = True

    async def stop(self) -> None:
        """Stop following, close the batchers and write out the prediction log."""
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
        for served in [*self._models.values(), *self._retired]:
            await served.batcher.close()
            await asyncio.to_thread(served.path.close)
        self._retired.clear()
        if self.log is not None:
            await asyncio.to_thread(self.log.close)
        self.started = False

    def _load(self, ref: str) -> ServedModel:
        path = load_scoring_path(ref, workspace=self.workspace)
        name = path.version.name
        version = path.version.version
        batcher = DynamicBatcher(path.predict, max_batch_rows=self.settings.max_batch_rows,
                                 max_wait_us=self.settings.max_wait_us, inline_rows=64,
                                 on_batch=lambda rows: self.metrics.batch(name, version, rows))
        cache = ResponseCache(self.settings.response_cache) if self.settings.response_cache else None
        return ServedModel(name, ref, path, batcher, cache,
                           inputs=[TensorSpec(f.name, f.datatype, [-1]) for f in path.fields],
                           outputs=[self._output_spec(path)])

    @staticmethod
    def _output_spec(path: ScoringPath) -> TensorSpec:
        # Every flavor answers numbers (a classifier: probabilities, not the label's text).
        return TensorSpec(path.output_name, "FP64", [-1])

    async def _follow(self) -> None:
        """Ask the registry every ``follow_seconds`` where each followed alias points."""
        while True:
            await asyncio.sleep(self.settings.follow_seconds)
            for name, served in list(self._models.items()):
                at = parse_model_ref(served.ref)[1]
                if at is not None and at.isdigit():
                    continue
                try:
                    info = await asyncio.to_thread(get_model_version, served.ref,
                                                   workspace=self.workspace)
                    if info.version == served.version:
                        continue
                    fresh = await asyncio.to_thread(self._load, served.ref)
                except Exception as exc:  # the old version keeps serving; say why, try again
                    log.warning("following %s failed: %s", served.ref, exc)
                    continue
                self._models[name] = fresh  # the switch: one assignment
                self.metrics.model_loaded(name, fresh.version)
                log.info("%s now serves version %s (was %s)", served.ref, fresh.version,
                         served.version)
                asyncio.get_running_loop().create_task(self._retire(served))

    async def _retire(self, old: ServedModel) -> None:
        """Close a replaced version once the requests queued on it have been answered."""
        self._retired.append(old)
        deadline = time.monotonic() + max(self.settings.drain_seconds, 1.0)
        while old.batcher.pending and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await old.batcher.close()
        await asyncio.to_thread(old.path.close)
        with contextlib.suppress(ValueError):
            self._retired.remove(old)

    # -- queries ---------------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self._models)

    def check_rows(self, rows: int) -> None:
        """Refuse a request of more rows than ``max_request_rows`` (413)."""
        if rows > self.settings.max_request_rows:
            raise LimitExceededError(f"The request has {rows} rows; the limit is "
                                     f"{self.settings.max_request_rows} (split it, or use "
                                     "`mlwright predict` for tables).", 413)

    def record_error(self, name: str, status: int) -> None:
        """Count an error answer under the model and the version it serves now."""
        served = self._models.get(name)
        self.metrics.error(name, status, served.version if served is not None else None)

    def served(self, name: str) -> ServedModel:
        try:
            return self._models[name]
        except KeyError:
            served = ", ".join(sorted(self._models)) or "none"
            raise NotFoundError(f"Model '{name}' is not served here (served: {served}).") from None

    def is_ready(self, name: str | None = None) -> bool:
        if name is None:
            return self.started and bool(self._models)
        return self.started and name in self._models

    # -- the request path ------------------------------------------------------------------

    async def infer(self, name: str, columns: Mapping[str, Any], *, version: str | None = None,
                    request_id: str | None = None, token_name: str | None = None,
                    checked: bool = False) -> Inference:
        """Check, look up, predict (batched) and log one request. ``checked``: the columns
        came from :func:`columns_from_records` for this model's fields (checked there);
        the contract is still applied."""
        started = time.perf_counter()
        arrived_us = time.time_ns() // 1000
        request_id = request_id or new_request_id()
        served = self.served(name)
        if version is not None and version != str(served.version):
            raise NotFoundError(f"Model '{name}' serves version {served.version}, not {version!r}; "
                                f"leave the version out or ask for {served.version}.")
        path = served.path
        if checked:
            path.check_contract(columns)
            checked_columns: Mapping[str, np.ndarray] = columns
        else:
            checked_columns = path.check(columns)
        rows = len(next(iter(checked_columns.values())))
        self.check_rows(rows)
        cached = None
        key = b""
        if served.cache is not None:
            key = served.cache.key(served.version, checked_columns)
            cached = served.cache.get(key)
        features: dict[str, list[Any]] = {}
        if cached is None:
            features = path.lookup(checked_columns)
            prediction = await served.batcher.submit(path.model_input(checked_columns, features))
            prediction = np.asarray(prediction)
            if served.cache is not None:
                served.cache.put(key, prediction)
        else:
            prediction = cached
        latency_ms = (time.perf_counter() - started) * 1000
        self.metrics.observe(name, served.version, rows, latency_ms)
        if self.log is not None:
            self.log.record(PredictionRecord(
                request_id=request_id, time_us=arrived_us, model=name, version=served.version,
                inputs=checked_columns, features=features, outputs=prediction,
                feature_views=path.feature_views, latency_ms=latency_ms))
        return Inference(request_id, name, served.version, {path.output_name: prediction}, rows,
                         latency_ms, cached is not None)

    def batch_sizes(self) -> dict[str, list[int]]:
        return {name: list(s.batcher.stats.sizes) for name, s in self._models.items()}


def datatype_of(array: np.ndarray) -> str:
    """The OIP datatype of an output array."""
    if array.dtype.kind == "f":
        return "FP32" if array.dtype == np.float32 else "FP64"
    if array.dtype.kind == "i":
        return {1: "INT8", 2: "INT16", 4: "INT32"}.get(array.dtype.itemsize, "INT64")
    return _OIP.get(array.dtype.kind, "BYTES")
