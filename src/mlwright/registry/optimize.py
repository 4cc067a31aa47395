"""Optimizing a version for serving: converted to ONNX, checked for parity, registered.

A scikit-learn, LightGBM or XGBoost version is converted to an ONNX graph (skl2onnx for
scikit-learn, onnxmltools for the boosters). The original, loaded as any version is, and the
graph, saved and loaded by the ``onnx`` flavor exactly as it will be served (ONNX Runtime),
both predict the validation rows. Only if every prediction agrees within the tolerance are
the very files that were checked registered as the next version of the same model, with the
original as its parent; otherwise nothing is registered.

>>> result = optimize_model("delays@3", "holdout@1", label="delayed", workspace=ws)  # doctest: +SKIP
>>> result.ref, result.parity.max_abs_diff                                        # doctest: +SKIP
('delays@4', 3.9e-07)
>>> load_model("delays@4", workspace=ws).predict(frame)  # ONNX Runtime           # doctest: +SKIP

What is compared is what ``predict`` answers for each flavor: class probabilities for a
classifier (and whether the predicted class agrees), the value for a regressor. The figure
held against the tolerance is ``|onnx - original| / max(|original|, 1)``: the absolute
difference for probabilities and small values, the relative one for large values (a
float32 graph cannot match a regressor's 150.0 to 1e-4 absolute, but does to 1e-6 relative).

The new version carries the original's signature (inputs in the order the graph takes them),
metrics, parameters and gate report (its predictions are the original's within the
tolerance, so a version that failed its gates stays barred from ``champion``), its dataset
lineage and, as the registry has no tags, the optimization record in its parameters:
``optimized_from``, ``onnx_parity_max_abs``, ``onnx_parity_max_rel``, ``onnx_parity_tolerance``,
``onnx_parity_rows``, ``onnx_label_agreement``, ``onnx_converter``, ``onnx_parity_data``.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlwright.errors import RegistryError
from mlwright.registry.aliases import GUARDED, set_alias
from mlwright.registry.flavors import get_flavor
from mlwright.registry.flavors._common import framework
from mlwright.registry.flavors.lightgbm import LightGBMPredictor
from mlwright.registry.flavors.sklearn import SklearnPredictor
from mlwright.registry.flavors.xgboost import XGBoostPredictor
from mlwright.registry.signature import Column, Signature, signature_from_schema
from mlwright.registry.versions import (
    ModelVersionInfo,
    WorkspaceLike,
    get_model_version,
    load_model,
    register_folder,
)
from mlwright.store import check_name
from mlwright.workspace import Workspace, as_workspace

SUPPORTED = ("sklearn", "lightgbm", "xgboost")
_INSTALL = "'mlwright[onnx]'"
_WHITESPACE = re.compile(r"\s")
# Objectives whose prediction is class probabilities (then the predicted class is compared too).
_LIGHTGBM_PROBABILITIES = frozenset({"binary", "multiclass", "softmax", "multiclassova",
                                     "multiclass_ova", "ova", "ovr"})
_XGBOOST_PROBABILITIES = frozenset({"binary:logistic", "multi:softprob"})


@dataclass(frozen=True)
class Parity:
    """How closely the ONNX graph reproduced the original's predictions on the validation rows.

    ``max_rel_diff`` is ``max |onnx - original| / max(|original|, 1)``, the figure the
    tolerance applies to; ``label_agreement`` is the share of rows whose predicted class is
    the same (classifiers only; a flip needs probabilities within the tolerance of the
    decision boundary, so it is reported, not gated).
    """

    rows: int
    max_abs_diff: float
    max_rel_diff: float
    worst_row: int
    tolerance: float
    probabilities: bool
    label_agreement: float | None

    @property
    def passed(self) -> bool:
        return self.max_rel_diff <= self.tolerance

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "max_abs_diff": self.max_abs_diff,
                "max_rel_diff": self.max_rel_diff, "worst_row": self.worst_row,
                "tolerance": self.tolerance, "passed": self.passed,
                "probabilities": self.probabilities, "label_agreement": self.label_agreement}


@dataclass(frozen=True)
class OptimizationResult:
    """The ONNX version registered, the parity that allowed it and how fast each predicted.

    Timings are one ``predict`` over the validation rows each (models already loaded): a
    first indication, not a benchmark.
    """

    parent: str
    version: ModelVersionInfo
    converter: str
    parity: Parity
    original_predict_s: float
    onnx_predict_s: float

    @property
    def ref(self) -> str:
        return self.version.ref

    @property
    def rows(self) -> int:
        return self.parity.rows

    @property
    def speedup(self) -> float:
        """How many times faster ONNX Runtime predicted the rows than the original."""
        return self.original_predict_s / self.onnx_predict_s if self.onnx_predict_s > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {"parent": self.parent, "ref": self.ref, "flavor": self.version.flavor,
                "aliases": self.version.aliases, "converter": self.converter,
                "parity": self.parity.to_dict(),
                "timings": {"original_predict_s": self.original_predict_s,
                            "onnx_predict_s": self.onnx_predict_s, "speedup": self.speedup}}


@dataclass(frozen=True)
class _Conversion:
    proto: Any  # onnx.ModelProto
    converter: str  # "skl2onnx 1.20.0"
    inputs: list[str]  # the signature columns, in the order the graph takes them
    probabilities: bool


def optimize_model(
    ref: str,
    data: Any,
    *,
    workspace: WorkspaceLike = None,
    tolerance: float = 1e-4,
    label: str | None = None,
    alias: str | None = None,
) -> OptimizationResult:
    """Convert version ``ref`` to ONNX and register it as the model's next version, if the
    graph's predictions on ``data`` match the original's within ``tolerance``.

    ``data`` holds the validation rows: a Parquet or CSV path, a registered dataset
    (``"holdout@2"``), or an Arrow, pandas or polars table; ``label`` names a column to drop.
    ``alias`` is pointed at the new version. Raises :class:`RegistryError`, registering
    nothing, for a flavor other than scikit-learn, LightGBM or XGBoost, a model the converter
    cannot handle, data without the signature's columns, or predictions beyond the tolerance.

    >>> result = optimize_model("churn@2", "churn_holdout@1", label="churned",
    ...                         tolerance=1e-5, alias="onnx", workspace=ws)   # doctest: +SKIP
    >>> result.ref, result.parity.max_abs_diff, result.speedup                # doctest: +SKIP
    ('churn@3', 2.4e-07, 6.1)
    """
    if not isinstance(tolerance, int | float) or not tolerance >= 0 or math.isinf(tolerance):
        raise RegistryError(f"The parity tolerance must be a finite number >= 0; got {tolerance!r}.")
    ws = as_workspace(workspace)
    parent = get_model_version(ref, workspace=ws)
    if parent.flavor not in SUPPORTED:
        raise RegistryError(f"Model {parent.ref} is of the {parent.flavor!r} flavor; only "
                            f"{', '.join(SUPPORTED)} versions can be converted to ONNX.")
    if alias is not None:
        _check_alias(parent, alias)
    frame, source = _validation_frame(ws, data, label, parent)
    signature = parent.signature or signature_from_schema(_schema(frame))
    loaded = load_model(parent.ref, workspace=ws)
    conversion = _convert(loaded.predictor, parent, signature)
    conversion.proto.metadata_props.add(key="mlwright.optimized_from", value=parent.ref)

    started = time.perf_counter()
    original = loaded.predict(frame)
    original_s = time.perf_counter() - started
    onnx = get_flavor("onnx")
    folder = Path(tempfile.mkdtemp(prefix="mlwright-onnx-"))
    try:
        # Saved and loaded by the flavor that will serve it: the parity is that of the very
        # files registered below, run the way serving runs them.
        meta = onnx.save(conversion.proto, folder)
        predictor = onnx.load(folder, meta)
        started = time.perf_counter()
        optimized = predictor.predict(frame[conversion.inputs])
        onnx_s = time.perf_counter() - started
        parity = _parity(parent.ref, original, optimized, tolerance, conversion.probabilities)
        if not parity.passed:
            raise RegistryError(
                f"The ONNX conversion of {parent.ref} differs from it by up to "
                f"{parity.max_rel_diff:.3g} (|Δ|/max(|prediction|, 1); absolute "
                f"{parity.max_abs_diff:.3g}, row {parity.worst_row} of {parity.rows}), beyond the "
                f"tolerance {tolerance:g}; nothing was registered. Raise the tolerance if that "
                "difference is acceptable, or keep serving the original flavor.")
        version = register_folder(
            parent.name, folder, flavor="onnx", flavor_meta=meta,
            signature=_reordered(signature, conversion.inputs), metrics=parent.metrics,
            params={**parent.params, **_tags(parent, conversion, parity, source)},
            lineage={"datasets": parent.lineage.get("datasets", []), "parent": parent.ref,
                     "optimized": {"converter": conversion.converter, "data": source,
                                   **parity.to_dict()}},
            gates=parent.gates,
            description=f"ONNX conversion of {parent.ref} ({conversion.converter}); predictions "
                        f"within {parity.max_abs_diff:.3g} of it on {parity.rows} rows.",
            workspace=ws)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if alias is not None:
        set_alias(parent.name, alias, version.version, workspace=ws)
        version = get_model_version(version.ref, workspace=ws)
    return OptimizationResult(parent.ref, version, conversion.converter, parity, original_s, onnx_s)


def _check_alias(parent: ModelVersionInfo, alias: str) -> None:
    """Refuse now what ``set_alias`` would refuse after registering."""
    check_name("alias", alias)
    if alias == "latest" or alias.isdigit():
        raise RegistryError(f"'{alias}' cannot be an alias: it already means a version.")
    if alias in GUARDED and parent.gates_passed is False:
        raise RegistryError(f"Model {parent.ref} failed its gates, and its ONNX conversion inherits "
                            f"them, so it cannot become '{alias}'; optimize a version that passed.")


# -- the validation rows -------------------------------------------------------------------


def _validation_frame(ws: Workspace, data: Any, label: str | None,
                      parent: ModelVersionInfo) -> tuple[Any, str]:
    """The rows as a pandas DataFrame without ``label``, and where they came from."""
    import pandas as pd

    from mlwright.data.io import as_arrow_table, read_path

    if isinstance(data, os.PathLike) or (isinstance(data, str) and _looks_like_path(data)):
        frame, source = read_path(data).to_pandas(), str(data)
    elif isinstance(data, str):
        from mlwright.data.datasets import get_dataset_version, load_dataset

        dataset = get_dataset_version(data, workspace=ws)
        frame, source = load_dataset(dataset, workspace=ws).to_pandas(), dataset.ref
    elif isinstance(data, pd.DataFrame):
        frame, source = data, "a DataFrame"
    else:
        frame, source = as_arrow_table(data).to_pandas(), "a table"
    columns = [str(c) for c in frame.columns]
    if label is not None:
        if label not in columns:
            raise RegistryError(f"Label column '{label}' is not in the validation data {source} "
                                f"(columns: {', '.join(columns[:20])}).")
        frame = frame.drop(columns=[label])
        columns.remove(label)
    if parent.signature is not None:
        missing = [c for c in parent.signature.input_names if c not in columns]
        if missing:
            raise RegistryError(
                f"The validation data {source} has no column '{missing[0]}' of the signature of "
                f"{parent.ref} (inputs: {', '.join(parent.signature.input_names)}; got "
                f"{', '.join(columns[:20]) or 'no columns'}); give the rows the model was validated on.")
    if len(frame) == 0:
        raise RegistryError(f"The validation data {source} has no rows; parity needs some.")
    return frame, source


def _looks_like_path(text: str) -> bool:
    """A file or folder that exists, or a name only a path has (a separator, a file suffix);
    anything else is a dataset reference."""
    from mlwright.data.io import CSV_SUFFIXES, PARQUET_SUFFIXES

    path = Path(text).expanduser()
    return (path.exists() or "/" in text or os.sep in text
            or path.suffix.lower() in PARQUET_SUFFIXES | CSV_SUFFIXES)


def _schema(frame: Any) -> Any:
    from mlwright.data.io import as_arrow_table

    return as_arrow_table(frame.head(0)).schema


# -- conversion ----------------------------------------------------------------------------


def _convert(predictor: Any, parent: ModelVersionInfo, signature: Signature) -> _Conversion:
    if isinstance(predictor, SklearnPredictor):
        return _from_sklearn(predictor.model, parent.ref, signature)
    if isinstance(predictor, LightGBMPredictor):
        return _from_lightgbm(predictor, parent.ref, signature)
    if isinstance(predictor, XGBoostPredictor):
        return _from_xgboost(predictor, parent.ref, signature)
    raise RegistryError(f"Model {parent.ref} loaded as a {type(predictor).__name__}, which cannot be "
                        f"converted to ONNX; supported flavors: {', '.join(SUPPORTED)}.")


def _from_sklearn(model: Any, ref: str, signature: Signature) -> _Conversion:
    from sklearn.base import is_classifier

    skl2onnx = framework("skl2onnx", "onnx", _INSTALL)
    types = framework("skl2onnx.common.data_types", "onnx", _INSTALL)
    classifier = bool(is_classifier(model))
    if classifier and not hasattr(model, "predict_proba"):
        raise RegistryError(f"Model {ref} is a classifier without predict_proba, so its predictions "
                            "are labels the ONNX graph's scores cannot be compared with; fit one that "
                            "has predict_proba (e.g. SVC(probability=True)).")
    fitted = getattr(model, "feature_names_in_", None)
    names = _model_order(signature.input_names, None if fitted is None else [str(n) for n in fitted])
    columns = {c.name: c for c in signature.inputs}
    if _selects_columns_by_name(model):
        # A ColumnTransformer picks columns by name: skl2onnx wants one input per column.
        initial = [(name, _tensor_type(types, columns[name], ref)([None, 1])) for name in names]
    else:
        _numeric_only(signature, names, ref, "scikit-learn")
        initial = [("input", types.FloatTensorType([None, len(names)]))]
    # ZipMap (a list of {class: probability} dicts) off: the flavor reads a plain tensor faster.
    options = {id(model): {"zipmap": False}} if classifier else None
    proto = _run("skl2onnx", ref, lambda: skl2onnx.convert_sklearn(
        model, initial_types=initial, options=options))
    return _Conversion(proto, f"skl2onnx {skl2onnx.__version__}", names, classifier)


def _from_lightgbm(predictor: LightGBMPredictor, ref: str, signature: Signature) -> _Conversion:
    booster = predictor.booster
    if booster.pandas_categorical:
        raise RegistryError(f"Model {ref} was trained on pandas category columns; its ONNX graph "
                            "would need category codes where requests carry strings, so it is not "
                            "converted. Encode the categories as numbers before training to optimize it.")
    # LightGBM stores feature names with whitespace as "_" and reads columns by position.
    normalized = {_WHITESPACE.sub("_", name): name for name in signature.input_names}
    features = [normalized.get(f, f) for f in booster.feature_name()]
    names = _model_order(signature.input_names, features)
    _numeric_only(signature, names, ref, "LightGBM")
    onnxmltools = framework("onnxmltools", "onnx", _INSTALL)
    types = framework("onnxmltools.convert.common.data_types", "onnx", _INSTALL)
    objective = str(booster.params.get("objective", "")).split(" ")[0]
    proto = _run("onnxmltools", ref, lambda: onnxmltools.convert_lightgbm(
        booster, initial_types=[("input", types.FloatTensorType([None, len(names)]))], zipmap=False))
    return _Conversion(proto, f"onnxmltools {onnxmltools.__version__}", names,
                       objective in _LIGHTGBM_PROBABILITIES)


def _from_xgboost(predictor: XGBoostPredictor, ref: str, signature: Signature) -> _Conversion:
    import json

    booster = predictor.booster
    if any(t == "c" for t in booster.feature_types or []):
        raise RegistryError(f"Model {ref} has categorical features, which onnxmltools cannot convert; "
                            "encode them as numbers before training to optimize it.")
    names = _model_order(signature.input_names, booster.feature_names)
    _numeric_only(signature, names, ref, "XGBoost")
    best = booster.attr("best_iteration")
    # The trees the predictor uses (up to the best round after early stopping), in a copy:
    # onnxmltools reads each split's feature as "f<index>", so the copy loses its names.
    trees = booster[: int(best) + 1] if best is not None else booster.copy()
    trees.feature_names = None
    trees.feature_types = None
    objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    onnxmltools = framework("onnxmltools", "onnx", _INSTALL)
    types = framework("onnxmltools.convert.common.data_types", "onnx", _INSTALL)
    proto = _run("onnxmltools", ref, lambda: onnxmltools.convert_xgboost(
        trees, initial_types=[("input", types.FloatTensorType([None, len(names)]))]))
    return _Conversion(proto, f"onnxmltools {onnxmltools.__version__}", names,
                       objective in _XGBOOST_PROBABILITIES)


def _run(converter: str, ref: str, convert: Callable[[], Any]) -> Any:
    try:
        return convert()
    except RegistryError:
        raise
    except Exception as exc:  # converters raise many kinds (RuntimeError, MissingShapeCalculator, ...)
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RegistryError(f"{converter} cannot convert model {ref} to ONNX ({type(exc).__name__}: "
                            f"{detail}); nothing was registered.") from exc


def _model_order(signature: list[str], model: list[str] | None) -> list[str]:
    """The signature columns in the order the model was fitted on, when it knows their names
    and they are all in the signature; else the signature's order (as its predictor does)."""
    if model and set(model) <= set(signature) and len(set(model)) == len(model):
        return list(model)
    return list(signature)


def _selects_columns_by_name(model: Any) -> bool:
    from sklearn.compose import ColumnTransformer

    parts = [model, *model.get_params(deep=True).values()] if hasattr(model, "get_params") else [model]
    for part in parts:
        if isinstance(part, ColumnTransformer):
            for _, _, columns in part.transformers:
                if isinstance(columns, str) or (isinstance(columns, list | tuple)
                                                and any(isinstance(c, str) for c in columns)):
                    return True
    return False


def _kind(arrow_type: str) -> str:
    if arrow_type in ("bool", "boolean"):
        return "bool"
    if re.fullmatch(r"u?int(8|16|32|64)", arrow_type):
        return "int"
    if arrow_type in ("halffloat", "float", "double") or arrow_type.startswith("decimal"):
        return "float"
    if arrow_type in ("string", "large_string", "utf8") or arrow_type.startswith("dictionary<values=string"):
        return "string"
    return arrow_type


def _numeric_only(signature: Signature, names: list[str], ref: str, framework_name: str) -> None:
    columns = {c.name: c for c in signature.inputs}
    other = [columns[n] for n in names if _kind(columns[n].type) not in ("bool", "int", "float")]
    if other:
        raise RegistryError(f"Model {ref} takes column '{other[0].name}' of type {other[0].type}; the "
                            f"{framework_name} conversion feeds every column as one float32 matrix, "
                            "so it converts only numeric and boolean columns.")


def _tensor_type(types: Any, column: Column, ref: str) -> Any:
    kind = _kind(column.type)
    found = {"float": types.FloatTensorType, "int": types.Int64TensorType,
             "bool": types.BooleanTensorType, "string": types.StringTensorType}.get(kind)
    if found is None:
        raise RegistryError(f"Column '{column.name}' of model {ref} has type {column.type}, which has "
                            "no ONNX input type here; supported: numbers, booleans and strings.")
    return found


def _reordered(signature: Signature, names: list[str]) -> Signature:
    columns = {c.name: c for c in signature.inputs}
    return Signature(inputs=tuple(columns[n] for n in names), output=signature.output,
                     contract=signature.contract)


# -- parity --------------------------------------------------------------------------------


def _parity(ref: str, original: Any, optimized: Any, tolerance: float,
            probabilities: bool) -> Parity:
    try:
        a = np.asarray(original, dtype=np.float64)
        b = np.asarray(optimized, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"The predictions of {ref} or of its ONNX graph are not numbers ({exc}); "
                            "they cannot be compared.") from exc
    if a.shape != b.shape and a.size == b.size:  # (n, 1) against (n,)
        a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    if a.shape != b.shape:
        raise RegistryError(f"{ref} predicts an array of shape {a.shape} and its ONNX graph one of "
                            f"shape {b.shape}; they cannot be compared, so nothing was registered.")
    both_missing = np.isnan(a) & np.isnan(b)
    # NaN on one side only is a disagreement as large as it gets.
    diff = np.nan_to_num(np.where(both_missing, 0.0, np.abs(a - b)), nan=np.inf, posinf=np.inf)
    scaled = diff / np.maximum(np.abs(np.nan_to_num(a)), 1.0)
    worst = int(np.unravel_index(int(np.argmax(scaled)), scaled.shape)[0]) if scaled.size else 0
    agreement = None
    if probabilities and a.size:
        agree = (a >= 0.5) == (b >= 0.5) if a.ndim == 1 else a.argmax(axis=1) == b.argmax(axis=1)
        agreement = float(np.mean(agree))
    return Parity(rows=len(a), max_abs_diff=float(diff.max()) if diff.size else 0.0,
                  max_rel_diff=float(scaled.max()) if scaled.size else 0.0, worst_row=worst,
                  tolerance=float(tolerance), probabilities=probabilities, label_agreement=agreement)


def _tags(parent: ModelVersionInfo, conversion: _Conversion, parity: Parity,
          source: str) -> dict[str, Any]:
    tags: dict[str, Any] = {
        "optimized_from": parent.ref, "onnx_converter": conversion.converter,
        "onnx_parity_max_abs": parity.max_abs_diff, "onnx_parity_max_rel": parity.max_rel_diff,
        "onnx_parity_tolerance": parity.tolerance, "onnx_parity_rows": parity.rows,
        "onnx_parity_data": source}
    if parity.label_agreement is not None:
        tags["onnx_label_agreement"] = parity.label_agreement
    return tags
