"""The errors mlwright raises.

One root, a subclass per package; the CLI and the HTTP layer map them to exit codes and
status codes at the edge. Every message names the object, what was expected, what was got
and what to do::

    MlwrightError
    ├── ConfigError        invalid settings, missing or unreadable workspace
    │   └── WorkspaceNotFoundError
    ├── StoreError         the metadata database (unreachable, migration, conflict)
    │   └── NotFoundError  an object that does not exist (dataset, version, ...)
    ├── ArtifactError      the artifact store (bad key, hash mismatch, missing object)
    ├── DataError          reading or registering a dataset (missing file, bad format)
    ├── ContractError      a data contract that is itself wrong (unknown column, bad type)
    ├── PipelineError      a pipeline that is wrong (cycle, bad parameter) or a step that failed
    ├── TrackingError      a run that refuses what was logged (changed parameter, bad metric)
    ├── RegistryError      a model version, flavor, alias or bundle that is wrong
    │   └── WebhookError   a webhook that is wrong (bad URL, unknown event)
    ├── GateError          a gate that is wrong (unknown metric), or a version that failed one
    ├── FeatureError       a feature definition, reference, entity table or source that is wrong
    │   └── OnlineStoreError  the online store (unreachable Redis, unwritable SQLite file)
    ├── SecurityError      a token that is wrong (unknown name, bad expiry)
    │   └── AuthenticationError  a request's token is missing, unknown, revoked or expired
    └── ServingError       a serving request or job that is wrong
        ├── RequestValidationError  a request's fields do not match the signature (422)
        └── LimitExceededError      a request over a limit: body size, rows, rate (413/429)
"""

from __future__ import annotations


class MlwrightError(Exception):
    """The root of every error mlwright raises on purpose.

    ``str(error)`` is a one-line message meant for a person.
    """


class ConfigError(MlwrightError):
    """The configuration or the workspace is wrong."""


class WorkspaceNotFoundError(ConfigError):
    """No workspace where one was looked for."""


class StoreError(MlwrightError):
    """The metadata database failed or refused an operation."""


class NotFoundError(StoreError):
    """An object named by the user does not exist."""


class ArtifactError(MlwrightError):
    """The artifact store refused a key or found corrupted content."""


class DataError(MlwrightError):
    """A dataset could not be read or registered."""


class ContractError(MlwrightError):
    """A data contract is invalid, or does not fit the table it is applied to."""


class PipelineError(MlwrightError):
    """A pipeline or step is wrong, or a step failed."""


class TrackingError(MlwrightError):
    """A tracked run refused a parameter, metric, tag or artifact."""


class RegistryError(MlwrightError):
    """A model, version, flavor, alias, signature or bundle is wrong or missing."""


class GateError(MlwrightError):
    """A validation gate is declared wrongly, or a model version failed a blocking gate."""


class FeatureError(MlwrightError):
    """A feature definition, reference, entity table or source is wrong."""


class OnlineStoreError(FeatureError):
    """The online store cannot be reached or refused an operation."""


class SecurityError(MlwrightError):
    """A token or identity operation is wrong (unknown token, bad scope or expiry)."""


class AuthenticationError(SecurityError):
    """A presented token is not valid. The message reveals nothing about why."""


class ServingError(MlwrightError):
    """A serving request, batch job or stream that is wrong. ``status`` is its HTTP code."""

    status = 400


class RequestValidationError(ServingError):
    """A request whose fields do not match the model's signature; ``errors`` names each one
    as ``{"field": ..., "problem": ...}``."""

    status = 422

    def __init__(self, message: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class LimitExceededError(ServingError):
    """A request over a configured limit (body size 413, rows 413, rate 429)."""

    def __init__(self, message: str, status: int = 413) -> None:
        super().__init__(message)
        self.status = status
