"""Finding a pipeline from the command line: ``module:function``, ``file.py:function``, or
the name of one that has run before (its reference is recorded)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from mlwright.errors import NotFoundError, PipelineError
from mlwright.pipelines.definition import Pipeline


def _import_file(path: Path) -> Any:
    resolved = str(path.resolve())
    module_name = f"mlwright_user_{path.stem}_{hashlib.sha256(resolved.encode()).hexdigest()[:10]}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PipelineError(f"Cannot load pipeline file {path}.")
    module = importlib.util.module_from_spec(spec)
    module.__mlwright_file__ = resolved  # type: ignore[attr-defined]  # Pipeline.ref names it
    sys.modules[module_name] = module  # workers find step functions by module name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise PipelineError(f"Importing {path} failed: {type(exc).__name__}: {exc}") from None
    try:  # Ray workers cannot import a module made from a file path: send its code by value
        import cloudpickle

        cloudpickle.register_pickle_by_value(module)
    except ImportError:  # no Ray, no cloudpickle: local workers are forked and have it already
        pass
    return module


def load_pipeline(ref: str, workspace: Any = None) -> Pipeline:
    """The Pipeline a reference names."""
    if ":" not in ref:
        from mlwright.pipelines.records import get_definition
        from mlwright.workspace import as_workspace

        try:
            ref = get_definition(as_workspace(workspace), ref).ref
        except NotFoundError:
            raise NotFoundError(f"No pipeline named '{ref}'; pass module:function or "
                                "file.py:function (it is registered on its first run).") from None
    target, _, attribute = ref.rpartition(":")
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise PipelineError(f"Pipeline file {path} does not exist.")
        module = _import_file(path)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise PipelineError(f"Cannot import module '{target}' for pipeline '{ref}': {exc}.") from None
    found: Any = module
    for part in attribute.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise PipelineError(f"'{target}' has no '{attribute}'.")
    if not isinstance(found, Pipeline):
        raise PipelineError(f"'{ref}' is a {type(found).__name__}, not a pipeline; decorate it "
                            "with @pipeline.")
    return found
