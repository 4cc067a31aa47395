"""The XGBoost flavor: a Booster (or an ``XGBModel``'s booster) in XGBoost's native UBJSON.

The Booster's own prediction already is what :class:`Predictor` promises: for
``binary:logistic`` (what ``XGBClassifier`` uses for two classes) the probability of the
positive class, for ``multi:softprob`` a row of class probabilities, else the prediction.

>>> flavor = XGBoostFlavor()
>>> meta = flavor.save(xgboost.XGBClassifier().fit(frame, y), folder)   # doctest: +SKIP
>>> meta["objective"]                                                   # doctest: +SKIP
'binary:logistic'
>>> flavor.load(folder, meta).predict(frame)                           # doctest: +SKIP
array([0.08, 0.95, ...], dtype=float32)
"""

from __future__ import annotations

import json
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

FILE = "model.ubj"


class XGBoostFlavor:
    """XGBoost Boosters and scikit-learn-API models (``XGBClassifier``, ...) as ``model.ubj``."""

    name: str = "xgboost"

    def matches(self, model: object) -> bool:
        if "xgboost" not in module_roots(model):
            return False
        xgb = framework("xgboost", self.name)  # already imported: the model is one of its objects
        return isinstance(model, xgb.Booster | xgb.XGBModel)

    def save(self, model: object, folder: Path) -> dict[str, Any]:
        if not self.matches(model):
            raise RegistryError(f"The 'xgboost' flavor saves an xgboost.Booster or XGBModel; got a "
                                f"{type_name(model)}.")
        xgb = framework("xgboost", self.name)
        try:
            booster = model if isinstance(model, xgb.Booster) else model.get_booster()  # type: ignore[attr-defined]
        except (AttributeError, ValueError) as exc:  # XGBoost's not-fitted error is both
            raise RegistryError(f"The XGBoost {type_name(model)} is not fitted; fit it before "
                                "registering it.") from exc
        # save_raw, not save_model: save_model picks the format from the file's extension,
        # and the temporary name has none.
        raw = booster.save_raw(raw_format="ubj")
        with atomic(folder / FILE) as temporary:
            temporary.write_bytes(bytes(raw))
        config = json.loads(booster.save_config())
        best = booster.attr("best_iteration")
        return {"files": hashes(folder, [FILE]), "xgboost_version": xgb.__version__,
                "objective": config["learner"]["objective"]["name"],
                "best_iteration": None if best is None else int(best)}

    def load(self, folder: Path, meta: dict[str, Any]) -> Predictor:
        path = model_file(folder, FILE, self.name, meta)
        xgb = framework("xgboost", self.name)
        try:
            booster = xgb.Booster(model_file=str(path))
        except xgb.core.XGBoostError as exc:
            raise RegistryError(f"The XGBoost model file {path} cannot be read ({exc}); register "
                                "the model again.") from exc
        return XGBoostPredictor(booster)


class XGBoostPredictor:
    """A Booster behind ``predict(frame)``, with its columns put in training order."""

    def __init__(self, booster: Any) -> None:
        self.booster = booster
        self.features: list[str] | None = booster.feature_names
        best = booster.attr("best_iteration")
        # As XGBModel.predict does: after early stopping, the trees up to the best round only.
        self._rounds = (0, 0) if best is None else (0, int(best) + 1)

    def predict(self, frame: Any) -> np.ndarray:
        if (self.features and hasattr(frame, "columns") and set(self.features) <= set(frame.columns)
                and list(frame.columns) != self.features):
            frame = frame[self.features]  # XGBoost refuses named columns in another order
        return np.asarray(self.booster.inplace_predict(frame, iteration_range=self._rounds))
