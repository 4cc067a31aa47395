"""Registering, loading, aliasing and tracing model versions, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import multiprocessing
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import func, select

from mlwright import attach_contract, load_contract, register_dataset
from mlwright.errors import ArtifactError, GateError, NotFoundError, RegistryError, StoreError
from mlwright.registry import (
    alias_history,
    get_model_version,
    lineage,
    list_model_versions,
    list_models,
    load_model,
    register_model,
    remove_alias,
    set_alias,
    used_by,
)
from mlwright.store import Model, ModelVersion
from mlwright.workspace import Workspace, open_workspace

CONTRACT = """\
name: loans
columns:
  income: {type: float64, range: {min: 0}}
  debt: {type: float64}
  grade: {allowed: [A, B, C]}
  approved: {not_null: true}
"""


def loans(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.gamma(4.0, 15_000.0, n)
    debt = rng.uniform(0, 40_000, n)
    grade = rng.choice(["A", "B", "C"], n)
    approved = (income / 1000 - debt / 2000 + (grade == "A") * 10 + rng.normal(0, 5, n)) > 40
    return pd.DataFrame({"income": income, "debt": debt, "grade": grade, "approved": approved})


def train(frame: pd.DataFrame, leaves: int = 7) -> lgb.Booster:
    x = frame[["income", "debt"]]
    return lgb.train({"objective": "binary", "num_leaves": leaves, "verbose": -1, "seed": 1},
                     lgb.Dataset(x, frame["approved"].astype(int)), num_boost_round=20)


@pytest.fixture
def dataset(workspace: Workspace, tmp_path: Path) -> str:
    contract = tmp_path / "loans.yaml"
    contract.write_text(CONTRACT)
    version = register_dataset("loans", loans(), workspace=workspace)
    attach_contract("loans", load_contract(contract), workspace=workspace)
    return version.ref


def test_register_load_and_predict_the_same(workspace: Workspace, dataset: str) -> None:
    frame = loans()
    booster = train(frame)
    v = register_model("approvals", booster, training_data=dataset, label="approved",
                       features=["income", "debt"], metrics={"auc": 0.9},
                       params={"num_leaves": 7}, description="loan approvals",
                       workspace=workspace)
    assert (v.ref, v.flavor) == ("approvals@1", "lightgbm")
    assert v.signature is not None
    assert [c.name for c in v.signature.inputs] == ["income", "debt"]
    assert v.signature.output is not None and v.signature.output.name == "approved"
    assert v.signature.contract == {"dataset": "loans", "name": "loans", "version": 1}
    assert v.lineage["datasets"][0]["ref"] == dataset
    loaded = load_model("approvals@1", workspace=workspace)
    expected = booster.predict(frame[["income", "debt"]])
    np.testing.assert_allclose(loaded.predict(frame), expected)  # extra columns are dropped
    np.testing.assert_allclose(loaded.predict(pa.Table.from_pandas(frame)), expected)
    np.testing.assert_allclose(loaded.predict(frame.to_dict("records")), expected)
    with pytest.raises(RegistryError, match=r"Model approvals@1 needs column 'debt'"):
        loaded.predict(frame[["income"]])


def test_versions_count_up_and_refs_resolve(workspace: Workspace, dataset: str) -> None:
    frame = loans()
    for leaves in (3, 5, 7):
        register_model("approvals", train(frame, leaves), training_data=dataset,
                       label="approved", features=["income", "debt"], workspace=workspace)
    assert [v.version for v in list_model_versions("approvals", workspace=workspace)] == [3, 2, 1]
    assert get_model_version("approvals", workspace=workspace).version == 3
    assert get_model_version("approvals@latest", workspace=workspace).version == 3
    assert get_model_version("approvals@2", workspace=workspace).version == 2
    set_alias("approvals", "champion", 2, workspace=workspace)
    assert get_model_version("approvals@champion", workspace=workspace).version == 2
    (summary,) = list_models(workspace=workspace)
    assert (summary.versions, summary.latest, summary.aliases) == (3, 3, {"champion": 2})
    with pytest.raises(NotFoundError, match=r"Model 'approvals' has no version 9"):
        get_model_version("approvals@9", workspace=workspace)
    with pytest.raises(NotFoundError, match=r"has no alias 'staging'"):
        get_model_version("approvals@staging", workspace=workspace)
    with pytest.raises(NotFoundError, match=r"No model named 'nope' \(models: approvals\)"):
        get_model_version("nope", workspace=workspace)


def test_same_files_share_the_manifest(workspace: Workspace, dataset: str) -> None:
    booster = train(loans())
    first = register_model("a", booster, workspace=workspace)
    second = register_model("a", booster, workspace=workspace)
    assert first.manifest_digest == second.manifest_digest
    assert (first.version, second.version) == (1, 2)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"flavor": "keras"}, "keras"),
    ({"training_data": "loans@1", "label": "missing"}, "Label column 'missing'"),
    ({"training_data": "loans@1", "label": "approved", "features": ["income", "nope"]},
     "Feature column 'nope'"),
    ({"training_data": "loans@7", "label": "approved"}, "loans"),
    ({"parent": "ghost@1"}, "No model named 'ghost'"),
])
def test_a_bad_registration_records_nothing(workspace: Workspace, dataset: str,
                                            kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises((RegistryError, NotFoundError), match=message):
        register_model("approvals", train(loans()), workspace=workspace, **kwargs)
    with workspace.db.session() as session:
        assert session.execute(select(func.count()).select_from(Model)).scalar() == 0
        assert session.execute(select(func.count()).select_from(ModelVersion)).scalar() == 0


def test_bad_model_names_and_objects(workspace: Workspace) -> None:
    with pytest.raises(StoreError, match=r"Model name '\.\./x' is not allowed"):
        register_model("../x", train(loans()), workspace=workspace)
    with pytest.raises(RegistryError):
        register_model("plain", object(), workspace=workspace)


def test_aliases_move_with_history_and_gates_guard_them(workspace: Workspace) -> None:
    booster = train(loans())
    register_model("m", booster, workspace=workspace)
    failed_report = {"passed": False, "results": [
        {"gate_id": "metric_threshold(auc>=0.8)", "blocking": True, "passed": False,
         "message": "auc 0.61 is 0.19 below 0.8"}]}
    register_model("m", booster, gates=failed_report, workspace=workspace)
    register_model("m", booster, gates={"passed": True, "results": []}, workspace=workspace)
    first = set_alias("m", "champion", 1, workspace=workspace)
    assert (first.from_version, first.to_version) == (None, 1)
    with pytest.raises(GateError, match=r"Model m@2 failed its gates and cannot become "
                                        r"'champion': auc 0.61 is 0.19 below 0.8"):
        set_alias("m", "champion", 2, workspace=workspace)
    with pytest.raises(GateError, match="'challenger'"):
        set_alias("m", "challenger", 2, workspace=workspace)
    assert get_model_version("m@champion", workspace=workspace).version == 1  # unchanged
    set_alias("m", "shadow", 2, workspace=workspace)  # not a guarded alias
    moved = set_alias("m", "champion", "latest", workspace=workspace)
    assert (moved.from_version, moved.to_version) == (1, 3)
    removed = remove_alias("m", "shadow", workspace=workspace)
    assert (removed.from_version, removed.to_version) == (2, None)
    history = [(h.alias, h.from_version, h.to_version)
               for h in alias_history("m", workspace=workspace)]
    assert history == [("champion", None, 1), ("shadow", None, 2), ("champion", 1, 3),
                       ("shadow", 2, None)]
    assert get_model_version("m@3", workspace=workspace).aliases == ["champion"]
    with pytest.raises(RegistryError, match="'latest' cannot be an alias"):
        set_alias("m", "latest", 1, workspace=workspace)
    with pytest.raises(NotFoundError, match="has no alias 'shadow'"):
        remove_alias("m", "shadow", workspace=workspace)
    with pytest.raises(NotFoundError, match="has no version 8"):
        set_alias("m", "champion", 8, workspace=workspace)


def _move_many(root: str, overrides: dict[str, Any], worker: int, moves: int) -> None:
    ws = open_workspace(root, overrides=overrides)
    for i in range(moves):
        set_alias("m", "champion", 1 + (worker + i) % 3, workspace=ws)
    ws.close()


def test_concurrent_alias_moves_lose_no_update(workspace: Workspace) -> None:
    booster = train(loans())
    for _ in range(3):
        register_model("m", booster, workspace=workspace)
    overrides = workspace.settings.model_dump()
    context = multiprocessing.get_context("spawn")  # real, separate processes
    workers = [context.Process(target=_move_many, args=(str(workspace.root), overrides, w, 15))
               for w in range(3)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(120)
        assert process.exitcode == 0
    history = alias_history("m", "champion", workspace=workspace)
    assert len(history) == 45
    # every move starts where the one before it ended: none read a stale value
    assert history[0].from_version is None
    for before, after in itertools.pairwise(history):
        assert after.from_version == before.to_version
    assert get_model_version("m@champion", workspace=workspace).version == history[-1].to_version


def test_lineage_of_a_version_made_in_a_pipeline(workspace: Workspace, dataset: str) -> None:
    from . import flows

    result = flows.train_and_register.run(workspace=workspace, dataset=dataset, leaves=5,
                                          executor="inline")
    ref = result.output()["ref"]
    info = get_model_version(ref, workspace=workspace)
    assert info.lineage["run"] == result.run_id
    assert info.lineage["run_params"] == {"dataset": dataset, "leaves": 5}
    assert info.lineage["code_version"]["git"] in (True, False)
    child = register_model("approvals", train(loans()), parent=ref, workspace=workspace)
    graph = lineage(child.ref, workspace=workspace)
    ids = [n["id"] for n in graph.nodes]
    assert ids[0] == f"model:{child.ref}"
    assert f"model:{ref}" in ids and f"run:{result.run_id}" in ids and f"dataset:{dataset}" in ids
    assert (f"model:{child.ref}", f"model:{ref}") in graph.edges
    assert used_by("dataset", dataset, workspace=workspace) == [ref]
    assert used_by("run", result.run_id, workspace=workspace) == [ref]
    assert used_by("model", ref, workspace=workspace) == [child.ref]


def test_a_corrupted_artifact_is_refused_on_load(workspace: Workspace) -> None:
    v = register_model("m", train(loans()), workspace=workspace)
    (entry,) = v.files.values()
    path = workspace.artifacts.local_path(entry["digest"])
    assert path is not None
    path.chmod(0o644)
    path.write_bytes(path.read_bytes().replace(b"tree", b"TREE", 1))
    with pytest.raises(ArtifactError, match=entry["digest"][:12]):
        load_model("m@1", workspace=workspace)


def test_a_model_card_says_the_same_in_markdown_and_html(workspace: Workspace,
                                                         dataset: str) -> None:
    from mlwright.registry.cards import model_card

    report = {"passed": True, "results": [
        {"gate_id": "metric_threshold(auc>=0.7)", "kind": "metric_threshold", "blocking": True,
         "passed": True, "message": "auc 0.91 >= 0.7"},
        {"gate_id": "slice(auc by grade)", "kind": "slice", "blocking": True, "passed": True,
         "message": "every slice >= 0.6",
         "details": {"slices": [{"slice": "A", "rows": 120, "value": 0.93},
                                {"slice": "B", "rows": 140, "value": 0.88}]}}]}
    v = register_model("approvals", train(loans()), training_data=dataset, label="approved",
                       features=["income", "debt"], metrics={"auc": 0.91}, gates=report,
                       description="loan <approvals>", workspace=workspace)
    set_alias("approvals", "champion", v.version, workspace=workspace)
    card = model_card(v.ref, intended_use="ranking applications for review",
                      workspace=workspace)
    assert card.summary == "approvals@1 (lightgbm) · gates passed · auc=0.91"
    for needle in ("## Signature", "| input | income | double | yes |", "## Gates",
                   "metric_threshold(auc>=0.7)", "## Slices: slice(auc by grade)", "| A | 120 |",
                   f"| {dataset} | 400 |", "- **aliases**: champion",
                   "- **intended use**: ranking applications for review"):
        assert needle in card.markdown
    assert "<h2>Gates</h2>" in card.html and "loan &lt;approvals&gt;" in card.html
    assert "<approvals>" not in card.html


def test_gates_judge_a_candidate_against_the_champion(workspace: Workspace, dataset: str) -> None:
    from mlwright.evaluation import MetricThreshold, NoRegression
    from mlwright.registry import evaluate_candidate

    frame = loans(1500, seed=4)
    features = ["income", "debt"]
    gates = [MetricThreshold("auc", min=0.6), NoRegression("auc", tolerance=0.0, n_bootstrap=200)]
    good = train(frame)
    first = evaluate_candidate("approvals", lambda x: good.predict(x[features]), gates,
                               data=frame, label="approved", features=features,
                               workspace=workspace)
    assert first.passed
    assert "no champion" in first.results[1].message
    v1 = register_model("approvals", good, training_data=frame, datasets=[dataset],
                        label="approved", features=features, gates=first, workspace=workspace)
    assert v1.gates_passed is True and v1.lineage["datasets"][0]["ref"] == dataset
    set_alias("approvals", "champion", 1, workspace=workspace)
    noise = np.random.default_rng(0).uniform(size=len(frame))
    worse = evaluate_candidate("approvals", lambda x: noise[: len(x)], gates, data=frame,
                               label="approved", features=features, workspace=workspace)
    assert not worse.passed
    assert {r.gate_id for r in worse.failed_blocking} == {
        "metric_threshold(auc>=0.6)", "no_regression(auc)"}
    v2 = register_model("approvals", good, gates=worse, workspace=workspace)
    assert v2.gates_passed is False
    with pytest.raises(GateError, match=r"approvals@2 failed its gates .*auc"):
        set_alias("approvals", "champion", 2, workspace=workspace)
