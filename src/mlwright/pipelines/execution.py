"""Running one step: inputs loaded from the artifact store, retries with backoff, logs and
metrics captured, the output stored. The same function runs in-process, in a worker process
or on a Ray node; everything it needs travels in a picklable ``StepTask``."""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import os
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

from mlwright.config import ENV_PREFIX
from mlwright.pipelines import context as step_context
from mlwright.pipelines.outputs import decode, encode
from mlwright.store import ArtifactStore
from mlwright.workspace import WORKSPACE_ENV

LOG_LIMIT = 64 * 1024


@dataclass(frozen=True)
class OutputRef:
    """Where an upstream output lives, standing in for its Handle in a task's arguments."""

    digest: str
    kind: str


@dataclass
class StepTask:
    run_id: str
    node: str
    step_ref: str
    key: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    retries: int
    backoff_s: float
    artifact_url: str
    workspace_root: str
    settings: dict[str, Any] = field(default_factory=dict)
    step_object: Any = None  # set for in-process execution; workers import ``step_ref``


@dataclass
class StepResult:
    node: str
    key: str
    ok: bool
    attempts: int
    started: float
    ended: float
    digest: str | None = None
    kind: str | None = None
    log: str = ""
    error: str | None = None
    error_type: str | None = None
    metrics: list[tuple[str, float, int | None, float]] = field(default_factory=list)


def load_step(ref: str) -> Any:
    module_name, _, qualname = ref.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def _resolve(value: Any, store: ArtifactStore, cache: dict[str, Any], root: str) -> Any:
    if isinstance(value, OutputRef):
        if value.digest not in cache:
            cache[value.digest] = decode(value.kind, store.get_bytes(value.digest), workspace=root)
        return cache[value.digest]
    if isinstance(value, list | tuple):
        return type(value)(_resolve(v, store, cache, root) for v in value)
    if isinstance(value, dict):
        return {k: _resolve(v, store, cache, root) for k, v in value.items()}
    return value


class _Capture(logging.Handler):
    def __init__(self, sink: io.StringIO) -> None:
        super().__init__(logging.INFO)
        self.sink = sink
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.write(self.format(record) + "\n")


def _enter_workspace(task: StepTask) -> dict[str, str]:
    """Point ``open_workspace()`` at the pipeline's workspace and settings while the step runs
    (in-process steps too, so a workspace in the caller's environment cannot leak in);
    returns the environment to restore."""
    saved = dict(os.environ)
    os.environ[WORKSPACE_ENV] = task.workspace_root
    for key, value in task.settings.items():
        os.environ[f"{ENV_PREFIX}{key.upper()}"] = str(value)
    return saved


def execute(task: StepTask) -> StepResult:
    """Run a step task to completion (or to its last failed attempt); never raises."""
    started = time.time()
    store = ArtifactStore(task.artifact_url)
    sink = io.StringIO()
    handler = _Capture(sink)
    root_logger = logging.getLogger()
    root_logger.addHandler(handler)
    context = step_context.StepContext(task.run_id, task.node, task.workspace_root,
                                       task.settings)
    token = step_context.enter(context)
    saved_environment = _enter_workspace(task)
    attempts = 0
    error = error_type = None
    try:
        step = task.step_object if task.step_object is not None else load_step(task.step_ref)
        inputs: dict[str, Any] = {}
        args = _resolve(task.args, store, inputs, task.workspace_root)
        kwargs = _resolve(task.kwargs, store, inputs, task.workspace_root)
        while True:
            attempts += 1
            try:
                with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                    value = step.fn(*args, **kwargs)
                kind, data = encode(value, task.node)
                digest = store.put_bytes(data)
                return StepResult(task.node, task.key, True, attempts, started, time.time(),
                                  digest=digest, kind=kind, log=sink.getvalue()[-LOG_LIMIT:],
                                  metrics=context.metrics)
            except Exception as exc:
                error_type = type(exc).__name__
                error = f"{error_type}: {exc}"
                sink.write(traceback.format_exc())
                if attempts > task.retries or type(exc).__name__ == "PipelineError":
                    break
                context.metrics.clear()
                time.sleep(task.backoff_s * 2 ** (attempts - 1))
    except Exception as exc:  # the step could not even be loaded or fed its inputs
        error_type = type(exc).__name__
        error = f"{error_type}: {exc}"
        sink.write(traceback.format_exc())
    finally:
        os.environ.clear()
        os.environ.update(saved_environment)
        context.close()
        step_context.leave(token)
        root_logger.removeHandler(handler)
    return StepResult(task.node, task.key, False, attempts, started, time.time(),
                      log=sink.getvalue()[-LOG_LIMIT:], error=error, error_type=error_type)
