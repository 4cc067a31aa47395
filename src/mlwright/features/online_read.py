"""Reading features online: the serving hot path.

>>> reader = online_reader(["user_stats:clicks"])                     # doctest: +SKIP
>>> result = reader.get({"user_id": [42, 7]})                          # doctest: +SKIP
>>> result.to_dict(), result.statuses                                  # doctest: +SKIP
({'user_id': [42, 7], 'clicks': [3.0, None]}, {'clicks': ['present', 'missing']})

An :class:`OnlineReader` resolves the features once and keeps the online store open, so a
call is one key lookup per view (one SQLite query, one Redis ``GET``/``MGET``) plus a TTL
check. Each value carries a status: ``present``, ``missing`` (no row for the entity) or
``expired`` (the newest row is older than the view's TTL; the value is null).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from mlwright.errors import FeatureError
from mlwright.features.catalog import Selection, load_catalog
from mlwright.features.on_demand import ARROW_TYPES, apply_on_demand
from mlwright.features.online import OnlineStore, encode_key, open_online_store
from mlwright.workspace import Workspace, as_workspace

WorkspaceArg = Workspace | str | os.PathLike[str] | None
PRESENT, MISSING, EXPIRED = "present", "missing", "expired"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class OnlineResult:
    """Entity keys, feature values and a status per value, column by column."""

    keys: dict[str, list[Any]]
    values: dict[str, list[Any]]
    statuses: dict[str, list[str]]

    def to_dict(self) -> dict[str, list[Any]]:
        return {**self.keys, **self.values}

    def to_arrow(self) -> pa.Table:
        return pa.table(self.to_dict())


@dataclass
class _ViewPlan:
    read: Callable[[Sequence[str]], list[tuple[Any, ...] | None]]
    keys: list[str]
    key_types: list[str]
    ttl_us: int | None
    outputs: list[tuple[str, int, str]]  # column, position in the stored row, dtype


def _columns(entity_rows: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
             needed: Sequence[str]) -> tuple[dict[str, list[Any]], int]:
    if isinstance(entity_rows, Mapping):
        columns = {k: list(v) if not isinstance(v, list) else v for k, v in entity_rows.items()}
    else:
        columns = {k: [row.get(k) for row in entity_rows] for k in needed}
        for i, row in enumerate(entity_rows):
            absent = [k for k in needed if k not in row]
            if absent:
                raise FeatureError(f"Entity row {i} has no {', '.join(absent)}.")
    missing = [k for k in needed if k not in columns]
    if missing:
        raise FeatureError(f"The entity rows have no {', '.join(map(repr, missing))} (given: "
                           f"{', '.join(columns) or 'nothing'}).")
    lengths = {len(columns[k]) for k in needed}
    if len(lengths) > 1:
        raise FeatureError("The entity columns have different lengths; give one value per row "
                           "in each.")
    return columns, lengths.pop() if lengths else 0


class OnlineReader:
    """Prepared online reads of a fixed set of features; build once, call :meth:`get` often."""

    def __init__(self, workspace: WorkspaceArg, features: str | Sequence[str], *,
                 full_feature_names: bool = False, store: OnlineStore | None = None) -> None:
        ws = as_workspace(workspace)
        self.selection: Selection = load_catalog(ws).select(features,
                                                            full_names=full_feature_names)
        self._own_store = store is None
        self.store = store or open_online_store(ws.online_url, prefix=ws.settings.online_prefix)
        wanted = {(s.view, s.feature): s.column for s in [*self.selection.features,
                                                          *self.selection.hidden]}
        self._plans: list[_ViewPlan] = []
        for view in self.selection.views:
            fv = view.view
            outputs = [(wanted[(fv.name, f.name)], i + 1, f.dtype)
                       for i, f in enumerate(fv.features) if (fv.name, f.name) in wanted]
            ttl = int(fv.ttl / timedelta(microseconds=1)) if fv.ttl is not None else None
            self._plans.append(_ViewPlan(self.store.reader(view.online_table),
                                         list(fv.join_keys), list(fv.join_keys.values()),
                                         ttl, outputs))
        self.join_keys = list(self.selection.join_keys)
        self._needed = self.join_keys + [f.name for f in self.selection.request_fields]

    def get(self, entity_rows: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]]
            ) -> OnlineResult:
        """Features for the entities in ``entity_rows`` (columns ``{"user_id": [1, 2]}`` or
        rows ``[{"user_id": 1}]``); missing entities give nulls with status ``missing``."""
        columns, n = _columns(entity_rows, self._needed)
        now = time.time_ns() // 1000
        values: dict[str, list[Any]] = {}
        statuses: dict[str, list[str]] = {}
        for plan in self._plans:
            key_columns = [columns[k] for k in plan.keys]
            if len(key_columns) == 1 and plan.key_types[0] == "int64" and all(
                    type(v) is int for v in key_columns[0]):
                keys = [str(v) for v in key_columns[0]]  # the common case, without the checks
            else:
                keys = [encode_key(row, plan.key_types) for row in zip(*key_columns, strict=True)]
            rows = plan.read(keys)
            status = [PRESENT] * n
            for i, row in enumerate(rows):
                if row is None:
                    status[i] = MISSING
                elif plan.ttl_us is not None and now - row[0] > plan.ttl_us:
                    status[i] = EXPIRED
                    rows[i] = None
            for column, position, dtype in plan.outputs:
                out = [row[position] if row is not None else None for row in rows]
                if dtype == "timestamp":
                    out = [EPOCH + timedelta(microseconds=v) if v is not None else None
                           for v in out]
                values[column] = out
                statuses[column] = status
        if self.selection.on_demand:
            self._on_demand(columns, values, statuses, n)
        keys_out = {k: columns[k] for k in self.join_keys}
        return OnlineResult(keys_out, {s.column: values[s.column]
                                       for s in self.selection.features},
                            {s.column: statuses[s.column] for s in self.selection.features})

    def _on_demand(self, columns: dict[str, list[Any]], values: dict[str, list[Any]],
                   statuses: dict[str, list[str]], n: int) -> None:
        arrays = {c: pa.array(v, ARROW_TYPES[s.dtype]) for s in
                  [*self.selection.features, *self.selection.hidden] if not s.on_demand
                  for c, v in [(s.column, values[s.column])]}
        for f in self.selection.request_fields:
            arrays[f.name] = pa.array(columns[f.name], ARROW_TYPES[f.dtype])
        batch = pa.RecordBatch.from_pydict(arrays) if arrays else pa.RecordBatch.from_pydict(
            {"__n": pa.nulls(n)})
        result = apply_on_demand(batch, self.selection)
        for s in self.selection.features:
            if s.on_demand:
                values[s.column] = result.column(s.column).to_pylist()
                statuses[s.column] = [PRESENT if v is not None else MISSING
                                      for v in values[s.column]]

    def close(self) -> None:
        if self._own_store:
            self.store.close()

    def __enter__(self) -> OnlineReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def online_reader(features: str | Sequence[str], *, workspace: WorkspaceArg = None,
                  full_feature_names: bool = False) -> OnlineReader:
    """A prepared reader for ``features`` (a service name or ``view:feature`` references)."""
    return OnlineReader(workspace, features, full_feature_names=full_feature_names)


def get_online_features(entity_rows: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
                        features: str | Sequence[str], *, workspace: WorkspaceArg = None,
                        full_feature_names: bool = False) -> OnlineResult:
    """One-off online read; on a hot path build an :func:`online_reader` once instead."""
    with OnlineReader(workspace, features, full_feature_names=full_feature_names) as reader:
        return reader.get(entity_rows)
