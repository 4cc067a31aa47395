"""Where steps and partitions run: in this process, in a local process pool, or on Ray.

One protocol with one method that matters (``submit``); the runner never knows which.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from mlwright.errors import PipelineError

T = TypeVar("T")
ExecutorKind = Literal["inline", "local", "ray"]


class Executor(Protocol):
    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]: ...

    def shutdown(self) -> None: ...


class InlineExecutor:
    """Runs each task at once in this process: simplest, and best for tiny steps."""

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:
            future.set_exception(exc)
        return future

    def shutdown(self) -> None:
        pass


class LocalExecutor:
    """A pool of worker processes (forked, so steps defined anywhere are found); started on
    the first task, so a fully cached run never pays for it."""

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        if self._pool is None:
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            self._pool = ProcessPoolExecutor(self.max_workers,
                                             mp_context=multiprocessing.get_context(method))
        return self._pool.submit(fn, *args)

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class RayExecutor:
    """Tasks as Ray remote functions on the cluster at ``address`` (default: the Ray this
    process already joined, else $RAY_ADDRESS, else a Ray instance started here).

    Each task gets this process's import path, so that workers on this machine find the same
    step modules as the driver (a test's, a notebook's folder); on other machines the paths
    that do not exist are ignored, and steps of a module loaded from a file travel by value.
    """

    def __init__(self, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise PipelineError("The Ray executor needs Ray: pip install 'mlwright[ray]' "
                                "(or choose --executor local).") from None
        self._ray = ray
        self._remotes: dict[Callable[..., Any], Any] = {}
        path = [p or str(Path.cwd()) for p in sys.path]
        self._runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(path)}}
        if not ray.is_initialized():
            ray.init(address=address or os.environ.get("RAY_ADDRESS"), ignore_reinit_error=True,
                     include_dashboard=False, log_to_driver=False)

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        remote = self._remotes.get(fn)
        if remote is None:
            remote = self._remotes[fn] = self._ray.remote(
                max_retries=0, runtime_env=self._runtime_env)(fn)
        future: Future[T] = remote.remote(*args).future()
        return future

    def shutdown(self) -> None:
        pass  # the Ray instance outlives one run; ray.shutdown() is the caller's to make


EXECUTORS = ("local", "inline", "ray")


def check_executor(kind: str) -> str:
    """``kind`` if it names an executor; a PipelineError listing them otherwise."""
    if kind not in EXECUTORS:
        raise PipelineError(f"Unknown executor '{kind}'; choose {', '.join(EXECUTORS)}.")
    return kind


def make_executor(kind: ExecutorKind | str, max_workers: int | None = None) -> Executor:
    if kind == "inline":
        return InlineExecutor()
    if kind == "local":
        return LocalExecutor(max_workers)
    if kind == "ray":
        return RayExecutor()
    raise PipelineError(f"Unknown executor '{kind}'; choose inline, local or ray.")
