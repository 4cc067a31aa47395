"""Contracts attached to datasets, and validations of dataset versions (recorded).

>>> report = validate_dataset("flights@1", load_contract("contract.yaml"))  # doctest: +SKIP
>>> report.passed                                                             # doctest: +SKIP
True
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from mlwright.data.contracts import Contract
from mlwright.data.datasets import WorkspaceArg, get_dataset_version, load_dataset, parse_ref
from mlwright.data.report import ValidationReport
from mlwright.data.validation import validate_table
from mlwright.errors import NotFoundError
from mlwright.store import Contract as ContractRow
from mlwright.store import Dataset, DatasetVersion, Validation, record_event
from mlwright.workspace import as_workspace


@dataclass(frozen=True)
class AttachedContract:
    dataset: str
    version: int
    contract: Contract
    created_at: datetime
    created_by: str
    created: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "version": self.version,
                "spec_hash": self.contract.spec_hash, "spec": self.contract.to_dict(),
                "created_at": self.created_at.isoformat(), "created_by": self.created_by,
                "created": self.created}


def _dataset_id(session: Any, name: str) -> int:
    found = session.execute(select(Dataset.id).where(Dataset.name == name)).scalar_one_or_none()
    if found is None:
        raise NotFoundError(f"No dataset named '{name}'; register it first with "
                            f"`mlwright data register {name} PATH`.")
    return int(found)


def attach_contract(dataset: str, contract: Contract, *,
                    workspace: WorkspaceArg = None) -> AttachedContract:
    """Attach a contract to a dataset (a new contract version unless it is unchanged).

    The contract is first checked against the dataset's latest version, so a contract that
    names a column the data does not have is refused before it is stored.
    """
    ws = as_workspace(workspace)
    name, _ = parse_ref(dataset)
    latest = get_dataset_version(name, workspace=ws)
    from mlwright.data.validation import check_contract_fits

    check_contract_fits(contract, latest)
    with ws.db.session() as session:
        dataset_id = _dataset_id(session, name)
        current = session.execute(
            select(ContractRow).where(ContractRow.dataset_id == dataset_id)
            .order_by(ContractRow.version.desc()).limit(1)).scalar_one_or_none()
        if current is not None and current.spec_hash == contract.spec_hash:
            return AttachedContract(name, current.version, contract, current.created_at,
                                    current.created_by)
        row = ContractRow(dataset_id=dataset_id, version=(current.version + 1) if current else 1,
                          name=contract.name, spec=contract.to_dict(),
                          spec_hash=contract.spec_hash, created_by=ws.actor)
        session.add(row)
        session.flush()
        record_event(session, actor=ws.actor, action="contract.attached", object_type="dataset",
                     object_ref=name, details={"contract": contract.name, "version": row.version,
                                               "spec_hash": contract.spec_hash,
                                               "rules": len(contract.rules)})
        return AttachedContract(name, row.version, contract, row.created_at, row.created_by,
                                created=True)


def get_contract(dataset: str, *, workspace: WorkspaceArg = None) -> AttachedContract:
    """The contract currently attached to a dataset."""
    ws = as_workspace(workspace)
    name, _ = parse_ref(dataset)
    with ws.db.session() as session:
        row = session.execute(
            select(ContractRow).where(ContractRow.dataset_id == _dataset_id(session, name))
            .order_by(ContractRow.version.desc()).limit(1)).scalar_one_or_none()
        if row is None:
            raise NotFoundError(f"Dataset '{name}' has no contract attached; pass --contract FILE "
                                f"or run `mlwright data attach-contract {name} FILE`.")
        return AttachedContract(name, row.version, Contract.from_dict(row.spec), row.created_at,
                                row.created_by)


def validate_dataset(ref: str, contract: Contract | None = None, *,
                     workspace: WorkspaceArg = None, record: bool = True) -> ValidationReport:
    """Validate a dataset version against a contract (or its attached one) and record it."""
    ws = as_workspace(workspace)
    info = get_dataset_version(ref, workspace=ws)
    attached = None
    if contract is None:
        attached = get_contract(info.name, workspace=ws)
        contract = attached.contract
    table = load_dataset(info, workspace=ws)
    report = validate_table(table, contract, target=f"dataset {info.ref}",
                            sample_failures=ws.settings.sample_failures)
    if record:
        with ws.db.session() as session:
            version_id = session.execute(
                select(DatasetVersion.id).join(Dataset)
                .where(Dataset.name == info.name, DatasetVersion.version == info.version)
            ).scalar_one()
            contract_id = None
            if attached is not None:
                contract_id = session.execute(
                    select(ContractRow.id).where(ContractRow.dataset_id == _dataset_id(
                        session, info.name), ContractRow.version == attached.version)
                ).scalar_one()
            session.add(Validation(dataset_version_id=version_id, contract_id=contract_id,
                                   passed=report.passed, report_json=report.to_dict(),
                                   created_by=ws.actor))
            record_event(session, actor=ws.actor, action="dataset.validated",
                         object_type="dataset", object_ref=info.ref,
                         details={"contract": contract.name, "passed": report.passed,
                                  "errors": len(report.errors), "warnings": len(report.warnings)})
    return report


def count_validations(ref: str, *, workspace: WorkspaceArg = None) -> int:
    """How many validations were recorded for a dataset version."""
    ws = as_workspace(workspace)
    info = get_dataset_version(ref, workspace=ws)
    with ws.db.session() as session:
        return int(session.execute(
            select(func.count()).select_from(Validation).join(DatasetVersion).join(Dataset)
            .where(Dataset.name == info.name, DatasetVersion.version == info.version)
        ).scalar_one())
