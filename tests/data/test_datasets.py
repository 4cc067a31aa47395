"""Dataset versions on SQLite and PostgreSQL: registration, identity, profiles, failures."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select, text

import mlwright
from mlwright.data.checks import attach_contract, count_validations, get_contract
from mlwright.data.datasets import content_hash, parse_ref
from mlwright.data.io import as_arrow_table
from mlwright.errors import ArtifactError, ContractError, DataError, NotFoundError, StoreError
from mlwright.store import Dataset, DatasetVersion
from mlwright.workspace import Workspace, init_workspace


@pytest.fixture
def workspace(tmp_path: Path, database_url: str) -> Workspace:
    ws = init_workspace(tmp_path / "ws", metadata_url=database_url)
    yield ws
    ws.close()


def sample() -> pa.Table:
    return pa.table({"id": [1, 2, 3, 4], "amount": [1.5, None, 3.0, 4.5],
                     "kind": ["a", "b", "a", None]})


def test_register_creates_an_immutable_version_with_profile(workspace: Workspace) -> None:
    info = mlwright.register_dataset("tx", sample(), workspace=workspace, description="payments")
    assert (info.ref, info.num_rows, info.created) == ("tx@1", 4, True)
    assert info.schema == [{"name": "id", "type": "int64", "nullable": True},
                           {"name": "amount", "type": "double", "nullable": True},
                           {"name": "kind", "type": "string", "nullable": True}]
    amount = info.profile["columns"]["amount"]
    assert (amount["null_count"], amount["min"], amount["max"]) == (1, 1.5, 4.5)
    assert amount["mean"] == pytest.approx(3.0)
    assert sum(amount["histogram"]["counts"]) == 3
    assert info.profile["columns"]["kind"]["top_k"] == [{"value": "a", "count": 2},
                                                        {"value": "b", "count": 1}]
    assert mlwright.load_dataset("tx@1", workspace=workspace).equals(sample())


def test_identical_content_returns_the_existing_version(workspace: Workspace,
                                                        tmp_path: Path) -> None:
    first = mlwright.register_dataset("tx", sample(), workspace=workspace)
    path = tmp_path / "tx.parquet"
    pq.write_table(sample(), path, row_group_size=1)  # other chunking, same content
    for same in (sample(), pd.DataFrame(sample().to_pandas()), path,
                 pl.from_arrow(sample())):
        again = mlwright.register_dataset("tx", same, workspace=workspace)
        assert (again.ref, again.created) == ("tx@1", False)
        assert again.content_hash == first.content_hash
    changed = mlwright.register_dataset("tx", sample().slice(1), workspace=workspace)
    assert (changed.ref, changed.created) == ("tx@2", True)
    assert [v.version for v in mlwright.list_versions("tx", workspace=workspace)] == [1, 2]
    assert mlwright.get_dataset_version("tx", workspace=workspace).version == 2
    (summary,) = mlwright.list_datasets(workspace=workspace)
    assert (summary.name, summary.versions, summary.latest, summary.num_rows) == ("tx", 2, 2, 3)


def test_register_from_csv_and_a_folder_of_parquet(workspace: Workspace, tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text("id,name\n1,a\n2,b\n")
    assert mlwright.register_dataset("csv", csv, workspace=workspace).num_rows == 2
    folder = tmp_path / "parts"
    folder.mkdir()
    for part in range(3):
        pq.write_table(pa.table({"x": [part, part]}), folder / f"part-{part}.parquet")
    info = mlwright.register_dataset("parts", folder, workspace=workspace)
    assert (info.num_rows, info.source) == (6, str(folder.resolve()))


def test_registrations_are_audited(workspace: Workspace) -> None:
    mlwright.register_dataset("tx", sample(), workspace=workspace)
    mlwright.register_dataset("tx", sample(), workspace=workspace)  # no change, no event
    events = mlwright.audit_log(workspace=workspace)
    assert [(e["action"], e["object"]) for e in events] == [
        ("dataset.version.registered", "tx@1"), ("dataset.created", "tx"),
        ("workspace.initialized", str(workspace.root))]
    assert events[0]["details"]["num_rows"] == 4
    assert events[0]["actor"] == workspace.actor


@pytest.mark.parametrize(
    ("content", "suffix", "message"),
    [
        (None, ".parquet", "No file or folder at"),
        (b"id,name\n1,a\n2,b,c\n", ".csv", "Cannot read CSV"),
        (b"this is not parquet at all", ".parquet", "Is it really a Parquet file?"),
        (b"whatever", ".xlsx", "Cannot tell the format"),
    ],
)
def test_unreadable_input_leaves_nothing_behind(workspace: Workspace, tmp_path: Path,
                                                content: bytes | None, suffix: str,
                                                message: str) -> None:
    path = tmp_path / f"input{suffix}"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError) as caught:
        mlwright.register_dataset("tx", path, workspace=workspace)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert mlwright.list_datasets(workspace=workspace) == []
    assert list(workspace.artifacts.digests()) == []


def test_a_failed_database_write_leaves_no_row_and_no_artifact(workspace: Workspace) -> None:
    with workspace.db.engine.begin() as conn:
        if workspace.db.engine.dialect.name == "sqlite":
            conn.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON dataset_versions "
                              "BEGIN SELECT RAISE(ABORT, 'disk quota exceeded'); END"))
        else:
            conn.execute(text("CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN "
                              "RAISE EXCEPTION 'disk quota exceeded'; END $$ LANGUAGE plpgsql"))
            conn.execute(text("CREATE TRIGGER refuse BEFORE INSERT ON dataset_versions "
                              "FOR EACH ROW EXECUTE FUNCTION refuse()"))
    with pytest.raises(Exception, match="disk quota exceeded"):
        mlwright.register_dataset("tx", sample(), workspace=workspace)
    with workspace.db.session() as session:
        assert session.execute(select(func.count()).select_from(Dataset)).scalar() == 0
        assert session.execute(select(func.count()).select_from(DatasetVersion)).scalar() == 0
    assert list(workspace.artifacts.digests()) == []


def test_a_tampered_snapshot_is_refused_on_read(workspace: Workspace) -> None:
    info = mlwright.register_dataset("tx", sample(), workspace=workspace)
    path = workspace.artifacts.local_path(info.artifact_digest)
    assert path is not None
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ArtifactError, match="corrupted"):
        mlwright.load_dataset("tx@1", workspace=workspace)


@pytest.mark.parametrize(("ref", "error", "message"), [
    ("nope", NotFoundError, "No dataset named 'nope' (known: tx)"),
    ("tx@7", NotFoundError, "Dataset 'tx' has no version 7"),
    ("tx@x", DataError, "Version 'x' in 'tx@x' is not a version number"),
    ("tx@0", DataError, "is not a version number"),
    ("../etc", StoreError, "is not allowed"),
])
def test_bad_references(workspace: Workspace, ref: str, error: type[Exception],
                        message: str) -> None:
    mlwright.register_dataset("tx", sample(), workspace=workspace)
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        mlwright.get_dataset_version(ref, workspace=workspace)


def test_parse_ref() -> None:
    assert parse_ref("a") == ("a", None)
    assert parse_ref("a@latest") == ("a", None)
    assert parse_ref("a.b-c_d@12") == ("a.b-c_d", 12)


def test_content_hash_ignores_chunking_and_metadata() -> None:
    table = sample()
    rechunked = pa.concat_tables([table.slice(0, 1), table.slice(1)]).combine_chunks()
    assert content_hash(rechunked) == content_hash(table)
    assert content_hash(table.replace_schema_metadata({"a": "b"}).replace_schema_metadata(None)
                        ) == content_hash(table)
    assert content_hash(table.slice(1)) != content_hash(table)
    fresh = pa.table({"id": [2, 3, 4], "amount": [None, 3.0, 4.5], "kind": ["b", "a", None]})
    assert content_hash(table.slice(1)) == content_hash(fresh)
    assert content_hash(as_arrow_table(table.to_pandas())) == content_hash(table)
    encoded = table.set_column(2, "kind", table.column("kind").dictionary_encode())
    assert content_hash(encoded) != content_hash(table)  # the type differs...
    assert content_hash(encoded.cast(table.schema)) == content_hash(table)  # ...not the values


def test_contracts_attach_validate_and_record(workspace: Workspace, tmp_path: Path) -> None:
    mlwright.register_dataset("tx", sample(), workspace=workspace)
    contract = mlwright.Contract.from_dict({"name": "tx", "columns": {
        "id": {"unique": True, "not_null": True}, "amount": {"range": {"min": 2}}}})
    attached = attach_contract("tx", contract, workspace=workspace)
    assert (attached.version, attached.created) == (1, True)
    assert attach_contract("tx", contract, workspace=workspace).created is False
    assert get_contract("tx", workspace=workspace).contract == contract
    report = mlwright.validate_dataset("tx", workspace=workspace)
    assert not report.passed
    assert report.result("range(amount)").failing_rows == 1
    assert count_validations("tx@1", workspace=workspace) == 1
    actions = [e["action"] for e in mlwright.audit_log(workspace=workspace, limit=2)]
    assert actions == ["dataset.validated", "contract.attached"]


def test_a_contract_that_does_not_fit_is_not_attached(workspace: Workspace) -> None:
    mlwright.register_dataset("tx", sample(), workspace=workspace)
    wrong = mlwright.Contract.from_dict({"name": "tx", "columns": {"nope": {"not_null": True}}})
    with pytest.raises(ContractError, match="names column 'nope', which dataset tx@1 does not"):
        attach_contract("tx", wrong, workspace=workspace)
    with pytest.raises(NotFoundError, match="has no contract attached"):
        get_contract("tx", workspace=workspace)


def _register_in_another_process(args: tuple[str, str, int]) -> str:
    root, url, seed = args
    ws = mlwright.open_workspace(root, overrides={"metadata_url": url})
    table = pa.table({"x": list(range(seed, seed + 100))})
    return mlwright.register_dataset("race", table, workspace=ws).ref


def test_concurrent_registrations_get_distinct_versions(workspace: Workspace,
                                                        database_url: str) -> None:
    jobs = [(str(workspace.root), database_url, seed) for seed in range(6)]
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        refs = pool.map(_register_in_another_process, jobs)
    assert sorted(refs) == [f"race@{n}" for n in range(1, 7)]
