"""Flavors: how a model of one framework is saved as files and loaded back to predict.

Every flavor saves into a folder of plain files (never a plain pickle) and loads back a
:class:`Predictor`: whatever the framework, a loaded model answers ``predict(frame)``.

>>> flavor = flavor_for(model)               # doctest: +SKIP
>>> meta = flavor.save(model, folder)        # doctest: +SKIP
>>> flavor.load(folder, meta).predict(df)    # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mlwright.errors import RegistryError
from mlwright.registry.flavors.lightgbm import LightGBMFlavor
from mlwright.registry.flavors.onnx import OnnxFlavor
from mlwright.registry.flavors.python import PythonFlavor
from mlwright.registry.flavors.pytorch import PyTorchFlavor
from mlwright.registry.flavors.sklearn import SklearnFlavor
from mlwright.registry.flavors.xgboost import XGBoostFlavor

__all__ = ["FLAVORS", "Flavor", "Predictor", "flavor_for", "get_flavor"]


@runtime_checkable
class Predictor(Protocol):
    """A loaded model. ``predict`` takes a pandas DataFrame whose columns are the version's
    signature inputs, in order, and returns one value per row (for a binary classifier: the
    probability of the positive class; for a multi-class one: a row of class probabilities;
    for a regressor: the prediction)."""

    def predict(self, frame: Any) -> np.ndarray: ...


class Flavor(Protocol):
    """One framework's way to save a model into a folder and load it back."""

    name: str

    def matches(self, model: object) -> bool:
        """Whether ``model`` is an object of this flavor (checked without importing the
        framework when it is not loaded yet)."""
        ...

    def save(self, model: object, folder: Path) -> dict[str, Any]:
        """Write the model's files into ``folder``; return what loading needs (JSON)."""
        ...

    def load(self, folder: Path, meta: dict[str, Any]) -> Predictor:
        """Load the files ``save`` wrote."""
        ...


# The flavor modules import no framework at import time: each one imports its framework
# inside save, load and matches, and matches only once the model's own classes show that
# the framework is already loaded.
FLAVORS: dict[str, Flavor] = {
    "sklearn": SklearnFlavor(),
    "lightgbm": LightGBMFlavor(),
    "xgboost": XGBoostFlavor(),
    "onnx": OnnxFlavor(),
    "pytorch": PyTorchFlavor(),
    "python": PythonFlavor(),
}

# The order detection asks in. LightGBM and XGBoost models are scikit-learn estimators too
# (their sklearn API subclasses BaseEstimator): their native flavor must win. ``python``
# matches any object with predict/save/load, so it comes last.
_DETECTION = ("lightgbm", "xgboost", "pytorch", "onnx", "sklearn", "python")


def get_flavor(name: str) -> Flavor:
    """The flavor called ``name``.

    >>> get_flavor("sklearn").name
    'sklearn'
    """
    try:
        return FLAVORS[name]
    except (KeyError, TypeError):
        raise RegistryError(f"Unknown model flavor {name!r}; the flavors are "
                            f"{', '.join(FLAVORS)}.") from None


def flavor_for(model: object, name: str | None = None) -> Flavor:
    """The flavor that saves ``model``: the one called ``name``, or the one that recognises it.

    >>> flavor_for(object(), "python").name
    'python'
    """
    if name is not None:
        return get_flavor(name)
    for candidate in _DETECTION:
        if FLAVORS[candidate].matches(model):
            return FLAVORS[candidate]
    kind = f"{type(model).__module__}.{type(model).__qualname__}"
    raise RegistryError(
        f"Cannot tell the flavor of a model of type {kind}: it is none of {', '.join(FLAVORS)}. "
        "Name the flavor if it is one of them, or wrap the model for the 'python' flavor: a class "
        "with predict(frame), save(folder) and a classmethod load(folder), defined in an "
        "importable module.")
