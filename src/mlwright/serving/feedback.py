"""Feedback: the true labels of logged predictions, sent later by request id.

>>> log = FeedbackLog(ws.feedback_dir, writer_id="host-1")          # doctest: +SKIP
>>> log.record(FeedbackItem("3f2a", label=1.0, row=0))             # doctest: +SKIP

Written like the prediction log (buffered; a background thread; whole files only; a failed
write kept and retried) to ``DIR/date=YYYY-MM-DD/hour=HH/part-WRITER-SEQ-UUID8.parquet``,
one row per item: ``request_id``, ``row`` (null: the label is for every row of the request),
``label``, ``label_text``, ``label_json`` and ``time`` (when the label arrived).

Monitoring joins the two logs on ``f.request_id = p.request_id AND (f.row IS NULL OR f.row =
p.row)``. A number (or a bool) goes to ``label`` (DOUBLE), so error metrics against
``output`` are plain SQL on the join; a string, a class name, goes to ``label_text``, equal to
``output_text`` as is; anything else (a list, a dict) to ``label_json``. One type per column,
whatever the labels, keeps every file of the log readable together.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from mlwright.serving.predlog import HOUR_US, UTC_MICROS, ParquetLog, hour_folder
from mlwright.workspace import Workspace, as_workspace

FEEDBACK_SCHEMA = pa.schema([
    ("request_id", pa.string()), ("row", pa.int32()), ("label", pa.float64()),
    ("label_text", pa.string()), ("label_json", pa.string()), ("time", UTC_MICROS)])


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass
class FeedbackItem:
    """The label of one logged request (``row`` None: of all its rows)."""

    request_id: str
    label: Any
    row: int | None = None
    time_us: int = field(default_factory=now_us)  # UTC microseconds, when it arrived


def _label(value: Any) -> tuple[float | None, str | None, str | None]:
    """(label, label_text, label_json) of one label: exactly one is set, or none for null."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None:
        return None, None, None
    if isinstance(value, bool | int | float):
        return float(value), None, None
    if isinstance(value, str):
        return None, value, None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return None, None, json.dumps(value, default=str)


def feedback_table(items: Sequence[FeedbackItem]) -> pa.Table:
    """Rows of feedback items; raises when an item is malformed."""
    labels = [_label(item.label) for item in items]
    for item in items:
        if not isinstance(item.request_id, str) or not item.request_id:
            raise ValueError(f"request id {item.request_id!r} is not a non-empty string")
    return pa.table([
        pa.array([item.request_id for item in items], pa.string()),
        pa.array([item.row for item in items], pa.int32()),
        pa.array([label[0] for label in labels], pa.float64()),
        pa.array([label[1] for label in labels], pa.string()),
        pa.array([label[2] for label in labels], pa.string()),
        pa.array([item.time_us for item in items], pa.int64()).cast(UTC_MICROS),
    ], schema=FEEDBACK_SCHEMA)


class FeedbackLog(ParquetLog[FeedbackItem]):
    """The feedback log of one server process; ``record`` is O(1) and does no I/O."""

    what = "feedback log"

    def _rows(self, entry: FeedbackItem) -> int:
        return 1

    def _group_key(self, entry: FeedbackItem) -> Hashable:
        return entry.time_us // HOUR_US

    def _folder(self, key: Any) -> str:
        return hour_folder(int(key) * HOUR_US)

    def _table(self, entries: Sequence[FeedbackItem]) -> pa.Table:
        return feedback_table(entries)

    def _describe(self, entry: FeedbackItem) -> str:
        return f"feedback for request '{entry.request_id}'"


def record_feedback(items: Sequence[FeedbackItem], *,
                    workspace: Workspace | str | os.PathLike[str] | None = None,
                    writer_id: str = "cli") -> int:
    """Write ``items`` to the workspace's feedback log now (for scripts and backfills);
    return how many were written."""
    ws = as_workspace(workspace)
    log = FeedbackLog(ws.feedback_dir, writer_id=writer_id, flush_interval=3600)
    for item in items:
        log.record(item)
    log.close()
    return log.stats.rows
