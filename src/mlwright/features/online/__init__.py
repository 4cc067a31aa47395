"""Online stores: the newest feature row per entity key, read on the serving hot path.

>>> from mlwright.features.online import OnlineTable, encode_key, open_online_store
>>> store = open_online_store("sqlite:///.mlwright/online.db")        # doctest: +SKIP
>>> table = OnlineTable("user_stats__v1", (("clicks", "float64"),))
>>> read = store.reader(table)                                         # doctest: +SKIP
>>> read([encode_key([42], ["int64"])])                                # doctest: +SKIP
[(1700000000000000, 3.0)]

``RedisOnlineStore`` is imported on first use: Redis is an optional extra
(``pip install 'mlwright[redis]'``), and importing this package connects to nothing.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from mlwright.features.online.base import (
    OnlineStore,
    OnlineTable,
    Reader,
    Row,
    encode_key,
    encode_keys,
    open_online_store,
)
from mlwright.features.online.sqlite import SqliteOnlineStore

if TYPE_CHECKING:
    from mlwright.features.online.redis import RedisOnlineStore

__all__ = [
    "OnlineStore",
    "OnlineTable",
    "Reader",
    "RedisOnlineStore",
    "Row",
    "SqliteOnlineStore",
    "encode_key",
    "encode_keys",
    "open_online_store",
]


def __getattr__(name: str) -> Any:
    if name == "RedisOnlineStore":
        return import_module("mlwright.features.online.redis").RedisOnlineStore
    raise AttributeError(f"module 'mlwright.features.online' has no attribute {name!r}")
