"""The feature store: point-in-time correct training data and the same features online.

>>> from mlwright.features import Entity, FeatureView, Field, ParquetSource  # doctest: +SKIP
>>> apply_repository("features/")                                           # doctest: +SKIP
>>> get_historical_features(entity_df, ["user_stats:clicks"]).to_arrow()   # doctest: +SKIP
>>> materialize(start, end)                                                 # doctest: +SKIP
>>> online_reader(["user_stats:clicks"]).get({"user_id": [42]}).to_dict()  # doctest: +SKIP

See docs/design/features.md for the semantics and the online store layout.
"""

from mlwright.features.catalog import Catalog, load_catalog
from mlwright.features.definitions import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    OnDemandFeatureView,
    RequestSource,
)
from mlwright.features.historical import HistoricalRetrieval, get_historical_features
from mlwright.features.materialize import MaterializationResult, materialize
from mlwright.features.online_read import (
    OnlineReader,
    OnlineResult,
    get_online_features,
    online_reader,
)
from mlwright.features.push import push
from mlwright.features.repository import Plan, apply_repository, load_repository
from mlwright.features.sources import DatasetSource, ParquetSource, SqlSource

__all__ = [
    "Catalog",
    "DatasetSource",
    "Entity",
    "FeatureService",
    "FeatureView",
    "Field",
    "HistoricalRetrieval",
    "MaterializationResult",
    "OnDemandFeatureView",
    "OnlineReader",
    "OnlineResult",
    "ParquetSource",
    "Plan",
    "RequestSource",
    "SqlSource",
    "apply_repository",
    "get_historical_features",
    "get_online_features",
    "load_catalog",
    "load_repository",
    "materialize",
    "online_reader",
    "push",
]
