"""What a feature repository declares: entities, feature views, on-demand views, services.

>>> from datetime import timedelta
>>> user = Entity("user", join_keys={"user_id": "int64"})
>>> stats = FeatureView("user_stats", entities=[user], source=ParquetSource("stats.parquet"),
...                     timestamp_field="ts", features=[Field("clicks", "float64")],
...                     ttl=timedelta(hours=48))
>>> stats.feature_names
['clicks']

Every definition turns into a JSON *spec* (``to_spec``) that the metadata store keeps; a
view's *fingerprint* hashes the parts of the spec that change what its features mean, so a
changed schema, source, TTL or transform is a new version and never a silent overwrite.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mlwright.errors import FeatureError
from mlwright.features.sources import Source, source_from_spec
from mlwright.store import check_name

FEATURE_TYPES = ("int64", "float64", "float32", "string", "bool", "timestamp")
KEY_TYPES = ("int64", "string")
RESERVED = ("__key", "__event_ts", "__created_ts", "__row")


def _check_type(what: str, dtype: str, allowed: Sequence[str]) -> None:
    if dtype not in allowed:
        raise FeatureError(f"{what} has type '{dtype}'; expected one of {', '.join(allowed)}.")


@dataclass(frozen=True)
class Field:
    """One feature: a name and a type (``int64``, ``float64``, ``float32``, ``string``,
    ``bool``, ``timestamp``)."""

    name: str
    dtype: str
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name.isidentifier() or self.name in RESERVED:
            raise FeatureError(f"Feature name '{self.name}' is not usable; use letters, digits "
                               "and underscores, not starting with a digit.")
        _check_type(f"Feature '{self.name}'", self.dtype, FEATURE_TYPES)


@dataclass(frozen=True)
class Entity:
    """What features describe: a name and its join keys with their types.

    >>> Entity("trip", join_keys={"driver_id": "int64", "city": "string"}).key_names
    ['driver_id', 'city']
    """

    name: str
    join_keys: Mapping[str, str]
    description: str = ""

    def __post_init__(self) -> None:
        check_name("entity", self.name)
        if not self.join_keys:
            raise FeatureError(f"Entity '{self.name}' has no join keys; give at least one, "
                               "e.g. join_keys={'user_id': 'int64'}.")
        for key, dtype in self.join_keys.items():
            if not key.isidentifier():
                raise FeatureError(f"Join key '{key}' of entity '{self.name}' is not an identifier.")
            _check_type(f"Join key '{key}' of entity '{self.name}'", dtype, KEY_TYPES)

    @property
    def key_names(self) -> list[str]:
        return list(self.join_keys)

    def to_spec(self) -> dict[str, Any]:
        return {"name": self.name, "join_keys": dict(self.join_keys),
                "description": self.description}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Entity:
        return cls(spec["name"], dict(spec["join_keys"]), spec.get("description", ""))


def fingerprint(semantic: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(semantic, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class FeatureView:
    """Features of some entities, read from a source, valid for ``ttl`` after their event time.

    ``timezone`` names the zone of *naive* timestamps in the source (e.g. ``"Europe/Paris"``);
    without it naive timestamps are refused. Everything is stored and compared in UTC.
    """

    name: str
    entities: Sequence[Entity]
    source: Source
    timestamp_field: str
    features: Sequence[Field]
    ttl: timedelta | None = None
    created_timestamp_field: str | None = None
    timezone: str | None = None
    owner: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    online: bool = True

    def __post_init__(self) -> None:
        check_name("feature view", self.name)
        if not self.entities:
            raise FeatureError(f"Feature view '{self.name}' has no entities; give at least one.")
        if not self.features:
            raise FeatureError(f"Feature view '{self.name}' declares no features.")
        names = [f.name for f in self.features]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise FeatureError(f"Feature view '{self.name}' declares {', '.join(duplicates)} twice.")
        clash = set(names) & set(self.join_keys)
        if clash:
            raise FeatureError(f"Feature view '{self.name}': {', '.join(sorted(clash))} is both a "
                               "join key and a feature; rename the feature.")
        if self.ttl is not None and self.ttl <= timedelta(0):
            raise FeatureError(f"Feature view '{self.name}' has ttl {self.ttl}; use a positive "
                               "duration or None for no limit.")
        if self.timezone is not None:
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise FeatureError(f"Feature view '{self.name}' names time zone "
                                   f"'{self.timezone}', which does not exist; use an IANA name "
                                   "such as 'UTC' or 'Europe/Paris'.") from None

    @property
    def join_keys(self) -> dict[str, str]:
        keys: dict[str, str] = {}
        for entity in self.entities:
            keys.update(entity.join_keys)
        return keys

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def semantic_spec(self) -> dict[str, Any]:
        return {
            "entities": [e.to_spec() for e in self.entities],
            "source": self.source.to_spec(),
            "timestamp_field": self.timestamp_field,
            "created_timestamp_field": self.created_timestamp_field,
            "features": [[f.name, f.dtype] for f in self.features],
            "ttl_seconds": self.ttl.total_seconds() if self.ttl is not None else None,
            "timezone": self.timezone,
        }

    def to_spec(self) -> dict[str, Any]:
        return {"kind": "view", **self.semantic_spec(),
                "descriptions": {f.name: f.description for f in self.features if f.description},
                "owner": self.owner, "tags": dict(self.tags), "description": self.description,
                "online": self.online}

    @classmethod
    def from_spec(cls, name: str, spec: Mapping[str, Any]) -> FeatureView:
        descriptions = spec.get("descriptions", {})
        ttl = spec.get("ttl_seconds")
        return cls(
            name=name, entities=[Entity.from_spec(e) for e in spec["entities"]],
            source=source_from_spec(spec["source"]), timestamp_field=spec["timestamp_field"],
            created_timestamp_field=spec.get("created_timestamp_field"),
            features=[Field(n, t, descriptions.get(n, "")) for n, t in spec["features"]],
            ttl=timedelta(seconds=ttl) if ttl is not None else None,
            timezone=spec.get("timezone"), owner=spec.get("owner", ""),
            tags=dict(spec.get("tags", {})), description=spec.get("description", ""),
            online=spec.get("online", True),
        )


@dataclass(frozen=True)
class RequestSource:
    """Values that arrive with the request (not stored anywhere), for on-demand views."""

    name: str
    schema: Sequence[Field]

    def to_spec(self) -> dict[str, Any]:
        return {"name": self.name, "schema": [[f.name, f.dtype] for f in self.schema]}


Transform = Callable[[Any], Any]


@dataclass(frozen=True)
class OnDemandFeatureView:
    """Features computed at request time by a Python function on a pandas DataFrame.

    The function receives one column per input feature (and request field) and returns a
    DataFrame with the declared features. It runs identically in historical retrieval and in
    online reads.

    >>> def ratio(df):                                                   # doctest: +SKIP
    ...     return pd.DataFrame({"clicks_per_view": df["clicks"] / df["views"]})
    >>> OnDemandFeatureView("ratios", sources=[stats], features=[Field("clicks_per_view",
    ...                     "float64")], transform=ratio)                 # doctest: +SKIP
    """

    name: str
    sources: Sequence[FeatureView | RequestSource]
    features: Sequence[Field]
    transform: Transform | None
    description: str = ""
    owner: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    transform_ref: str = ""  # "file.py:function", set when loaded from a repository
    code: str = ""

    def __post_init__(self) -> None:
        check_name("on-demand feature view", self.name)
        if not self.features:
            raise FeatureError(f"On-demand feature view '{self.name}' declares no features.")
        if self.transform is not None and not self.code:
            try:
                code = textwrap.dedent(inspect.getsource(self.transform))
            except (OSError, TypeError):
                code = getattr(self.transform, "__qualname__", repr(self.transform))
            object.__setattr__(self, "code", code)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def view_sources(self) -> list[FeatureView]:
        return [s for s in self.sources if isinstance(s, FeatureView)]

    @property
    def request_fields(self) -> list[Field]:
        return [f for s in self.sources if isinstance(s, RequestSource) for f in s.schema]

    def semantic_spec(self) -> dict[str, Any]:
        return {
            "views": [v.name for v in self.view_sources],
            "request": [s.to_spec() for s in self.sources if isinstance(s, RequestSource)],
            "features": [[f.name, f.dtype] for f in self.features],
            "code": self.code,
        }

    def to_spec(self) -> dict[str, Any]:
        return {"kind": "on_demand", **self.semantic_spec(), "transform_ref": self.transform_ref,
                "owner": self.owner, "tags": dict(self.tags), "description": self.description}


@dataclass(frozen=True)
class FeatureService:
    """A named set of features a model uses: views (all their features) or ``view:feature``."""

    name: str
    features: Sequence[FeatureView | OnDemandFeatureView | str]
    description: str = ""
    owner: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name("feature service", self.name)
        if not self.features:
            raise FeatureError(f"Feature service '{self.name}' lists no features.")

    @property
    def references(self) -> list[str]:
        refs: list[str] = []
        for item in self.features:
            refs.append(item if isinstance(item, str) else f"{item.name}:*")
        return refs

    def to_spec(self) -> dict[str, Any]:
        return {"kind": "service", "features": self.references, "owner": self.owner,
                "tags": dict(self.tags), "description": self.description}


Definition = Entity | FeatureView | OnDemandFeatureView | FeatureService
