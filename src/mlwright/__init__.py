"""mlwright: the production ML platform — data contracts, datasets, pipelines, run tracking,
and (soon) the rest.

The public API, imported lazily so that ``import mlwright`` reads no file, opens no
connection and stays fast::

    import mlwright

    ws = mlwright.init_workspace("demo")
    version = mlwright.register_dataset("flights", "flights.parquet", workspace=ws)
    report = mlwright.validate_dataset(version.ref, mlwright.load_contract("contract.yaml"),
                                       workspace=ws)
    print(report.passed)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    # workspace and settings
    "Workspace": "mlwright.workspace",
    "init_workspace": "mlwright.workspace",
    "open_workspace": "mlwright.workspace",
    "Settings": "mlwright.config",
    # datasets
    "register_dataset": "mlwright.data.datasets",
    "get_dataset_version": "mlwright.data.datasets",
    "list_datasets": "mlwright.data.datasets",
    "list_versions": "mlwright.data.datasets",
    "load_dataset": "mlwright.data.datasets",
    "DatasetVersionInfo": "mlwright.data.datasets",
    "diff_versions": "mlwright.data.diff",
    "profile_table": "mlwright.data.profile",
    # contracts
    "Contract": "mlwright.data.contracts",
    "load_contract": "mlwright.data.contracts",
    "validate_table": "mlwright.data.validation",
    "validate_dataset": "mlwright.data.checks",
    "attach_contract": "mlwright.data.checks",
    "get_contract": "mlwright.data.checks",
    "ValidationReport": "mlwright.data.report",
    "ColumnType": "mlwright.data.rules",
    "NotNull": "mlwright.data.rules",
    "Unique": "mlwright.data.rules",
    "Range": "mlwright.data.rules",
    "Allowed": "mlwright.data.rules",
    "Regex": "mlwright.data.rules",
    "Monotonic": "mlwright.data.rules",
    "Freshness": "mlwright.data.rules",
    "Mean": "mlwright.data.rules",
    "Quantile": "mlwright.data.rules",
    "NullRate": "mlwright.data.rules",
    "RowCount": "mlwright.data.rules",
    # pipelines
    "step": "mlwright.pipelines",
    "pipeline": "mlwright.pipelines",
    "log_metric": "mlwright.pipelines",
    "current_step": "mlwright.pipelines",
    "DailyPartitions": "mlwright.pipelines",
    "StaticPartitions": "mlwright.pipelines",
    "load_pipeline": "mlwright.pipelines",
    "resume": "mlwright.pipelines",
    # tracking
    "start_run": "mlwright.tracking",
    "get_run": "mlwright.tracking",
    "list_runs": "mlwright.tracking",
    "compare_runs": "mlwright.tracking",
    "metric_history": "mlwright.tracking",
    # audit
    "audit_log": "mlwright.audit",
    # errors
    "MlwrightError": "mlwright.errors",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from mlwright.audit import audit_log
    from mlwright.config import Settings
    from mlwright.data.checks import attach_contract, get_contract, validate_dataset
    from mlwright.data.contracts import Contract, load_contract
    from mlwright.data.datasets import (
        DatasetVersionInfo,
        get_dataset_version,
        list_datasets,
        list_versions,
        load_dataset,
        register_dataset,
    )
    from mlwright.data.diff import diff_versions
    from mlwright.data.profile import profile_table
    from mlwright.data.report import ValidationReport
    from mlwright.data.rules import (
        Allowed,
        ColumnType,
        Freshness,
        Mean,
        Monotonic,
        NotNull,
        NullRate,
        Quantile,
        Range,
        Regex,
        RowCount,
        Unique,
    )
    from mlwright.data.validation import validate_table
    from mlwright.errors import MlwrightError
    from mlwright.pipelines import (
        DailyPartitions,
        StaticPartitions,
        current_step,
        load_pipeline,
        log_metric,
        pipeline,
        resume,
        step,
    )
    from mlwright.tracking import compare_runs, get_run, list_runs, metric_history, start_run
    from mlwright.workspace import Workspace, init_workspace, open_workspace


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mlwright' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
