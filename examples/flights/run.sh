#!/usr/bin/env bash
# The main job on the embedded defaults: a workspace, a real dataset, its contract, the report.
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
$mlwright -w "$demo" audit log --limit 10
