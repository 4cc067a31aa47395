"""An opt-in response cache: the same checked input to the same version gives the cached answer.

>>> cache = ResponseCache(2)
>>> key = cache.key(1, {"x": np.array([1.0])})
>>> cache.put(key, np.array([0.5])); cache.get(key).tolist()
[0.5]

Keyed by a hash of the version and every input column's bytes (BLAKE2b: fast, and collisions
are not a concern at this size); least recently used answers are dropped first. Only
deterministic models should turn it on: features looked up online can change between calls,
so a model with a feature service caches on its request fields only when that is acceptable.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np


class ResponseCache:
    """``capacity`` most recently used predictions of one model."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[bytes, np.ndarray] = OrderedDict()

    @staticmethod
    def key(version: int, columns: Mapping[str, np.ndarray]) -> bytes:
        digest = hashlib.blake2b(str(version).encode(), digest_size=16)
        for name, array in columns.items():
            digest.update(name.encode())
            digest.update(array.dtype.str.encode())
            if array.dtype.kind == "O":
                digest.update(repr(array.tolist()).encode())
            else:
                digest.update(np.ascontiguousarray(array).tobytes())
        return digest.digest()

    def get(self, key: bytes) -> np.ndarray | None:
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return found

    def put(self, key: bytes, value: np.ndarray) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
