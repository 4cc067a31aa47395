"""Pipelines: plain-function steps, cached by content, retried, partitioned and backfilled.

>>> from mlwright.pipelines import pipeline, step, log_metric
"""

from mlwright.pipelines.backfill import BackfillResult, backfill
from mlwright.pipelines.context import current_step, log_metric
from mlwright.pipelines.partitions import DailyPartitions, Partitions, StaticPartitions
from mlwright.pipelines.pipeline import Pipeline, pipeline
from mlwright.pipelines.refs import load_pipeline
from mlwright.pipelines.resume import resume
from mlwright.pipelines.runner import PipelineRunResult, StepFailedError
from mlwright.pipelines.steps import Step, step

__all__ = [
    "BackfillResult",
    "DailyPartitions",
    "Partitions",
    "Pipeline",
    "PipelineRunResult",
    "StaticPartitions",
    "Step",
    "StepFailedError",
    "backfill",
    "current_step",
    "load_pipeline",
    "log_metric",
    "pipeline",
    "resume",
    "step",
]
