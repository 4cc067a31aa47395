"""Serving: registered models behind an API (the server comes with its own module).

>>> from mlwright.serving import DynamicBatcher     # doctest: +SKIP
"""

from mlwright.serving.batching import BatchStats, DynamicBatcher

__all__ = ["BatchStats", "DynamicBatcher"]
