"""The feature repository of the flights example: `mlwright features apply examples/flights/features`.

Weather at the origin airport (hourly, valid for 3 hours) and each carrier's recent
punctuality, computed in SQL over the flights dataset with windows that end *before* the
hour of the flight, so a flight's own delay never leaks into its features.
"""

from datetime import timedelta

import pandas as pd

from mlwright.features import (
    DatasetSource,
    Entity,
    FeatureService,
    FeatureView,
    Field,
    OnDemandFeatureView,
    SqlSource,
)

airport = Entity("airport", join_keys={"origin": "string"}, description="NYC origin airport")
carrier = Entity("carrier", join_keys={"carrier": "string"}, description="Airline code")

weather = FeatureView(
    "weather",
    entities=[airport],
    source=DatasetSource("weather"),
    timestamp_field="time_hour",
    features=[Field("temp", "float64"), Field("wind_speed", "float64"),
              Field("precip", "float64"), Field("visib", "float64")],
    ttl=timedelta(hours=3),
    owner="ops-analytics",
    description="Hourly weather observed at the origin airport.",
)

carrier_punctuality = FeatureView(
    "carrier_punctuality",
    entities=[carrier],
    source=SqlSource(
        """
        SELECT carrier, time_hour,
               count(dep_delay) OVER last_7d AS flights_7d,
               avg(dep_delay) OVER last_7d AS mean_delay_7d,
               avg(CAST(dep_delay > 15 AS DOUBLE)) OVER last_1d AS late_share_1d
        FROM (SELECT carrier, time_hour, avg(dep_delay) AS dep_delay
              FROM flights GROUP BY carrier, time_hour)
        WINDOW last_7d AS (PARTITION BY carrier ORDER BY time_hour
                           RANGE BETWEEN INTERVAL 7 DAYS PRECEDING AND INTERVAL 1 HOUR PRECEDING),
               last_1d AS (PARTITION BY carrier ORDER BY time_hour
                           RANGE BETWEEN INTERVAL 1 DAY PRECEDING AND INTERVAL 1 HOUR PRECEDING)
        """,
        inputs={"flights": DatasetSource("flights")},
    ),
    timestamp_field="time_hour",
    features=[Field("flights_7d", "int64"), Field("mean_delay_7d", "float64"),
              Field("late_share_1d", "float64")],
    ttl=timedelta(days=2),
    owner="ops-analytics",
    description="A carrier's departure delays over the previous day and week.",
)


def bad_weather(df: pd.DataFrame) -> pd.DataFrame:
    """Low visibility or any precipitation: the conditions that ground flights."""
    return pd.DataFrame({"bad_weather": (df["visib"] < 3) | (df["precip"] > 0)})


weather_flags = OnDemandFeatureView(
    "weather_flags",
    sources=[weather],
    features=[Field("bad_weather", "bool")],
    transform=bad_weather,
    description="Computed at request time from the weather features.",
)

delay_model = FeatureService(
    "delay_model",
    features=[weather, carrier_punctuality, weather_flags],
    description="What the departure-delay model reads.",
)
