"""The model registry: versions of any flavor, their signature and lineage, aliases.

>>> from mlwright.registry import register_model, load_model, set_alias, lineage
>>> v = register_model("delays", booster, training_data="flights@2", label="delayed")  # doctest: +SKIP
>>> set_alias("delays", "champion", v.version)                                        # doctest: +SKIP
>>> load_model("delays@champion").predict(frame)                                      # doctest: +SKIP
"""

from mlwright.registry.aliases import AliasMove, alias_history, remove_alias, set_alias
from mlwright.registry.bundles import export_version, import_bundle
from mlwright.registry.cards import ModelCard, model_card
from mlwright.registry.gating import evaluate_candidate
from mlwright.registry.lineage import LineageGraph, lineage, used_by
from mlwright.registry.mlflow_import import import_mlflow_model
from mlwright.registry.optimize import OptimizationResult, Parity, optimize_model
from mlwright.registry.signature import Column, Signature, signature_from_schema, signature_from_table
from mlwright.registry.versions import (
    LoadedModel,
    ModelSummary,
    ModelVersionInfo,
    ModelVersionSummary,
    get_model_version,
    list_model_versions,
    list_models,
    load_model,
    parse_model_ref,
    register_model,
)
from mlwright.registry.webhooks import (
    WebhookError,
    add_webhook,
    deliver_pending,
    list_deliveries,
    list_webhooks,
    remove_webhook,
    verify_signature,
)

__all__ = [
    "AliasMove",
    "Column",
    "LineageGraph",
    "LoadedModel",
    "ModelCard",
    "ModelSummary",
    "ModelVersionInfo",
    "ModelVersionSummary",
    "OptimizationResult",
    "Parity",
    "Signature",
    "WebhookError",
    "add_webhook",
    "alias_history",
    "deliver_pending",
    "evaluate_candidate",
    "export_version",
    "get_model_version",
    "import_bundle",
    "import_mlflow_model",
    "lineage",
    "list_deliveries",
    "list_model_versions",
    "list_models",
    "list_webhooks",
    "load_model",
    "model_card",
    "optimize_model",
    "parse_model_ref",
    "register_model",
    "remove_alias",
    "remove_webhook",
    "set_alias",
    "signature_from_schema",
    "signature_from_table",
    "used_by",
    "verify_signature",
]
