"""The LightGBM flavor: a Booster (or an ``LGBMModel``'s ``booster_``) as LightGBM's own text.

A model trained on a DataFrame with pandas ``category`` columns remembers each column's
categories (``pandas_categorical`` in the text) and predicts from category *codes*. A
request arrives with plain strings, so the predictor turns those columns back into
categories with the training categories, in the training order: the same string gets the
same code it had at training, and a value never seen then becomes missing.

>>> flavor = LightGBMFlavor()
>>> meta = flavor.save(lightgbm.LGBMClassifier().fit(frame, y), folder)   # doctest: +SKIP
>>> flavor.load(folder, meta).predict(frame)                             # doctest: +SKIP
array([0.12, 0.91, ...])
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlwright.errors import RegistryError
from mlwright.registry.flavors._common import (
    atomic,
    framework,
    hashes,
    model_file,
    module_roots,
    type_name,
)

if TYPE_CHECKING:
    from mlwright.registry.flavors import Predictor

FILE = "model.txt"
_CATEGORICAL = re.compile(r"^\[categorical_feature: ([0-9,]*)\]$", re.MULTILINE)
_WHITESPACE = re.compile(r"\s")


class LightGBMFlavor:
    """LightGBM Boosters and scikit-learn-API models (``LGBMClassifier``, ...) as ``model.txt``."""

    name: str = "lightgbm"

    def matches(self, model: object) -> bool:
        if "lightgbm" not in module_roots(model):
            return False
        lgb = framework("lightgbm", self.name)  # already imported: the model is one of its objects
        return isinstance(model, lgb.Booster | lgb.LGBMModel)

    def save(self, model: object, folder: Path) -> dict[str, Any]:
        if not self.matches(model):
            raise RegistryError(f"The 'lightgbm' flavor saves a lightgbm.Booster or LGBMModel; got a "
                                f"{type_name(model)}.")
        lgb = framework("lightgbm", self.name)
        try:
            booster = model if isinstance(model, lgb.Booster) else model.booster_  # type: ignore[attr-defined]
        except (AttributeError, ValueError) as exc:  # LightGBM's not-fitted error is both
            raise RegistryError(f"The LightGBM {type_name(model)} is not fitted; fit it before "
                                "registering it.") from exc
        text = booster.model_to_string()  # best iteration only, when early stopping found one
        with atomic(folder / FILE) as temporary:
            temporary.write_text(text, encoding="utf-8")
        categories = categorical_columns(text, booster.feature_name(), booster.pandas_categorical)
        return {"files": hashes(folder, [FILE]), "lightgbm_version": lgb.__version__,
                "pandas_categorical": booster.pandas_categorical or [],
                "categorical_columns": list(categories)}

    def load(self, folder: Path, meta: dict[str, Any]) -> Predictor:
        path = model_file(folder, FILE, self.name, meta)
        lgb = framework("lightgbm", self.name)
        text = path.read_text(encoding="utf-8")
        try:
            booster = lgb.Booster(model_str=text)
        except lgb.basic.LightGBMError as exc:
            raise RegistryError(f"The LightGBM model file {path} cannot be read ({exc}); register "
                                "the model again.") from exc
        # The text, checked against its hash, is the truth; the meta only shows it to people.
        categories = categorical_columns(text, booster.feature_name(), booster.pandas_categorical)
        return LightGBMPredictor(booster, categories)


def categorical_columns(text: str, features: list[str], pandas_categorical: Any) -> dict[str, list[Any]]:
    """``{column: training categories}`` for the pandas category columns of a model's text.

    LightGBM lists the categorical features by index and, separately, the categories of the
    pandas category columns in column order; the two line up one to one unless integer-coded
    categorical features were declared too, and then no name can be told apart (``{}``).
    """
    if not pandas_categorical:
        return {}
    found = _CATEGORICAL.search(text)
    indices = [int(i) for i in found.group(1).split(",") if i] if found else []
    if len(indices) != len(pandas_categorical):
        return {}
    return {features[i]: list(cats) for i, cats in zip(indices, pandas_categorical, strict=True)}


class LightGBMPredictor:
    """A Booster behind ``predict(frame)``; string columns become the training categories."""

    def __init__(self, booster: Any, categories: dict[str, list[Any]]) -> None:
        self.booster = booster
        self.features: list[str] = booster.feature_name()
        self.categories = categories
        self._any_categorical = bool(booster.pandas_categorical)

    def predict(self, frame: Any) -> np.ndarray:
        if hasattr(frame, "columns"):
            frame = self.prepare(frame)
        return np.asarray(self.booster.predict(frame))

    def prepare(self, frame: Any) -> Any:
        """``frame`` with the model's columns in order and its category columns as at training."""
        # LightGBM reads columns by position, not by name: put them in training order. It
        # stored the names with whitespace turned into "_", so compare them that way.
        named = {_WHITESPACE.sub("_", str(column)): column for column in frame.columns}
        order = [named[feature] for feature in self.features if feature in named]
        if len(order) == len(self.features) and order != list(frame.columns):
            frame = frame[order]
        if not self._any_categorical:
            return frame
        import pandas as pd  # the model was trained on a DataFrame, so pandas is here

        changes: dict[str, Any] = {}
        if self.categories:
            for column, cats in self.categories.items():
                if column not in frame.columns:
                    continue
                dtype = frame[column].dtype
                if not (isinstance(dtype, pd.CategoricalDtype) and list(dtype.categories) == cats):
                    # Codes by lookup: a value unseen at training gets -1, i.e. missing
                    # (pandas deprecates casting unknown values to a fixed category set).
                    codes = pd.Index(cats).get_indexer(frame[column].to_numpy(dtype=object))
                    changes[column] = pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(cats))
        else:
            # Columns unknown (see categorical_columns): text columns can only be categorical,
            # and LightGBM maps a category column's values onto the training categories itself.
            for column in frame.columns:
                dtype = frame[column].dtype
                if pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
                    changes[column] = frame[column].astype("category")
        return frame.assign(**changes) if changes else frame
