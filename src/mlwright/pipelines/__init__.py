"""Pipelines: plain-function steps, cached by content, retried, partitioned and backfilled.

>>> from mlwright.pipelines import pipeline, step, log_metric
"""

from mlwright.pipelines.backfill import BackfillResult, backfill
from mlwright.pipelines.context import current_step, log_metric
from mlwright.pipelines.definition import Pipeline, pipeline
from mlwright.pipelines.partitions import DailyPartitions, Partitions, StaticPartitions
from mlwright.pipelines.queries import (
    get_pipeline,
    get_pipeline_run,
    list_pipelines,
    pipeline_runs,
    set_schedule,
)
from mlwright.pipelines.records import PipelineInfo, PipelineRunInfo, StepRecord
from mlwright.pipelines.refs import load_pipeline
from mlwright.pipelines.resuming import resume
from mlwright.pipelines.runner import PipelineRunResult, StepFailedError
from mlwright.pipelines.steps import Step, step

__all__ = [
    "BackfillResult",
    "DailyPartitions",
    "Partitions",
    "Pipeline",
    "PipelineInfo",
    "PipelineRunInfo",
    "PipelineRunResult",
    "StaticPartitions",
    "Step",
    "StepFailedError",
    "StepRecord",
    "backfill",
    "current_step",
    "get_pipeline",
    "get_pipeline_run",
    "list_pipelines",
    "load_pipeline",
    "log_metric",
    "pipeline",
    "pipeline_runs",
    "resume",
    "set_schedule",
    "step",
]
