"""The graph a pipeline function traces: nodes are step calls, edges are handles passed on.

Each node's cache key hashes its step's code, version and arguments, where an argument that
comes from another step counts by that step's key (a Merkle chain): the keys of a whole run
are known before anything executes, so an unchanged pipeline is recognised without loading
a single output. A step with ``cache=False`` (one that reads the outside world, say the
latest version of a dataset) runs every time, and what depends on it is keyed by the digest
of what it returned: new data re-runs the steps downstream, the same data does not.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from mlwright.errors import PipelineError

if TYPE_CHECKING:
    from mlwright.pipelines.steps import Step

_current: contextvars.ContextVar[Graph | None] = contextvars.ContextVar("mlwright_graph",
                                                                      default=None)


def current_graph() -> Graph | None:
    return _current.get()


@dataclass(frozen=True)
class Handle:
    """The future output of a node; pass it to other steps, or return it from the pipeline."""

    node: int
    step: str

    def __bool__(self) -> bool:
        raise PipelineError(f"The output of step '{self.step}' is not known while the pipeline is "
                            "traced; branch inside a step, not on a step's output.")

    def __iter__(self) -> Iterator[Any]:
        raise PipelineError(f"The output of step '{self.step}' cannot be unpacked while the "
                            "pipeline is traced; return one value (e.g. a dict) and pass it on.")


@dataclass
class Node:
    id: int
    step: Step[Any, Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    name: str = ""
    upstream: list[int] = field(default_factory=list)
    key: str = ""

    def arguments(self) -> Iterator[Any]:
        yield from self.args
        yield from self.kwargs.values()


def canonical(value: Any, where: str) -> Any:
    """A JSON-able form of a constant argument, for the cache key; refuses what it can't hash."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}  # not the string "nan"
    if isinstance(value, datetime | date):
        return {"$time": value.isoformat()}
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return [canonical(v, where) for v in value]
    if isinstance(value, Mapping):
        return {str(k): canonical(v, where) for k, v in sorted(value.items(), key=lambda i: str(i[0]))}
    if isinstance(value, bytes):
        return {"$sha256": hashlib.sha256(value).hexdigest()}
    raise PipelineError(f"{where} is a {type(value).__name__}, which cannot be part of a cache key; "
                        "pass plain values (numbers, strings, lists, dicts) or another step's output.")


class Graph:
    """Nodes in the order the pipeline called them (which is already a topological order)."""

    def __init__(self, pipeline: str) -> None:
        self.pipeline = pipeline
        self.nodes: list[Node] = []
        self._names: dict[str, int] = {}

    def add(self, step: Step[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Handle:
        node = Node(id=len(self.nodes), step=step, args=args, kwargs=dict(kwargs))
        count = self._names.get(step.name, 0)
        self._names[step.name] = count + 1
        node.name = step.name if count == 0 else f"{step.name}#{count + 1}"
        for value in node.arguments():
            for handle in _handles(value):
                if handle.node >= node.id or handle.node < 0:
                    raise PipelineError(f"Step '{node.name}' takes the output of node {handle.node}, "
                                        f"which does not exist yet: pipeline '{self.pipeline}' has a cycle.")
                node.upstream.append(handle.node)
        self.nodes.append(node)
        return Handle(node.id, node.name)

    def order(self) -> list[Node]:
        """The nodes in dependency order; a PipelineError naming the cycle if there is one."""
        ready = {n.id: set(n.upstream) for n in self.nodes}
        ordered: list[Node] = []
        done: set[int] = set()
        while ready:
            free = sorted(i for i, ups in ready.items() if ups <= done)
            if not free:
                cycle = ", ".join(self.nodes[i].name for i in sorted(ready))
                raise PipelineError(f"Pipeline '{self.pipeline}' has a cycle among steps: {cycle}.")
            for i in free:
                ordered.append(self.nodes[i])
                done.add(i)
                del ready[i]
        return ordered

    def assign_keys(self) -> None:
        """Give every node whose inputs are known before running its cache key (upstream keys
        first); nodes that wait on an uncached step's output keep an empty key for now."""
        for node in self.order():
            node.key = self.key_of(node, {}) or ""

    def key_of(self, node: Node, outputs: Mapping[int, str]) -> str | None:
        """The node's cache key: its step's code and version and its arguments, where an
        upstream cached step counts by its key and an uncached one by its output's digest
        (from ``outputs``); None while such a digest is not known yet."""
        where = f"An argument of step '{node.name}'"
        try:
            args = [self._key_part(v, where, outputs) for v in node.args]
            kwargs = {k: self._key_part(v, where.replace("An argument", f"Argument '{k}'"),
                                        outputs)
                      for k, v in sorted(node.kwargs.items())}
        except _PendingInputError:
            return None
        payload = {"step": node.step.name, "code": node.step.code_hash,
                   "version": node.step.version, "args": args, "kwargs": kwargs}
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def _key_part(self, value: Any, where: str, outputs: Mapping[int, str]) -> Any:
        if isinstance(value, Handle):
            upstream = self.nodes[value.node]
            if upstream.step.cache and upstream.key:
                return {"$node": upstream.key}
            if not upstream.step.cache and value.node in outputs:
                return {"$output": outputs[value.node]}
            raise _PendingInputError
        if isinstance(value, list | tuple) and any(isinstance(v, Handle) for v in value):
            return [self._key_part(v, where, outputs) for v in value]
        if isinstance(value, dict) and any(isinstance(v, Handle) for v in value.values()):
            return {str(k): self._key_part(v, where, outputs) for k, v in sorted(value.items())}
        return canonical(value, where)


class _PendingInputError(Exception):
    """An input's identity is known only once an uncached upstream step has run."""


def _handles(value: Any) -> Iterator[Handle]:
    if isinstance(value, Handle):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _handles(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _handles(item)


@contextmanager
def tracing(graph: Graph) -> Iterator[Graph]:
    token = _current.set(graph)
    try:
        yield graph
    finally:
        _current.reset(token)
