"""Registering model versions and loading them back, whatever their framework.

>>> v = register_model("delays", booster, training_data="flights@2", label="delayed",
...                    metrics={"auc": 0.64}, workspace=ws)             # doctest: +SKIP
>>> v.ref, v.flavor                                                     # doctest: +SKIP
('delays@1', 'lightgbm')
>>> load_model("delays@champion", workspace=ws).predict(frame)         # doctest: +SKIP

A version's files are stored in the content-addressed artifact store one by one (hash checked
on every read); the version row records their digests, so a version is immutable and two
versions with the same files share them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from mlwright.errors import NotFoundError, RegistryError
from mlwright.registry.flavors import Predictor, flavor_for, get_flavor
from mlwright.registry.signature import Signature, signature_from_schema
from mlwright.store import (
    Model,
    ModelAlias,
    ModelLineage,
    ModelVersion,
    check_name,
    is_unique_violation,
    record_event,
)
from mlwright.workspace import Workspace, as_workspace

WorkspaceLike = Workspace | str | os.PathLike[str] | None
_REF = re.compile(r"^(?P<name>[^@]+)(?:@(?P<at>[^@]+))?$")


@dataclass
class ModelVersionInfo:
    """One registered version, as the registry records it."""

    name: str
    version: int
    flavor: str
    manifest_digest: str
    files: dict[str, dict[str, Any]]
    signature: Signature | None
    metrics: dict[str, float]
    params: dict[str, Any]
    lineage: dict[str, Any]
    gates: dict[str, Any] | None
    gates_passed: bool | None
    description: str | None
    created_at: datetime
    created_by: str
    aliases: list[str] = field(default_factory=list)
    flavor_meta: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "ref": self.ref,
                "flavor": self.flavor, "manifest_digest": self.manifest_digest,
                "files": self.files, "aliases": self.aliases,
                "signature": self.signature.to_dict() if self.signature else None,
                "metrics": self.metrics, "params": self.params, "lineage": self.lineage,
                "gates": self.gates, "gates_passed": self.gates_passed,
                "description": self.description, "created_at": self.created_at.isoformat(),
                "created_by": self.created_by}


def parse_model_ref(ref: str) -> tuple[str, str | None]:
    """``NAME`` → (name, None: the latest); ``NAME@3``, ``NAME@latest``, ``NAME@champion``."""
    match = _REF.fullmatch(ref.strip()) if isinstance(ref, str) else None
    if match is None:
        raise RegistryError(f"Model reference {ref!r} is not NAME, NAME@N, NAME@latest or "
                            "NAME@ALIAS.")
    return match["name"], match["at"]


def _info(session: Session, model: Model, row: ModelVersion) -> ModelVersionInfo:
    aliases = session.execute(select(ModelAlias.alias).where(ModelAlias.version_id == row.id)
                              .order_by(ModelAlias.alias)).scalars().all()
    return _row_info(model, row, list(aliases))


def _row_info(model: Model, row: ModelVersion, aliases: list[str]) -> ModelVersionInfo:
    return ModelVersionInfo(
        name=model.name, version=row.version, flavor=row.flavor,
        manifest_digest=row.manifest_digest, files=dict(row.files),
        signature=Signature.from_dict(row.signature) if row.signature else None,
        metrics=dict(row.metrics or {}), params=dict(row.params or {}),
        lineage=dict(row.lineage or {}), gates=row.gates, gates_passed=row.gates_passed,
        description=row.description, created_at=row.created_at, created_by=row.created_by,
        aliases=aliases, flavor_meta=dict(row.flavor_meta or {}))


def model_row(session: Session, name: str) -> Model:
    model = session.execute(select(Model).where(Model.name == name)).scalar_one_or_none()
    if model is None:
        known = session.execute(select(Model.name).order_by(Model.name).limit(20)).scalars().all()
        hint = f" (models: {', '.join(known)})" if known else " (no models registered yet)"
        raise NotFoundError(f"No model named '{name}'{hint}.")
    return model


def version_row(session: Session, ref: str) -> tuple[Model, ModelVersion]:
    """The model and version a reference names (a number, ``latest`` or an alias)."""
    name, at = parse_model_ref(ref)
    model = model_row(session, name)
    query = select(ModelVersion).where(ModelVersion.model_id == model.id)
    if at is None or at == "latest":
        row = session.execute(query.order_by(ModelVersion.version.desc()).limit(1)).scalar()
    elif at.isdigit():
        row = session.execute(query.where(ModelVersion.version == int(at))).scalar()
    else:  # one joined lookup, not alias row then version row
        row = session.execute(query.join(ModelAlias, ModelAlias.version_id == ModelVersion.id)
                              .where(ModelAlias.model_id == model.id, ModelAlias.alias == at)
                              ).scalar()
        if row is None:
            raise NotFoundError(f"Model '{name}' has no alias '{at}'; see `mlwright model show "
                                f"{name}`.")
    if row is None:
        raise NotFoundError(f"Model '{name}' has no version {at or 'yet'}; see `mlwright model "
                            f"show {name}`.")
    return model, row


def get_model_version(ref: str, *, workspace: WorkspaceLike = None) -> ModelVersionInfo:
    """A registered version: ``NAME`` (latest), ``NAME@N``, ``NAME@latest`` or ``NAME@ALIAS``."""
    ws = as_workspace(workspace)
    with ws.db.session() as session:
        model, row = version_row(session, ref)
        return _info(session, model, row)


@dataclass(frozen=True)
class ModelVersionSummary:
    """A version as a listing shows it: no files, signature or lineage (``get_model_version``
    has those)."""

    name: str
    version: int
    flavor: str
    aliases: list[str]
    metrics: dict[str, float]
    gates_passed: bool | None
    description: str | None
    created_at: datetime
    created_by: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "ref": self.ref,
                "flavor": self.flavor, "aliases": self.aliases, "metrics": self.metrics,
                "gates_passed": self.gates_passed, "description": self.description,
                "created_at": self.created_at.isoformat(), "created_by": self.created_by}


def list_model_versions(name: str, *,
                        workspace: WorkspaceLike = None) -> list[ModelVersionSummary]:
    """Every version of a model, newest first, as summaries.

    Only the columns a listing shows are read: decoding every version's files, signature,
    lineage and gate report (six JSON documents a row) tripled the time of listing 1,000.
    """
    ws = as_workspace(workspace)
    with ws.db.session() as session:
        model = model_row(session, name)
        aliases: dict[int, list[str]] = {}
        for alias, version_id in session.execute(
                select(ModelAlias.alias, ModelAlias.version_id)
                .where(ModelAlias.model_id == model.id).order_by(ModelAlias.alias)):
            aliases.setdefault(version_id, []).append(alias)
        rows = session.execute(
            select(ModelVersion.id, ModelVersion.version, ModelVersion.flavor,
                   ModelVersion.metrics, ModelVersion.gates_passed, ModelVersion.description,
                   ModelVersion.created_at, ModelVersion.created_by)
            .where(ModelVersion.model_id == model.id).order_by(ModelVersion.version.desc()))
        return [ModelVersionSummary(model.name, version, flavor, aliases.get(row_id, []),
                                    metrics or {}, gates_passed, description, created_at,
                                    created_by)
                for row_id, version, flavor, metrics, gates_passed, description, created_at,
                created_by in rows]


@dataclass(frozen=True)
class ModelSummary:
    name: str
    versions: int
    latest: int
    aliases: dict[str, int]
    description: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "versions": self.versions, "latest": self.latest,
                "aliases": self.aliases, "description": self.description}


def list_models(*, workspace: WorkspaceLike = None) -> list[ModelSummary]:
    """Every model with its number of versions, latest version and aliases."""
    ws = as_workspace(workspace)
    with ws.db.session() as session:
        latest: dict[int, int] = {}
        numbers: dict[int, int] = {}
        for model_id, top, count in session.execute(
                select(ModelVersion.model_id, func.max(ModelVersion.version), func.count())
                .group_by(ModelVersion.model_id)):
            latest[model_id], numbers[model_id] = top, count
        aliases: dict[int, dict[str, int]] = {}
        for model_id, alias, version in session.execute(
                select(ModelAlias.model_id, ModelAlias.alias, ModelVersion.version)
                .join(ModelVersion, ModelVersion.id == ModelAlias.version_id)):
            aliases.setdefault(model_id, {})[alias] = version
        return [ModelSummary(m.name, numbers.get(m.id, 0), latest.get(m.id, 0),
                             aliases.get(m.id, {}), m.description)
                for m in session.execute(select(Model).order_by(Model.name)).scalars()]


# -- registering ---------------------------------------------------------------------------


def _store_folder(ws: Workspace, folder: Path) -> dict[str, dict[str, Any]]:
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        files[relative] = {"digest": ws.artifacts.put_file(path), "size": path.stat().st_size}
    if not files:
        raise RegistryError(f"Saving the model wrote no file into {folder}; the flavor is "
                            "broken.")
    return files


def manifest_digest(files: dict[str, dict[str, Any]]) -> str:
    """sha256 of the sorted file list with each file's digest: the version's content hash."""
    blob = json.dumps({k: v["digest"] for k, v in sorted(files.items())}, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _training_lineage(ws: Workspace, training_data: Any, label: str | None,
                      features: list[str] | None) -> tuple[Signature | None, list[dict[str, Any]]]:
    """The signature and dataset lineage from a dataset reference or a table."""
    if training_data is None:
        return None, []
    from mlwright.data.datasets import DatasetVersionInfo, get_dataset_version
    from mlwright.data.io import as_arrow_table

    version = training_data if isinstance(training_data, DatasetVersionInfo) else (
        get_dataset_version(training_data, workspace=ws) if isinstance(training_data, str)
        else None)
    if version is None:
        schema = as_arrow_table(training_data).schema
        return signature_from_schema(schema, label=label, features=features), []
    import pyarrow as pa

    from mlwright.data.rules import parse_dtype

    schema = pa.schema([pa.field(c["name"], parse_dtype(c["type"]), c.get("nullable", True))
                        for c in version.schema])
    contract = _contract_of(ws, version.name)
    signature = signature_from_schema(schema, label=label, features=features, contract=contract)
    return signature, [{"ref": version.ref, "content_hash": version.content_hash,
                        "num_rows": version.num_rows}]


def _contract_of(ws: Workspace, dataset: str) -> dict[str, Any] | None:
    from mlwright.data.checks import get_contract

    try:
        attached = get_contract(dataset, workspace=ws)
    except NotFoundError:
        return None
    return {"dataset": dataset, "name": attached.contract.name, "version": attached.version}


def _run_lineage(ws: Workspace, run_id: str | None) -> dict[str, Any]:
    """The pipeline/tracking run behind the version: given, or the step this is called in."""
    if run_id is None:
        from mlwright.errors import PipelineError
        from mlwright.pipelines import current_step

        try:
            run_id = current_step().run_id
        except PipelineError:  # not inside a step
            return {}
    from mlwright.tracking import get_run

    run = get_run(run_id, workspace=ws)
    return {"run": run.id, "experiment": run.experiment, "run_kind": run.kind,
            "code_version": run.code_version, "run_params": run.params}


def register_model(
    name: str,
    model: Any,
    *,
    flavor: str | None = None,
    training_data: Any = None,
    datasets: list[Any] | None = None,
    label: str | None = None,
    features: list[str] | None = None,
    signature: Signature | None = None,
    metrics: dict[str, float] | None = None,
    params: dict[str, Any] | None = None,
    run_id: str | None = None,
    parent: str | None = None,
    gates: Any = None,
    description: str | None = None,
    feature_service: str | None = None,
    workspace: WorkspaceLike = None,
) -> ModelVersionInfo:
    """Register ``model`` as the next version of ``name``, with its lineage.

    ``training_data`` is a dataset reference (``"flights@2"``), a ``DatasetVersionInfo`` or a
    table: the signature comes from its schema (minus ``label``; or ``features``).
    ``datasets`` names the dataset versions a derived training table was built from. Called
    inside a pipeline step, the version records that run (its code version and parameters);
    elsewhere pass ``run_id``. ``gates`` is the ``GateReport`` of its validation gates.
    ``feature_service`` names the feature service whose features the model takes: serving
    then looks them up for each request's entity keys. Nothing is recorded if any part fails.
    """
    ws = as_workspace(workspace)
    check_name("model", name)
    chosen = get_flavor(flavor) if flavor is not None else flavor_for(model)
    derived, used = _training_lineage(ws, training_data, label, features)
    for extra in datasets or []:
        _, more = _training_lineage(ws, extra, None, None)
        used += [d for d in more if d not in used]
    signature = signature or derived
    lineage: dict[str, Any] = {"datasets": used, **_run_lineage(ws, run_id)}
    if parent is not None:
        lineage["parent"] = get_model_version(parent, workspace=ws).ref
    if feature_service is not None:
        check_name("feature service", feature_service)
        lineage["feature_service"] = feature_service
    report = gates.to_dict() if hasattr(gates, "to_dict") else gates
    gates_passed = None if report is None else bool(report.get("passed"))
    folder = Path(tempfile.mkdtemp(prefix="mlwright-model-"))
    try:
        meta = chosen.save(model, folder)
        files = _store_folder(ws, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    digest = manifest_digest(files)
    for attempt in range(5):  # two writers may take the same next number: take the next one
        try:
            return _insert_version(ws, name, chosen.name, meta, files, digest, signature,
                                   metrics or {}, params or {}, lineage, report, gates_passed,
                                   description)
        except IntegrityError as exc:
            if not is_unique_violation(exc) or attempt == 4:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _insert_version(ws: Workspace, name: str, flavor: str, meta: dict[str, Any],
                    files: dict[str, dict[str, Any]], digest: str, signature: Signature | None,
                    metrics: dict[str, float], params: dict[str, Any], lineage: dict[str, Any],
                    report: dict[str, Any] | None, gates_passed: bool | None,
                    description: str | None) -> ModelVersionInfo:
    with ws.db.session() as session:
        model = session.execute(select(Model).where(Model.name == name)).scalar_one_or_none()
        if model is None:
            model = Model(name=name, description=description, created_by=ws.actor)
            session.add(model)
            session.flush()
            record_event(session, actor=ws.actor, action="model.created", object_type="model",
                         object_ref=name, details={})
        latest = session.execute(select(func.max(ModelVersion.version))
                                 .where(ModelVersion.model_id == model.id)).scalar() or 0
        row = ModelVersion(model_id=model.id, version=latest + 1, flavor=flavor,
                           flavor_meta=meta, files=files, manifest_digest=digest,
                           signature=signature.to_dict() if signature else None,
                           metrics={k: float(v) for k, v in metrics.items()},
                           params=_jsonable(params), lineage=_jsonable(lineage), gates=report,
                           gates_passed=gates_passed, description=description,
                           created_by=ws.actor)
        session.add(row)
        session.flush()
        for kind, ref in _lineage_rows(lineage):
            session.add(ModelLineage(version_id=row.id, kind=kind, ref=ref))
        record_event(session, actor=ws.actor, action="model.version.registered",
                     object_type="model", object_ref=f"{name}@{row.version}",
                     details={"flavor": flavor, "manifest": digest,
                              "gates_passed": gates_passed,
                              "datasets": [d["ref"] for d in lineage.get("datasets", [])],
                              "run": lineage.get("run")})
        if report is not None and not gates_passed:
            record_event(session, actor=ws.actor, action="model.gate.failed",
                         object_type="model", object_ref=f"{name}@{row.version}",
                         details={"failed": [r.get("gate_id") for r in report.get("results", [])
                                             if r.get("blocking") and not r.get("passed")]})
        return _info(session, model, row)


def _lineage_rows(lineage: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [("dataset", d["ref"]) for d in lineage.get("datasets", [])]
    if lineage.get("run"):
        rows.append(("run", lineage["run"]))
    if lineage.get("parent"):
        rows.append(("model", lineage["parent"]))
    rows += [("feature_view", f) for f in lineage.get("feature_views", [])]
    return rows


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# -- loading -------------------------------------------------------------------------------


def _materialize(ws: Workspace, info: ModelVersionInfo) -> Path:
    """The version's files in a local folder (a cache keyed by the manifest digest)."""
    cache = ws.root / ".mlwright" / "cache" / "models" / info.manifest_digest
    if cache.is_dir():
        return cache
    staging = Path(tempfile.mkdtemp(prefix="staging-", dir=_mkdir(cache.parent)))
    try:
        for relative, entry in info.files.items():
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(ws.artifacts.get_bytes(entry["digest"]))  # hash-verified
        try:
            staging.rename(cache)
        except OSError:  # another process materialized it first: theirs is the same
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return cache


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class LoadedModel:
    """A model version ready to predict: its flavor's predictor behind one interface, with
    the version it came from and its signature (columns are put in signature order)."""

    version: ModelVersionInfo
    predictor: Predictor

    def predict(self, data: Any) -> Any:
        """Predictions for a pandas/polars DataFrame, an Arrow table or a list of dicts."""
        import pandas as pd

        from mlwright.data.io import as_arrow_table

        if isinstance(data, list):
            frame = pd.DataFrame.from_records(data)
        elif isinstance(data, pd.DataFrame):
            frame = data
        else:
            frame = as_arrow_table(data).to_pandas()
        signature = self.version.signature
        if signature is not None:
            missing = [c for c in signature.input_names if c not in frame.columns]
            if missing:
                raise RegistryError(f"Model {self.version.ref} needs column '{missing[0]}' "
                                    f"(inputs: {', '.join(signature.input_names)}).")
            frame = frame[signature.input_names]
        return self.predictor.predict(frame)


def load_model(ref: str, *, workspace: WorkspaceLike = None) -> LoadedModel:
    """Load a version (``NAME``, ``NAME@N``, ``NAME@ALIAS``) whatever its flavor."""
    ws = as_workspace(workspace)
    info = get_model_version(ref, workspace=ws)
    folder = _materialize(ws, info)
    return LoadedModel(info, get_flavor(info.flavor).load(folder, info.flavor_meta))


# -- registering a folder of files made elsewhere (bundle and MLflow imports) ---------------


def register_folder(
    name: str,
    folder: Path,
    *,
    flavor: str,
    flavor_meta: dict[str, Any],
    signature: Signature | None = None,
    metrics: dict[str, float] | None = None,
    params: dict[str, Any] | None = None,
    lineage: dict[str, Any] | None = None,
    gates: dict[str, Any] | None = None,
    description: str | None = None,
    workspace: WorkspaceLike = None,
) -> ModelVersionInfo:
    """Register the files of ``folder`` as the next version of ``name``, as they are.

    For files a flavor has already written (an imported bundle, a converted MLflow model):
    they are stored in the artifact store and recorded with ``flavor_meta`` and ``lineage``
    verbatim; nothing is saved or derived again. The caller checks the files first; nothing
    is recorded if any part fails.
    """
    ws = as_workspace(workspace)
    check_name("model", name)
    chosen = get_flavor(flavor)
    gates_passed = None if gates is None else bool(gates.get("passed"))
    files = _store_folder(ws, folder)
    digest = manifest_digest(files)
    for attempt in range(5):  # two writers may take the same next number: take the next one
        try:
            return _insert_version(ws, name, chosen.name, flavor_meta, files, digest, signature,
                                   metrics or {}, params or {}, {"datasets": [], **(lineage or {})},
                                   gates, gates_passed, description)
        except IntegrityError as exc:
            if not is_unique_violation(exc) or attempt == 4:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
