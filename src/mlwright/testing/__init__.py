"""Test helpers for mlwright and for anyone writing a backend: conformance suites.

Importing a suite needs pytest (a dev dependency), so each lives in its own module and
this package imports nothing until asked::

    from mlwright.testing.artifact_conformance import ArtifactStoreConformance

    class TestMyStore(ArtifactStoreConformance):
        def make_store(self, tmp_path):
            return ArtifactStore("memory://" + tmp_path.name)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlwright.testing.artifact_conformance import ArtifactStoreConformance

__all__ = ["ArtifactStoreConformance"]

_EXPORTS = {"ArtifactStoreConformance": "mlwright.testing.artifact_conformance"}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mlwright.testing' has no attribute {name!r}")
