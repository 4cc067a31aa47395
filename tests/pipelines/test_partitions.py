"""Partitions (daily, static) and backfill: only what is missing runs, failures are reported."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlwright.errors import PipelineError
from mlwright.pipelines import DailyPartitions, StaticPartitions, backfill, records
from mlwright.workspace import Workspace

from . import flows

DAYS = st.dates(min_value=date(1999, 1, 1), max_value=date(2031, 12, 31))


def every_day(first: date, last: date) -> list[str]:
    """The brute-force twin: walk one day at a time."""
    days, day = [], first
    while day <= last:
        days.append(day.isoformat())
        day += timedelta(days=1)
    return days


@given(start=DAYS, span=st.integers(0, 800), offsets=st.tuples(st.integers(0, 800),
                                                                 st.integers(0, 800)))
def test_daily_keys_are_every_day_of_the_range(start: date, span: int,
                                               offsets: tuple[int, int]) -> None:
    end = start + timedelta(days=span)
    days = DailyPartitions(start.isoformat(), end.isoformat())
    assert days.keys() == every_day(start, end)
    low, high = sorted(min(o, span) for o in offsets)
    first, last = start + timedelta(days=low), start + timedelta(days=high)
    assert days.keys(first.isoformat(), last.isoformat()) == every_day(first, last)
    assert days.keys(first.isoformat()) == every_day(first, end)
    assert days.keys(end=last.isoformat()) == every_day(start, last)
    assert days.check(first.isoformat()) == first.isoformat()
    with pytest.raises(PipelineError, match="outside the declared range"):
        days.check((end + timedelta(days=1)).isoformat())
    with pytest.raises(PipelineError, match="outside the declared range"):
        days.check((start - timedelta(days=1)).isoformat())


def test_daily_partitions_refuse_bad_ranges() -> None:
    with pytest.raises(PipelineError, match=r"Daily partitions start 2024-02-01 after they end "
                                            r"2024-01-01"):
        DailyPartitions("2024-02-01", "2024-01-01")
    with pytest.raises(PipelineError, match=r"Partition start '2024-13-01' is not a date"):
        DailyPartitions("2024-13-01", "2024-12-31")
    days = DailyPartitions("2024-01-01", "2024-01-31")
    with pytest.raises(PipelineError, match=r"--from 2024-01-05 is after --to 2024-01-02"):
        days.keys("2024-01-05", "2024-01-02")
    assert days.to_dict() == {"kind": "daily", "start": "2024-01-01", "end": "2024-01-31"}


def test_static_partitions_keep_their_order() -> None:
    regions = StaticPartitions(("eu", "us", "apac", "latam"))
    assert regions.keys() == ["eu", "us", "apac", "latam"]
    assert regions.keys("us", "apac") == ["us", "apac"]
    assert regions.keys("apac") == ["apac", "latam"]
    assert regions.check("eu") == "eu"
    with pytest.raises(PipelineError, match=r"--from latam comes after --to us"):
        regions.keys("latam", "us")
    with pytest.raises(PipelineError, match=r"Partition 'mars' is not one of the declared"):
        regions.keys("mars")
    with pytest.raises(PipelineError, match=r"Static partitions need distinct keys, at least one"):
        StaticPartitions(("eu", "eu"))
    with pytest.raises(PipelineError, match=r"at least one"):
        StaticPartitions(())
    assert StaticPartitions((1, 2)).keys() == ["1", "2"]  # type: ignore[arg-type]


def test_one_partition_runs_and_records_its_key(workspace: Workspace, log: str) -> None:
    result = flows.daily.run(workspace=workspace, partition="2024-01-03", log=log,
                             executor="inline")
    assert (result.partition, result.output()) == ("2024-01-03", {"day": "2024-01-03"})
    stored = records.get_run(workspace, result.run_id)
    assert (stored.partition, stored.params["partition"]) == ("2024-01-03", "2024-01-03")
    other = flows.daily.run(workspace=workspace, partition="2024-01-04", log=log, executor="inline")
    assert other.ran == ["day_total"]  # the partition is an argument, so part of the key
    regional = flows.regional.run(workspace=workspace, partition="apac", log=log, executor="inline")
    assert regional.output() == {"day": "apac"}


def test_backfill_runs_only_the_missing_partitions_and_is_idempotent(workspace: Workspace,
                                                                     log: str) -> None:
    flows.daily.run(workspace=workspace, partition="2024-01-02", log=log, executor="inline")
    done = flows.daily.backfill("2024-01-01", "2024-01-04", workspace=workspace, workers=2, log=log)
    assert done.requested == ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]
    assert done.already_done == ["2024-01-02"]
    assert sorted(done.succeeded) == ["2024-01-01", "2024-01-03", "2024-01-04"]
    assert done.failed == {}
    for key, run_id in done.succeeded.items():
        stored = records.get_run(workspace, run_id)
        assert (stored.partition, stored.status, stored.executor) == (key, "succeeded", "inline")
    assert sorted(flows.ran(log)) == ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]

    again = flows.daily.backfill("2024-01-01", "2024-01-04", workspace=workspace, workers=2, log=log)
    assert (again.succeeded, again.failed) == ({}, {})
    assert again.already_done == again.requested
    assert len(flows.ran(log)) == 4  # nothing ran the second time


def test_backfill_reports_a_failing_partition_and_runs_the_others(workspace: Workspace,
                                                                  log: str) -> None:
    result = backfill(flows.daily, "2024-01-05", "2024-01-07", params={"log": log,
                                                                        "fail_on": "2024-01-06"},
                      workspace=workspace, workers=2)
    assert sorted(result.succeeded) == ["2024-01-05", "2024-01-07"]
    assert list(result.failed) == ["2024-01-06"]
    assert "Step 'day_total' failed: ValueError: no data for 2024-01-06" in result.failed["2024-01-06"]
    assert result.to_dict()["requested"] == 3
    # Once the cause is gone, backfilling the range again runs just that partition.
    fixed = flows.daily.backfill("2024-01-05", "2024-01-07", workspace=workspace, log=log)
    assert (list(fixed.succeeded), fixed.already_done) == (["2024-01-06"],
                                                           ["2024-01-05", "2024-01-07"])


def test_backfill_refuses_bad_input_before_starting_workers(workspace: Workspace, log: str) -> None:
    with pytest.raises(PipelineError, match=r"Pipeline 'chain' is not partitioned"):
        flows.chain.backfill(workspace=workspace, log=log)
    with pytest.raises(PipelineError, match=r"Pipeline 'daily' needs parameter 'log'"):
        flows.daily.backfill("2024-01-01", "2024-01-02", workspace=workspace)
    with pytest.raises(PipelineError, match=r"Partition 2023-12-31 is outside the declared range"):
        flows.daily.backfill("2023-12-31", "2024-01-02", workspace=workspace, log=log)
    assert flows.ran(log) == []
