"""Running on-demand transforms on a batch of rows: the one code path shared by historical
retrieval and online reads, so that training and serving compute these features identically.
"""

from __future__ import annotations

import pyarrow as pa

from mlwright.errors import FeatureError
from mlwright.features.catalog import Selection

ARROW_TYPES = {"int64": pa.int64(), "float64": pa.float64(), "float32": pa.float32(),
               "string": pa.string(), "bool": pa.bool_(), "timestamp": pa.timestamp("us", "UTC")}


def apply_on_demand(batch: pa.RecordBatch, selection: Selection) -> pa.RecordBatch:
    """Append the requested on-demand features to ``batch`` and drop the transforms' hidden
    inputs. The transform gets a pandas DataFrame of its inputs, by feature name."""
    if not selection.on_demand:
        return batch
    columns = {s.column for s in selection.hidden}
    by_feature = {(s.view, s.feature): s.column for s in [*selection.features, *selection.hidden]}
    table = pa.Table.from_batches([batch])
    for od in selection.on_demand:
        wanted = [s for s in selection.features if s.view == od.name]
        inputs: dict[str, pa.ChunkedArray] = {}
        for view in od.input_views:
            for (name, feature), column in by_feature.items():
                if name == view:
                    inputs[feature] = table.column(column)
        for request in od.request_fields:
            inputs[request.name] = table.column(request.name)
        frame = pa.table(inputs).to_pandas() if inputs else None
        try:
            result = od.transform()(frame)
        except FeatureError:
            raise
        except Exception as exc:
            raise FeatureError(f"On-demand view '{od.name}' failed in its transform: "
                               f"{type(exc).__name__}: {exc}") from exc
        for selected in wanted:
            if selected.feature not in getattr(result, "columns", ()):
                raise FeatureError(f"On-demand view '{od.name}' returned no column "
                                   f"'{selected.feature}'; its transform must return a "
                                   "DataFrame with every declared feature.")
            try:
                values = pa.array(result[selected.feature], ARROW_TYPES[selected.dtype],
                                  from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise FeatureError(f"On-demand view '{od.name}' returned '{selected.feature}' "
                                   f"that is not {selected.dtype}: {exc}") from None
            if len(values) != table.num_rows:
                raise FeatureError(f"On-demand view '{od.name}' returned {len(values)} rows for "
                                   f"{table.num_rows}; return one row per input row.")
            table = table.append_column(selected.column, values)
    requested = [s.column for s in selection.features]
    skip = columns | set(requested)
    table = table.select([c for c in table.column_names if c not in skip] + requested)
    return table.combine_chunks().to_batches()[0] if table.num_rows else \
        pa.RecordBatch.from_pylist([], schema=table.schema)
