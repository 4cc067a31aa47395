"""Pipelines: a function that calls steps; the graph comes from the data passed between them.

>>> @pipeline(schedule="0 3 * * *")
... def train(min_delay: int = 15):
...     raw = load()
...     features = build_features(raw, min_delay=min_delay)
...     return fit(features)
>>> result = train.run(min_delay=20)          # doctest: +SKIP
>>> result.summary()                          # doctest: +SKIP
'3 steps: 1 ran, 2 cached'
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from mlwright.errors import PipelineError
from mlwright.pipelines.graph import Graph, Handle, tracing
from mlwright.pipelines.partitions import Partitions
from mlwright.pipelines.steps import code_hash

PARTITION = "partition"


def check_schedule(expression: str, pipeline: str) -> str:
    from croniter import croniter

    if not isinstance(expression, str) or not croniter.is_valid(expression):
        raise PipelineError(f"Schedule {expression!r} of pipeline '{pipeline}' is not a cron "
                            "expression (e.g. '0 3 * * *' for 03:00 every day).")
    return expression


@dataclass(eq=False)
class Pipeline:
    """A traced function of steps, with its partitions, schedule and default executor."""

    fn: Callable[..., Any]
    name: str
    partitions: Partitions | None = None
    schedule: str | None = None
    executor: str = "local"

    def __post_init__(self) -> None:
        try:  # real types even where `from __future__ import annotations` made them strings
            self.signature = inspect.signature(self.fn, eval_str=True)
        except (NameError, AttributeError, SyntaxError, TypeError):  # names only a type checker sees
            self.signature = inspect.signature(self.fn)
        if self.schedule is not None:
            check_schedule(self.schedule, self.name)
        if self.partitions is not None and PARTITION not in self.signature.parameters:
            raise PipelineError(f"Pipeline '{self.name}' declares partitions, so its function "
                                f"needs a '{PARTITION}' parameter.")

    @property
    def ref(self) -> str:
        """How to find the pipeline again: ``module:function``, or ``/path/file.py:function``
        when it was loaded from a file or lives in the script being run."""
        module = sys.modules.get(self.fn.__module__)
        origin = getattr(module, "__mlwright_file__", None)
        if origin is None and self.fn.__module__ == "__main__":
            origin = getattr(module, "__file__", None)
            origin = str(Path(origin).resolve()) if origin else None
        return f"{origin or self.fn.__module__}:{self.fn.__qualname__}"

    @property
    def code_hash(self) -> str:
        return code_hash(self.fn)

    @property
    def source_file(self) -> str | None:
        """The file the pipeline is defined in (its git state is recorded with each run)."""
        try:
            return inspect.getsourcefile(self.fn)
        except TypeError:
            return None

    def bind(self, params: dict[str, Any], partition: str | None) -> dict[str, Any]:
        """Check parameters against the function's signature, converting where safe."""
        accepted = {k: p for k, p in self.signature.parameters.items() if k != PARTITION}
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise PipelineError(f"Pipeline '{self.name}' has no parameter '{unknown[0]}' "
                                f"(parameters: {', '.join(accepted) or 'none'}).")
        bound: dict[str, Any] = {}
        for name, parameter in accepted.items():
            if name not in params:
                if parameter.default is inspect.Parameter.empty:
                    raise PipelineError(f"Pipeline '{self.name}' needs parameter '{name}'.")
                bound[name] = parameter.default
                continue
            value = params[name]
            if parameter.annotation is not inspect.Parameter.empty and \
                    not isinstance(parameter.annotation, str):
                try:
                    value = TypeAdapter(parameter.annotation).validate_python(value)
                except ValidationError as exc:
                    expected = getattr(parameter.annotation, "__name__", str(parameter.annotation))
                    raise PipelineError(
                        f"Parameter '{name}' of pipeline '{self.name}' must be {expected}; got "
                        f"{value!r} ({exc.errors()[0]['msg']}).") from None
            bound[name] = value
        if self.partitions is None and partition is not None:
            raise PipelineError(f"Pipeline '{self.name}' is not partitioned; drop the partition "
                                f"{partition!r}.")
        if self.partitions is not None:
            if partition is None:
                raise PipelineError(f"Pipeline '{self.name}' is partitioned: give a partition "
                                    "key (or use backfill).")
            bound[PARTITION] = self.partitions.check(partition)
        return bound

    def trace(self, bound: dict[str, Any]) -> tuple[Graph, Any]:
        """Call the function with tracing on: steps become nodes, nothing executes."""
        graph = Graph(self.name)
        with tracing(graph):
            returned = self.fn(**bound)
        if not graph.nodes:
            raise PipelineError(f"Pipeline '{self.name}' called no steps; decorate the functions "
                                "it calls with @step.")
        if returned is not None and not isinstance(returned, Handle):
            raise PipelineError(f"Pipeline '{self.name}' returned a {type(returned).__name__}; "
                                "return a step's output (or nothing).")
        graph.assign_keys()
        return graph, returned

    def run(self, *, workspace: Any = None, partition: str | None = None,
            executor: str | None = None, max_workers: int | None = None,
            on_step: Callable[[Any], None] | None = None, **params: Any) -> Any:
        """Run (what is not cached of) the pipeline; returns its ``PipelineRunResult``.

        ``on_step`` is called with each step's record as it finishes (or is found cached).
        """
        from mlwright.pipelines.runner import run_pipeline

        return run_pipeline(self, params, partition=partition, workspace=workspace,
                            executor=executor or self.executor, max_workers=max_workers,
                            on_step=on_step)

    def register(self, *, workspace: Any = None, schedule: str | None = None) -> Any:
        """Record the pipeline without running it, applying its schedule: ``schedule`` if
        given, else the decorator's (runs never change a recorded schedule; this does).
        Returns its ``PipelineInfo``."""
        from mlwright.pipelines import records
        from mlwright.workspace import as_workspace

        ws = as_workspace(workspace)
        if schedule is not None:
            check_schedule(schedule, self.name)
        records.register(ws, name=self.name, ref=self.ref, schedule=self.schedule,
                         partitions=self.partitions.to_dict() if self.partitions else None,
                         code_hash=self.code_hash, apply_schedule=True)
        if schedule is not None:
            return records.set_schedule(ws, self.name, schedule)
        return records.get_pipeline(ws, self.name)

    def backfill(self, start: str | None = None, end: str | None = None, *,
                 workspace: Any = None, workers: int | None = None, executor: str = "local",
                 **params: Any) -> Any:
        """Run every partition in [start, end] that has no successful run yet, in parallel."""
        from mlwright.pipelines.backfill import backfill

        return backfill(self, start, end, params=params, workspace=workspace, workers=workers,
                        executor=executor)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


def pipeline(fn: Callable[..., Any] | None = None, /, *, name: str | None = None,
             partitions: Partitions | None = None, schedule: str | None = None,
             executor: str = "local") -> Any:
    """Make a function of steps a pipeline (optionally partitioned and scheduled)."""
    def wrap(function: Callable[..., Any]) -> Pipeline:
        return Pipeline(function, name or function.__name__, partitions, schedule, executor)

    return wrap(fn) if fn is not None else wrap
