"""Train/serve skew: the features a model would train on now versus what serving reads.

>>> report = check_skew("ranking", sample=200)          # doctest: +SKIP
>>> report.ok, len(report.mismatches)                   # doctest: +SKIP
(True, 0)

For each stored view of a feature service, a sample of entities is drawn from the view's
offline data; their features are computed offline as of now (historical retrieval) and read
online, and every value is compared. Null offline and ``missing``/``expired`` online agree;
anything else that differs is a mismatch (a stale or failed materialization, a push that
reached only one side, a changed source).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from mlwright.features.catalog import load_catalog
from mlwright.features.historical import get_historical_features
from mlwright.features.online_read import OnlineReader
from mlwright.features.relations import connect, quote, view_relation
from mlwright.features.sources import SourceContext
from mlwright.workspace import Workspace, as_workspace

WorkspaceArg = Workspace | str | os.PathLike[str] | None


@dataclass(frozen=True)
class Mismatch:
    view: str
    entity: dict[str, Any]
    feature: str
    offline: Any
    online: Any
    status: str

    def to_dict(self) -> dict[str, Any]:
        return {"view": self.view, "entity": self.entity, "feature": self.feature,
                "offline": _plain(self.offline), "online": _plain(self.online),
                "online_status": self.status}


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


@dataclass
class SkewReport:
    service: str
    at: datetime
    entities: int = 0
    values: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # on-demand features (need requests)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        return {"service": self.service, "at": self.at.isoformat(), "entities": self.entities,
                "values": self.values, "ok": self.ok, "skipped": self.skipped,
                "mismatches": [m.to_dict() for m in self.mismatches]}


def _same(offline: Any, online: Any, tolerance: float) -> bool:
    if isinstance(offline, float) and isinstance(online, float):
        if math.isnan(offline) and math.isnan(online):
            return True
        return math.isclose(offline, online, rel_tol=tolerance, abs_tol=tolerance)
    return bool(offline == online)


def _sample_keys(ws: Workspace, view: Any, sample: int, seed: int) -> pa.Table:
    conn = connect(ws)
    try:
        keys = ", ".join(quote(k) for k in view.view.join_keys)
        relation = view_relation(SourceContext(conn, ws), view)
        return conn.sql(f"SELECT * FROM (SELECT DISTINCT {keys} FROM ({relation})) "
                        f"USING SAMPLE reservoir({int(sample)} ROWS) REPEATABLE ({int(seed)})"
                        ).to_arrow_table()
    finally:
        conn.close()


def check_skew(service: str, *, workspace: WorkspaceArg = None, sample: int = 100,
               seed: int = 0, tolerance: float = 1e-9) -> SkewReport:
    """Compare offline-as-of-now and online values for ``sample`` entities per view of
    ``service`` (a feature service name or a list of references)."""
    ws = as_workspace(workspace)
    selection = load_catalog(ws).select(service)
    report = SkewReport(service, datetime.now(UTC))
    report.skipped = [f"{s.view}:{s.feature}" for s in selection.features if s.on_demand]
    for view in selection.views:
        wanted = [s for s in selection.features if s.view == view.name]
        if not wanted:
            continue
        refs = [f"{s.view}:{s.feature}" for s in wanted]
        keys = _sample_keys(ws, view, sample, seed)
        if not keys.num_rows:
            continue
        entities = keys.append_column("event_timestamp", pa.array(
            [report.at] * keys.num_rows, pa.timestamp("us", "UTC")))
        offline = get_historical_features(entities, refs, workspace=ws,
                                          full_feature_names=True).to_arrow().to_pydict()
        with OnlineReader(ws, refs, full_feature_names=True) as reader:
            online = reader.get({k: keys.column(k).to_pylist() for k in keys.column_names})
        report.entities += keys.num_rows
        for s in wanted:
            column = f"{s.view}__{s.feature}"
            for i, (off, on, status) in enumerate(zip(offline[column], online.values[column],
                                                      online.statuses[column], strict=True)):
                report.values += 1
                if off is None and on is None:
                    continue
                if off is None or on is None or not _same(off, on, tolerance):
                    entity = {k: keys.column(k)[i].as_py() for k in keys.column_names}
                    report.mismatches.append(Mismatch(view.name, entity, s.feature, off, on,
                                                      status))
    return report
