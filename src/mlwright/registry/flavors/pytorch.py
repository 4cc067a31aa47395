"""The PyTorch flavor: a TorchScript module, or a state dict plus the module's class.

- A ``torch.jit.ScriptModule`` (from ``torch.jit.script`` or ``torch.jit.trace``) is saved
  whole as ``model.pt`` and needs no Python class to load.
- Any other ``nn.Module`` is saved as its weights only, ``state_dict.pt``, loaded back with
  ``torch.load(..., weights_only=True)`` (which refuses to run code), into a new instance of
  its class. So the class must be importable (defined in a module, not in a notebook) and
  constructible: with no arguments, or with the keyword arguments the model carries in an
  attribute ``mlwright_init_kwargs`` (JSON values)::

      class Scorer(nn.Module):
          def __init__(self, width: int = 8) -> None:
              super().__init__()
              self.mlwright_init_kwargs = {"width": width}
              self.layer = nn.Linear(width, 1)

The predictor feeds the frame's columns as one float32 tensor, in eval mode without
gradients, and returns one value per row (an output of shape (n, 1) becomes (n,)).

>>> meta = PyTorchFlavor().save(Scorer(width=4), folder)   # doctest: +SKIP
>>> meta["format"], meta["init_kwargs"]                    # doctest: +SKIP
('state_dict', {'width': 4})
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlwright.errors import RegistryError
from mlwright.registry.flavors._common import (
    atomic,
    class_path,
    framework,
    hashes,
    import_path,
    model_file,
    module_roots,
    type_name,
)

if TYPE_CHECKING:
    from mlwright.registry.flavors import Predictor

SCRIPT_FILE = "model.pt"
STATE_FILE = "state_dict.pt"
INIT_KWARGS = "mlwright_init_kwargs"


class PyTorchFlavor:
    """PyTorch modules: TorchScript as ``model.pt``, else weights as ``state_dict.pt`` + class."""

    name: str = "pytorch"

    def matches(self, model: object) -> bool:
        if "torch" not in module_roots(model):
            return False
        torch = framework("torch", self.name)  # already imported: the model is one of its objects
        return isinstance(model, torch.nn.Module)

    def save(self, model: object, folder: Path) -> dict[str, Any]:
        if not self.matches(model):
            raise RegistryError(f"The 'pytorch' flavor saves a torch.nn.Module; got a {type_name(model)}.")
        torch = framework("torch", self.name)
        meta: dict[str, Any] = {"torch_version": torch.__version__}
        if isinstance(model, torch.jit.ScriptModule):
            with atomic(folder / SCRIPT_FILE) as temporary:
                torch.jit.save(model, str(temporary))
            return {**meta, "format": "torchscript", "files": hashes(folder, [SCRIPT_FILE])}
        cls = type(model)
        path = class_path(cls, self.name)
        kwargs = _init_kwargs(model, path)
        with atomic(folder / STATE_FILE) as temporary:
            torch.save(model.state_dict(), temporary)  # type: ignore[attr-defined]
        return {**meta, "format": "state_dict", "class": path, "init_kwargs": kwargs,
                "files": hashes(folder, [STATE_FILE])}

    def load(self, folder: Path, meta: dict[str, Any]) -> Predictor:
        torch = framework("torch", self.name)
        if meta.get("format") == "torchscript":
            path = model_file(folder, SCRIPT_FILE, self.name, meta)
            try:
                module = torch.jit.load(str(path), map_location="cpu")
            except RuntimeError as exc:
                raise RegistryError(f"The TorchScript file {path} cannot be loaded ({exc}).") from exc
            return PyTorchPredictor(module)
        if meta.get("format") != "state_dict" or "class" not in meta:
            raise RegistryError(f"The 'pytorch' meta of {folder} says neither format 'torchscript' nor "
                                f"'state_dict' with a class (got {meta.get('format')!r}); register the "
                                "model again.")
        path = model_file(folder, STATE_FILE, self.name, meta)
        cls = import_path(meta["class"], self.name)
        try:
            module = cls(**meta.get("init_kwargs", {}))
            # weights_only: tensors and plain containers, never arbitrary unpickled objects.
            module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except (TypeError, RuntimeError) as exc:  # changed signature, changed layers
            raise RegistryError(f"The weights {path} do not fit {meta['class']} built with "
                                f"{meta.get('init_kwargs', {})} ({exc}); did the class change since "
                                "the model was registered?") from exc
        return PyTorchPredictor(module)


def _init_kwargs(model: object, path: str) -> dict[str, Any]:
    """The recorded constructor arguments, checked to be JSON and to fit the constructor."""
    kwargs = getattr(model, INIT_KWARGS, {})
    try:
        json.dumps(kwargs)
        if not isinstance(kwargs, dict):
            raise TypeError(f"{INIT_KWARGS} must be a dict, got a {type(kwargs).__name__}")
        inspect.signature(type(model)).bind(**kwargs)
    except TypeError as exc:
        raise RegistryError(
            f"The 'pytorch' flavor rebuilds {path} as {path.split(':')[1]}(**{INIT_KWARGS}) before "
            f"loading its weights, and cannot: {exc}. Set model.{INIT_KWARGS} to a dict of JSON "
            "values the constructor accepts, or save a TorchScript module (torch.jit.script).") from exc
    return kwargs


class PyTorchPredictor:
    """A module behind ``predict(frame)``: float32 in, NumPy out, eval mode, no gradients."""

    def __init__(self, module: Any) -> None:
        self.module = module.eval()  # dropout off, batch norm on running statistics
        self._torch = framework("torch", "pytorch")

    def predict(self, frame: Any) -> np.ndarray:
        torch = self._torch
        data = frame.to_numpy(np.float32) if hasattr(frame, "to_numpy") else np.asarray(frame, np.float32)
        # A copy when pandas hands out a read-only view: torch tensors are always writable.
        data = data if data.flags.writeable else data.copy()
        with torch.no_grad():
            out = self.module(torch.from_numpy(np.ascontiguousarray(data)))
        if isinstance(out, tuple | list):
            out = out[0]
        result = np.asarray(out.detach().cpu().numpy())
        if result.ndim > 1 and all(d == 1 for d in result.shape[1:]):
            return result.reshape(result.shape[0])  # keep one value per row, even for one row
        return result
