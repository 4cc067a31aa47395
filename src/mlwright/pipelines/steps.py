"""Steps: plain functions, decorated, whose results are cached by content.

Called inside a pipeline, a step does not run: it adds a node to the pipeline's graph and
returns a handle that other steps take as input. Called anywhere else, it is just the
function.

>>> @step(retries=2)
... def double(x: int) -> int:
...     return 2 * x
>>> double(3)
6
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, TypeVar, overload

from mlwright.errors import PipelineError

P = ParamSpec("P")
R = TypeVar("R")


def code_hash(fn: Callable[..., Any]) -> str:
    """sha256 of a function's code without its decorators, comments or formatting (so that
    ``retries=`` or a reworded comment keeps the cache), or of its bytecode without source.

    Only the function itself counts: a helper it calls is not followed; bump the step's
    ``version=`` when such a helper changes.
    """
    try:
        source = textwrap.dedent(inspect.getsource(fn))
        payload = source.encode()
        tree = ast.parse(source)
        definition = tree.body[0] if tree.body else None
        if isinstance(definition, ast.FunctionDef | ast.AsyncFunctionDef):
            definition.decorator_list = []
            body = definition.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                definition.body = body[1:] or [ast.Pass()]  # the docstring is not behaviour
            payload = ast.unparse(definition).encode()
    except SyntaxError:  # source that does not parse alone (a lambda mid-expression): as is
        pass
    except (OSError, TypeError):  # defined in a REPL or built dynamically
        code = getattr(fn, "__code__", None)
        payload = code.co_code + repr(code.co_consts).encode() if code else repr(fn).encode()
    return hashlib.sha256(payload).hexdigest()


@dataclass(eq=False)
class Step(Generic[P, R]):
    """A function plus how to run it: retries with exponential backoff, caching, a version."""

    fn: Callable[P, R]
    name: str
    retries: int = 0
    backoff_s: float = 1.0
    cache: bool = True
    version: str | None = None
    _code_hash: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff_s < 0:
            raise PipelineError(f"Step '{self.name}': retries and backoff must be >= 0, got "
                                f"retries={self.retries}, backoff={self.backoff_s}.")
        self.__doc__ = self.fn.__doc__
        self.__wrapped__ = self.fn

    @property
    def code_hash(self) -> str:
        if self._code_hash is None:
            self._code_hash = code_hash(self.fn)
        return self._code_hash

    @property
    def ref(self) -> str:
        """``module:qualname``: how a worker process finds the function again."""
        return f"{self.fn.__module__}:{self.fn.__qualname__}"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        from mlwright.pipelines.graph import current_graph

        graph = current_graph()
        if graph is None:
            return self.fn(*args, **kwargs)
        return graph.add(self, args, kwargs)  # type: ignore[return-value]


@overload
def step(fn: Callable[P, R], /) -> Step[P, R]: ...
@overload
def step(*, name: str | None = None, retries: int = 0, backoff: float = 1.0, cache: bool = True,
         version: str | None = None) -> Callable[[Callable[P, R]], Step[P, R]]: ...


def step(fn: Callable[P, R] | None = None, /, *, name: str | None = None, retries: int = 0,
         backoff: float = 1.0, cache: bool = True, version: str | None = None) -> Any:
    """Make a function a pipeline step.

    ``retries`` re-runs a failing step with backoff ``backoff * 2**attempt`` seconds;
    ``cache=False`` runs it every time; ``version`` is mixed into the cache key (bump it to
    re-run a step whose code did not change but whose outside world did).
    """
    def wrap(function: Callable[P, R]) -> Step[P, R]:
        return Step(fn=function, name=name or function.__name__, retries=retries,
                    backoff_s=backoff, cache=cache, version=version)

    return wrap(fn) if fn is not None else wrap
