"""The metadata database, the artifact store and the audit log: what every concept stands on.

>>> from mlwright.store import ArtifactStore, connect, record_event   # doctest: +SKIP
>>> db = connect("sqlite:///.mlwright/metadata.db")                  # doctest: +SKIP
>>> artifacts = ArtifactStore(".mlwright/artifacts")                 # doctest: +SKIP
>>> with db.session() as session:                                    # doctest: +SKIP
...     record_event(session, actor="ana", action="dataset.registered",
...                  object_type="dataset", object_ref="flights")
"""

from mlwright.store.artifacts import ArtifactStore, check_digest
from mlwright.store.audit import list_events, record_event
from mlwright.store.database import Database, connect, is_unique_violation, mask_url
from mlwright.store.feature_tables import FeatureDefinition, FeatureMaterialization, FeatureWatermark
from mlwright.store.names import check_name
from mlwright.store.pipeline_tables import PipelineDef, PipelineRun, StepCache, StepRun
from mlwright.store.registry_tables import (
    Model,
    ModelAlias,
    ModelAliasMove,
    ModelLineage,
    ModelVersion,
)
from mlwright.store.security_tables import ApiToken
from mlwright.store.tables import (
    AuditEvent,
    Base,
    Contract,
    Dataset,
    DatasetVersion,
    Validation,
)
from mlwright.store.tracking_tables import (
    Run,
    RunArtifact,
    RunLatestMetric,
    RunMetric,
    RunParam,
    RunTag,
)
from mlwright.store.webhook_tables import Webhook, WebhookDelivery

__all__ = [
    "ApiToken",
    "ArtifactStore",
    "AuditEvent",
    "Base",
    "Contract",
    "Database",
    "Dataset",
    "DatasetVersion",
    "FeatureDefinition",
    "FeatureMaterialization",
    "FeatureWatermark",
    "Model",
    "ModelAlias",
    "ModelAliasMove",
    "ModelLineage",
    "ModelVersion",
    "PipelineDef",
    "PipelineRun",
    "Run",
    "RunArtifact",
    "RunLatestMetric",
    "RunMetric",
    "RunParam",
    "RunTag",
    "StepCache",
    "StepRun",
    "Validation",
    "Webhook",
    "WebhookDelivery",
    "check_digest",
    "check_name",
    "connect",
    "is_unique_violation",
    "list_events",
    "mask_url",
    "record_event",
]
