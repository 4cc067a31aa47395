"""The generic ``python`` flavor: your own class, saved and loaded by its own methods.

For a model no other flavor covers (a rule set, an ensemble of flavors, a wrapper with
pre-processing), write a class with three methods, in an importable module::

    class Rules:
        def predict(self, frame: pd.DataFrame) -> np.ndarray: ...
        def save(self, folder: Path) -> None: ...            # write plain files into folder
        @classmethod
        def load(cls, folder: Path) -> "Rules": ...          # read them back

mlwright records only ``{"class": "module:qualname"}`` and calls ``load`` on that class; it
never pickles the object, so what the files hold is what ``save`` chose to write.

>>> meta = PythonFlavor().save(Rules(threshold=3), folder)   # doctest: +SKIP
>>> meta["class"]                                            # doctest: +SKIP
'mypackage.rules:Rules'
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlwright.errors import RegistryError
from mlwright.registry.flavors._common import class_path, hashes, import_path, model_file, type_name

if TYPE_CHECKING:
    from mlwright.registry.flavors import Predictor

HOW = ("a class with predict(frame), save(folder) and a classmethod load(folder), defined in an "
       "importable module")


class PythonFlavor:
    """Objects with ``predict``, ``save(folder)`` and a classmethod ``load(folder)``."""

    name: str = "python"

    def matches(self, model: object) -> bool:
        return not _missing(type(model))

    def save(self, model: object, folder: Path) -> dict[str, Any]:
        missing = _missing(type(model))
        if missing:
            raise RegistryError(
                f"The 'python' flavor saves {HOW}; {type_name(model)} has no {' or '.join(missing)}. "
                "mlwright never pickles a model: add the methods so that it can rebuild it.")
        path = class_path(type(model), self.name)
        folder.mkdir(parents=True, exist_ok=True)
        before = {p for p in folder.rglob("*") if p.is_file()}
        try:
            model.save(folder)  # type: ignore[attr-defined]
        except Exception as exc:  # the user's code: any error, reported with the class named
            for partial in {p for p in folder.rglob("*") if p.is_file()} - before:
                partial.unlink()  # nothing half-written left behind
            raise RegistryError(f"{path}.save({str(folder)!r}) failed: {type(exc).__name__}: {exc}") from exc
        written = sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                         if p.is_file() and p not in before)
        return {"class": path, "files": hashes(folder, written)}

    def load(self, folder: Path, meta: dict[str, Any]) -> Predictor:
        if "class" not in meta:
            raise RegistryError(f"The 'python' meta of {folder} names no class; register the model again.")
        cls = import_path(meta["class"], self.name)
        missing = _missing(cls) if isinstance(cls, type) else ["class"]
        if missing:
            raise RegistryError(f"{meta['class']} is no longer {HOW}: it lacks {' and '.join(missing)}.")
        for name in meta.get("files", {}):  # every file save wrote, unchanged since
            model_file(folder, name, self.name, meta)
        try:
            model = cls.load(folder)
        except Exception as exc:  # the user's code: any error, reported with the class named
            raise RegistryError(f"{meta['class']}.load({str(folder)!r}) failed: "
                                f"{type(exc).__name__}: {exc}") from exc
        if not callable(getattr(model, "predict", None)):
            raise RegistryError(f"{meta['class']}.load returned a {type_name(model)}, which has no predict.")
        return PythonPredictor(model)


class PythonPredictor:
    """The user's object behind ``predict(frame)``, its answer as a NumPy array."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, frame: Any) -> np.ndarray:
        return np.asarray(self.model.predict(frame))


def _missing(cls: type) -> list[str]:
    """Which of predict, save and the classmethod load ``cls`` lacks."""
    missing = [name for name in ("predict", "save") if not callable(getattr(cls, name, None))]
    load = inspect.getattr_static(cls, "load", None)
    if not isinstance(load, classmethod | staticmethod):
        missing.append("classmethod load")
    return missing
