"""The scikit-learn flavor: estimators and pipelines saved with skops, never with pickle.

Loading a pickle runs whatever code it names; a skops file only rebuilds the types it is
allowed to. mlwright allows the types of scikit-learn, NumPy, SciPy, LightGBM and XGBoost
(and a few containers), and refuses a file that needs anything else: a custom class, a
lambda. Wrap such a model for the ``python`` flavor instead.

>>> flavor = SklearnFlavor()
>>> meta = flavor.save(LogisticRegression().fit(X, y), folder)   # doctest: +SKIP
>>> flavor.load(folder, meta).predict(X)                         # doctest: +SKIP
array([0.02, 0.97, ...])    # probability of the positive class
"""

from __future__ import annotations

from collections.abc import Callable
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

FILE = "model.skops"
# Whole packages whose types a skops file may rebuild. The trailing dot matters:
# "sklearn." does not let "sklearn_evil.Payload" through.
TRUSTED_PREFIXES: tuple[str, ...] = ("sklearn.", "numpy.", "scipy.", "lightgbm.", "xgboost.")
# Standard-library containers that skops reports as untrusted although they run no code.
TRUSTED_TYPES = frozenset({
    "collections.OrderedDict", "collections.defaultdict", "collections.Counter", "collections.deque",
    "builtins.slice", "builtins.range", "builtins.complex", "builtins.frozenset", "builtins.bytes",
    "builtins.bytearray",
})
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")


class SklearnFlavor:
    """scikit-learn estimators (and pipelines of them) as a ``model.skops`` file.

    ``trusted`` adds module prefixes (``"mypackage."``) whose types a file may rebuild, for
    a team that vouches for its own estimator classes.
    """

    name: str = "sklearn"

    def __init__(self, trusted: tuple[str, ...] = ()) -> None:
        self.trusted = TRUSTED_PREFIXES + tuple(trusted)

    def matches(self, model: object) -> bool:
        return "sklearn" in module_roots(model)

    def save(self, model: object, folder: Path) -> dict[str, Any]:
        if not self.matches(model):
            raise RegistryError(f"The 'sklearn' flavor saves scikit-learn estimators; got a "
                                f"{type_name(model)}.")
        sio = framework("skops.io", self.name, "skops")
        sklearn = framework("sklearn", self.name, "scikit-learn")
        from sklearn.exceptions import NotFittedError
        from sklearn.utils.validation import check_is_fitted

        try:
            check_is_fitted(model)
        except NotFittedError as exc:
            raise RegistryError(f"The scikit-learn {type_name(model)} is not fitted; fit it before "
                                "registering it.") from exc
        path = folder / FILE
        with atomic(path) as temporary:
            sio.dump(model, temporary)
            # Refuse now what loading would refuse later: the error belongs at registration,
            # not in a server at 3 a.m.
            self._check_trusted(sio.get_untrusted_types(file=temporary), f"The {type_name(model)}")
        return {"files": hashes(folder, [FILE]), "sklearn_version": sklearn.__version__}

    def load(self, folder: Path, meta: dict[str, Any]) -> Predictor:
        path = folder / FILE
        if not path.is_file():
            _refuse_pickles(folder)
        path = model_file(folder, FILE, self.name, meta)
        _refuse_pickle_bytes(path)
        sio = framework("skops.io", self.name, "skops")
        try:
            untrusted = sio.get_untrusted_types(file=path)
            self._check_trusted(untrusted, f"The skops file {path}")
            model = sio.load(path, trusted=untrusted)
        except RegistryError:
            raise
        except Exception as exc:  # a damaged zip, not a skops file: skops raises many kinds
            raise RegistryError(f"The 'sklearn' model file {path} is not a readable skops file "
                                f"({type(exc).__name__}: {exc}); register the model again.") from exc
        return SklearnPredictor(model)

    def _check_trusted(self, untrusted: list[str], what: str) -> None:
        refused = [t for t in untrusted if t not in TRUSTED_TYPES and not t.startswith(self.trusted)]
        if refused:
            raise RegistryError(
                f"{what} needs types mlwright does not trust: {', '.join(refused)}. "
                "Loading them could run arbitrary code. Use only scikit-learn, NumPy, SciPy, "
                "LightGBM and XGBoost objects (no lambdas or custom classes), or wrap the model for "
                "the 'python' flavor (a class with predict, save(folder) and classmethod load(folder)).")


class SklearnPredictor:
    """A scikit-learn model behind ``predict(frame)``: the positive-class probability for a
    binary classifier, all class probabilities for a multi-class one, ``predict`` otherwise
    (regressors, clusterers) and ``transform`` for a transformer."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self._method = _method(model)
        # A model fitted on an array warns when handed named columns; give it the array.
        self._wants_names = hasattr(model, "feature_names_in_")

    def predict(self, frame: Any) -> np.ndarray:
        data = frame if self._wants_names or not hasattr(frame, "to_numpy") else frame.to_numpy()
        return np.asarray(self._method(data))


def _method(model: Any) -> Callable[[Any], Any]:
    from sklearn.base import is_classifier

    if is_classifier(model) and hasattr(model, "predict_proba"):
        if len(getattr(model, "classes_", ())) == 2:
            return lambda data: model.predict_proba(data)[:, 1]
        return model.predict_proba  # type: ignore[no-any-return]
    for name in ("predict", "transform"):
        if hasattr(model, name):
            return getattr(model, name)  # type: ignore[no-any-return]
    raise RegistryError(f"The loaded scikit-learn {type_name(model)} has neither predict nor transform.")


def _refuse_pickles(folder: Path) -> None:
    """Name a pickle found where ``model.skops`` should be, rather than report it missing."""
    if not folder.is_dir():
        return
    for path in sorted(folder.iterdir()):
        if path.is_file() and (path.suffix in _PICKLE_SUFFIXES or _starts_like_pickle(path)):
            _refuse_pickle_bytes(path, force=True)


def _refuse_pickle_bytes(path: Path, force: bool = False) -> None:
    if force or _starts_like_pickle(path):
        raise RegistryError(
            f"The model file {path} is a pickle; mlwright loads scikit-learn models only from skops "
            "files, because unpickling runs arbitrary code. Save the model with "
            "skops.io.dump(model, 'model.skops'), or register the estimator object itself.")


def _starts_like_pickle(path: Path) -> bool:
    with path.open("rb") as source:
        return source.read(1) == b"\x80"  # the PROTO opcode that opens every pickle since protocol 2
