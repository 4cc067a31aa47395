"""What a running step can reach: its run, its workspace, and a metric logger.

>>> from mlwright.pipelines import log_metric
>>> @step
... def evaluate(model, data):
...     log_metric("auc", 0.91)        # lands in the pipeline run's tracking record
"""

from __future__ import annotations

import contextvars
import math
import time
from dataclasses import dataclass, field
from typing import Any

from mlwright.errors import PipelineError
from mlwright.workspace import Workspace, open_workspace


@dataclass
class StepContext:
    """The running step: its pipeline run, its name, and the pipeline's workspace."""

    run_id: str
    step: str
    workspace_root: str
    settings: dict[str, Any] = field(default_factory=dict)
    metrics: list[tuple[str, float, int | None, float]] = field(default_factory=list)
    _workspace: Workspace | None = field(default=None, repr=False)

    @property
    def workspace(self) -> Workspace:
        """The workspace the pipeline runs in, with the same settings (opened on first use).

        Functions called without ``workspace=`` inside a step find it too: the step runs with
        ``MLWRIGHT_WORKSPACE`` and the other settings set to the pipeline's.
        """
        if self._workspace is None:
            self._workspace = open_workspace(self.workspace_root, overrides=self.settings)
        return self._workspace

    def close(self) -> None:
        if self._workspace is not None:
            self._workspace.close()
            self._workspace = None


_context: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar("mlwright_step",
                                                                           default=None)


def current_step() -> StepContext:
    """The step running now; a PipelineError outside of one."""
    context = _context.get()
    if context is None:
        raise PipelineError("No step is running here: log_metric and current_step work inside "
                            "a step while its pipeline runs.")
    return context


def log_metric(name: str, value: float, step: int | None = None) -> None:
    """Record a metric of the running step's pipeline run (a series when ``step`` is given)."""
    context = current_step()
    if not isinstance(name, str) or not name:
        raise PipelineError(f"A metric name must be a non-empty string, got {name!r}.")
    number = float(value)
    if not math.isfinite(number):
        raise PipelineError(f"Metric '{name}' of step '{context.step}' is {number}; log finite "
                            "numbers only.")
    context.metrics.append((name, number, step, time.time()))


def enter(context: StepContext) -> contextvars.Token[StepContext | None]:
    return _context.set(context)


def leave(token: contextvars.Token[StepContext | None]) -> None:
    _context.reset(token)
