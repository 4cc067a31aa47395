"""Run tracking: parameters, metric series, tags, artifacts, environment and code version.

>>> from mlwright.tracking import start_run, get_run, compare_runs
>>> with start_run("baseline", experiment="delays", params={"lr": 0.05}) as run:  # doctest: +SKIP
...     run.log_metric("auc", 0.91)
"""

from mlwright.tracking.environment import code_version, environment
from mlwright.tracking.queries import (
    MetricPoint,
    RunComparison,
    RunInfo,
    compare_runs,
    get_run,
    list_runs,
    load_artifact,
    metric_history,
    resolve_run_id,
)
from mlwright.tracking.runs import Run, start_run

__all__ = [
    "MetricPoint",
    "Run",
    "RunComparison",
    "RunInfo",
    "code_version",
    "compare_runs",
    "environment",
    "get_run",
    "list_runs",
    "load_artifact",
    "metric_history",
    "resolve_run_id",
    "start_run",
]
