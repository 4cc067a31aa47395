"""What every flavor needs: file hashes, atomic writes, class paths and lazy framework imports.

>>> module_roots(3.0)
frozenset({'builtins'})
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from mlwright.errors import RegistryError

_CHUNK = 1 << 20


def module_roots(model: object) -> frozenset[str]:
    """The top-level packages of the classes ``model`` is an instance of (its MRO).

    Flavors look at these before importing anything, so that detecting the flavor of a
    LightGBM model never imports torch.
    """
    return frozenset(cls.__module__.split(".")[0] for cls in type(model).__mro__)


def type_name(model: object) -> str:
    return f"{type(model).__module__}.{type(model).__qualname__}"


def framework(module: str, flavor: str, install: str | None = None) -> ModuleType:
    """Import ``module`` for ``flavor``, or say which package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise RegistryError(f"The {flavor!r} flavor needs the {module!r} package, which is not "
                            f"installed here ({exc}); install it: pip install {install or module}") from exc


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def hashes(folder: Path, names: list[str]) -> dict[str, str]:
    """``{name: sha256}`` of the files a flavor wrote, recorded in its meta."""
    return {name: sha256(folder / name) for name in names}


@contextlib.contextmanager
def atomic(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``, moved onto it only if the block succeeds.

    A failed save leaves nothing behind (no half-written model file for a loader to trip on).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield temporary
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


def model_file(folder: Path, name: str, flavor: str, meta: dict[str, Any]) -> Path:
    """``folder / name`` if it exists and matches the hash recorded at save time, else raise."""
    path = folder / name
    if not path.is_file():
        present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        holds = f"it holds {', '.join(present)}" if present else "it is empty or missing"
        raise RegistryError(f"The {flavor!r} model folder {folder} has no file {name!r} ({holds}); "
                            "the version's artifact is incomplete: register the model again.")
    expected = meta.get("files", {}).get(name)
    if expected is not None:
        got = sha256(path)
        if got != expected:
            raise RegistryError(f"The {flavor!r} model file {path} is corrupted: its sha256 is "
                                f"{got[:12]}…, expected {expected[:12]}… as recorded when it was "
                                "saved. Do not use it: restore the artifact or register the model again.")
    return path


def class_path(cls: type, flavor: str) -> str:
    """``"module:qualname"`` of ``cls``, checked to import back to the same class.

    A class defined in ``__main__`` or inside a function cannot be found again by the
    process that loads the model (a server, a batch job), so it is refused now, not then.
    """
    path = f"{cls.__module__}:{cls.__qualname__}"
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        raise RegistryError(f"The {flavor!r} flavor needs the model's class to be importable, but "
                            f"{path} is defined in a script, notebook or function; move the class "
                            "into a module of an installed package and register the model again.")
    try:
        found = import_path(path, flavor)
    except RegistryError as exc:
        raise RegistryError(f"The {flavor!r} flavor needs the model's class to be importable: {exc}") from exc
    if found is not cls:
        raise RegistryError(f"The {flavor!r} flavor found another object at {path} than the model's "
                            "class; give the class a unique module-level name.")
    return path


def import_path(path: str, flavor: str) -> Any:
    """The object at ``"module:qualname"``."""
    module_name, _, qualname = path.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise RegistryError(f"The {flavor!r} model class {path!r} cannot be imported here ({exc}); "
                            "install the package that defines it in this environment.") from exc
    return found
