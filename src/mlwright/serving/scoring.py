"""One model version's path from request columns to predictions — the same for the server,
the stream consumer and batch scoring.

>>> path = load_scoring_path("delays@champion", workspace="demo")       # doctest: +SKIP
>>> columns = path.check({"origin": ["JFK"], "carrier": ["UA"], "hour": [7]})   # doctest: +SKIP
>>> features = path.lookup(columns)                                      # doctest: +SKIP
>>> path.predict(path.model_input(columns, features))                   # doctest: +SKIP

A request carries the signature's inputs that the feature store does not provide, plus the
entity keys (and request fields of on-demand views) of the model's feature service, if it
has one (``register_model(..., feature_service="delay_model")``). ``check`` validates them
against the signature (every bad field at once) and the contract the training data met;
``lookup`` reads the service's features from the online store; ``model_input`` assembles
the columns in the model's order; ``predict`` calls the flavor. Batch scoring replaces
``lookup`` with a point-in-time historical retrieval and keeps the rest.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlwright.errors import NotFoundError, RegistryError, RequestValidationError
from mlwright.features.online_read import OnlineReader
from mlwright.registry.versions import LoadedModel, ModelVersionInfo, load_model
from mlwright.serving.fields import FieldSpec, check_columns
from mlwright.workspace import Workspace, as_workspace

WorkspaceArg = Workspace | str | os.PathLike[str] | None
_DTYPE_KIND = {"int64": ("int", "INT64"), "float64": ("float", "FP64"),
               "float32": ("float", "FP32"), "bool": ("bool", "BOOL"), "string": ("string", "BYTES"),
               "timestamp": ("string", "BYTES")}


def spec_for_dtype(name: str, dtype: str) -> FieldSpec:
    """The request field for an entity key or request field of a feature store type."""
    kind, datatype = _DTYPE_KIND.get(dtype, ("string", "BYTES"))
    return FieldSpec(name, kind, datatype, nullable=False)


@dataclass
class ScoringPath:
    """A loaded version with everything a request needs prepared once."""

    loaded: LoadedModel
    fields: list[FieldSpec]  # what a request sends, in order
    feature_columns: list[str] = field(default_factory=list)  # what the store adds
    feature_service: str | None = None
    feature_views: list[str] = field(default_factory=list)  # "view@N" read for each request
    reader: OnlineReader | None = None
    contract: Any = None  # a data.records.RecordValidator, when the signature names a contract
    output_name: str = "prediction"
    _fields_are_inputs: bool | None = None  # whether a request's matrix is the model's input

    @property
    def version(self) -> ModelVersionInfo:
        return self.loaded.version

    @property
    def input_names(self) -> list[str]:
        signature = self.loaded.version.signature
        return signature.input_names if signature is not None else []

    def check(self, columns: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The request's columns validated against the signature and the contract."""
        checked = check_columns(columns, self.fields)
        self.check_contract(checked)
        return checked

    def check_contract(self, columns: Mapping[str, np.ndarray]) -> None:
        """The training data's contract, record by record, on already type-checked columns."""
        if self.contract is None:
            return
        names = list(columns)
        problems: list[dict[str, str]] = []
        lists = {n: columns[n].tolist() for n in names}
        for i in range(len(next(iter(lists.values())))):
            record = {n: lists[n][i] for n in names}
            for violation in self.contract(record):
                if violation.severity == "error":
                    problems.append({"field": f"{violation.field}[{i}]",
                                     "problem": f"{violation.message} (contract rule "
                                                f"{violation.rule_id})"})
            if len(problems) > 50:
                break
        if problems:
            shown = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:5])
            raise RequestValidationError(f"The request breaks the training data's contract: "
                                         f"{shown}.", problems)

    def lookup(self, columns: Mapping[str, np.ndarray]) -> dict[str, list[Any]]:
        """The feature service's values for the request's entities (online store)."""
        if self.reader is None:
            return {}
        needed = {k: columns[k].tolist() for k in self.reader.join_keys}
        for request_field in self.reader.selection.request_fields:
            needed[request_field.name] = columns[request_field.name].tolist()
        return self.reader.get(needed).values

    def model_input(self, columns: Mapping[str, Any], features: Mapping[str, Any]) -> Any:
        """The columns in the model's order: a 2-D float array when the predictor takes one
        (no pandas on the hot path), else a DataFrame."""
        names = self.input_names
        matrix = getattr(columns, "matrix", None)
        if matrix is not None and not features and self._fields_are_inputs is None:
            self._fields_are_inputs = [f.name for f in self.fields] == names \
                and _takes_array(self.loaded, names)
        if matrix is not None and not features and self._fields_are_inputs:
            return matrix
        merged = {**features, **columns} if features else columns
        if _takes_array(self.loaded, names) and all(
                isinstance(merged[n], np.ndarray) and merged[n].dtype.kind in "fiu" for n in names):
            return np.column_stack([merged[n] for n in names]).astype(np.float64, copy=False)
        return pd.DataFrame({n: merged[n] for n in names})

    def predict(self, model_input: Any) -> np.ndarray:
        if isinstance(model_input, np.ndarray):
            return np.asarray(self.loaded.predictor.predict(model_input))
        return np.asarray(self.loaded.predict(model_input))

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()


def _takes_array(loaded: LoadedModel, names: list[str]) -> bool:
    """Whether the predictor reads a bare 2-D array in signature order correctly: LightGBM
    without category columns whose training columns are the signature's (it reads by
    position). scikit-learn models trained on frames warn on arrays; others get frames."""
    predictor = loaded.predictor
    features = getattr(predictor, "features", None)
    categorical = getattr(predictor, "categories", None) or getattr(
        getattr(predictor, "booster", None), "pandas_categorical", None)
    return type(predictor).__name__ == "LightGBMPredictor" and features == names and not categorical


def scoring_path(loaded: LoadedModel, *, workspace: WorkspaceArg = None,
                 online: bool = True) -> ScoringPath:
    """Prepare ``loaded`` for requests; ``online=False`` skips opening the online store
    (batch scoring reads features offline)."""
    ws = as_workspace(workspace)
    info = loaded.version
    signature = info.signature
    if signature is None:
        raise RegistryError(f"Model {info.ref} has no signature, so requests cannot be checked; "
                            "register it with training_data= or signature=.")
    service = info.lineage.get("feature_service")
    reader: OnlineReader | None = None
    feature_columns: list[str] = []
    views: list[str] = []
    fields: list[FieldSpec] = []
    if service:
        if online:
            reader = OnlineReader(ws, service)
            selection = reader.selection
        else:
            from mlwright.features.catalog import load_catalog

            selection = load_catalog(ws).select(service)
        feature_columns = [s.column for s in selection.features]
        views = [v.ref for v in selection.views]
        fields += [spec_for_dtype(k, t) for k, t in selection.join_keys.items()]
        fields += [spec_for_dtype(f.name, f.dtype) for f in selection.request_fields
                   if f.name not in selection.join_keys]
    taken = {f.name for f in fields} | set(feature_columns)
    fields += [FieldSpec.from_column(c) for c in signature.inputs if c.name not in taken]
    path = ScoringPath(loaded, fields, feature_columns, service, views, reader,
                       _contract(ws, signature.contract, {f.name for f in fields}))
    if signature.output is not None:
        path.output_name = signature.output.name
    return path


def _contract(ws: Workspace, reference: dict[str, Any] | None, sent: set[str]) -> Any:
    """The contract's single-record rules on the columns a request sends (rules on the label
    or on looked-up features say nothing about a request)."""
    if not reference:
        return None
    from mlwright.data.checks import get_contract
    from mlwright.data.contracts import Contract
    from mlwright.data.records import RecordValidator

    try:
        attached = get_contract(reference["dataset"], workspace=ws)
    except NotFoundError:
        return None  # the contract was detached since: the signature's types still hold
    rules = [r for r in attached.contract.rules if r.columns and set(r.columns) <= sent]
    return RecordValidator(Contract(attached.contract.name, tuple(rules))) if rules else None


def load_scoring_path(ref: str, *, workspace: WorkspaceArg = None,
                      online: bool = True) -> ScoringPath:
    """Load a version (``NAME@ALIAS``, ``NAME@N``) and prepare its scoring path."""
    ws = as_workspace(workspace)
    return scoring_path(load_model(ref, workspace=ws), workspace=ws, online=online)
