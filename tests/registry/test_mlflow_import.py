"""Importing MLflow model directories, built by hand as MLflow 2.x/3.x lays them out.

No mlflow import: each test writes the ``MLmodel`` YAML with the keys MLflow writes and the
model file the framework itself saves, which is all an MLflow model directory is.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import warnings
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.base import BaseEstimator, TransformerMixin
from sqlalchemy import func, select

from mlwright.cli.main import main
from mlwright.errors import RegistryError
from mlwright.registry import load_model
from mlwright.registry.mlflow_import import import_mlflow_model, mlflow_signature
from mlwright.registry.signature import Column, Signature
from mlwright.store import ModelVersion
from mlwright.workspace import WORKSPACE_ENV, Workspace, init_workspace

RUN_ID = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
MODEL_UUID = "3a7c0b6f5e2d4c1b9a8f7e6d5c4b3a29"
COLUMNS = [{"type": "double", "name": "income", "required": True},
           {"type": "double", "name": "debt", "required": True}]


def loans(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.gamma(4.0, 15_000.0, n)
    debt = rng.uniform(0, 40_000, n)
    approved = (income / 1000 - debt / 2000 + rng.normal(0, 5, n)) > 40
    return pd.DataFrame({"income": income, "debt": debt, "approved": approved.astype(int)})


def mlflow_dir(folder: Path, flavor: str, section: dict[str, Any], *, loader: str | None = None,
               data: str | None = None, inputs: list[dict[str, Any]] | None = None,
               outputs: list[dict[str, Any]] | None = None) -> Path:
    """Write ``MLmodel`` (and the environment files) the way ``mlflow.<flavor>.save_model`` does."""
    pyfunc: dict[str, Any] = {"env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
                              "loader_module": loader or f"mlflow.{flavor}",
                              "python_version": "3.11.9"}
    if data is not None:
        pyfunc["data"] = data
    doc: dict[str, Any] = {
        "artifact_path": "model",
        "flavors": {"python_function": pyfunc, flavor: section},
        "mlflow_version": "2.16.2",
        "model_size_bytes": sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()),
        "model_uuid": MODEL_UUID,
        "run_id": RUN_ID,
        "utc_time_created": "2024-09-12 08:41:27.213560",
    }
    if inputs is not None:
        doc["signature"] = {"inputs": json.dumps(inputs), "outputs": json.dumps(outputs or []),
                            "params": None}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "MLmodel").write_text(yaml.safe_dump(doc, default_flow_style=False))
    (folder / "conda.yaml").write_text("channels: [conda-forge]\nname: mlflow-env\n")
    (folder / "python_env.yaml").write_text("python: 3.11.9\n")
    (folder / "requirements.txt").write_text("mlflow==2.16.2\n")
    return folder


def versions(ws: Workspace) -> int:
    with ws.db.session() as session:
        return int(session.execute(select(func.count()).select_from(ModelVersion)).scalar() or 0)


def test_a_lightgbm_model_imports_with_its_signature_and_origin(workspace: Workspace,
                                                                tmp_path: Path) -> None:
    frame = loans()
    booster = lgb.train({"objective": "binary", "num_leaves": 7, "verbose": -1, "seed": 1},
                        lgb.Dataset(frame[["income", "debt"]], frame["approved"]),
                        num_boost_round=15)
    folder = tmp_path / "model"
    folder.mkdir()
    booster.save_model(folder / "model.lgb")
    mlflow_dir(folder, "lightgbm", {"code": None, "data": "model.lgb", "lgb_version": lgb.__version__,
                                    "model_class": "lightgbm.basic.Booster"},
               data="model.lgb", inputs=COLUMNS, outputs=[{"type": "double", "required": True}])

    v = import_mlflow_model(folder, "approvals", metrics={"auc": 0.9}, workspace=workspace)
    assert (v.ref, v.flavor) == ("approvals@1", "lightgbm")
    assert v.signature == Signature(inputs=(Column("income", "double"), Column("debt", "double")))
    assert v.metrics == {"auc": 0.9}
    assert v.lineage["imported_from"] == {
        "mlflow_model": str(folder.resolve()), "mlflow_flavor": "lightgbm", "run_id": RUN_ID,
        "model_uuid": MODEL_UUID, "artifact_path": "model", "mlflow_version": "2.16.2",
        "utc_time_created": "2024-09-12 08:41:27.213560"}
    test = loans(seed=4)
    np.testing.assert_allclose(load_model("approvals@1", workspace=workspace).predict(test),
                               booster.predict(test[["income", "debt"]]))
    # The MLmodel file itself names the directory as well.
    again = import_mlflow_model(folder / "MLmodel", "approvals", workspace=workspace)
    assert again.version == 2 and again.manifest_digest == v.manifest_digest


@pytest.mark.parametrize("model_format", ["xgb", "json", "ubj"])
def test_an_xgboost_model_imports_in_each_format(workspace: Workspace, tmp_path: Path,
                                                 model_format: str) -> None:
    xgb = pytest.importorskip("xgboost")
    frame = loans()
    x = frame[["income", "debt"]]
    classifier = xgb.XGBClassifier(n_estimators=10, max_depth=3).fit(x, frame["approved"])
    folder = tmp_path / "model"
    folder.mkdir()
    with warnings.catch_warnings():  # XGBoost warns that "xgb" is no extension it knows
        warnings.simplefilter("ignore")
        classifier.save_model(str(folder / f"model.{model_format}"))
    mlflow_dir(folder, "xgboost", {"code": None, "data": f"model.{model_format}",
                                   "model_class": "xgboost.sklearn.XGBClassifier",
                                   "model_format": model_format, "xgb_version": xgb.__version__},
               data=f"model.{model_format}", inputs=COLUMNS)
    v = import_mlflow_model(folder, "approvals", workspace=workspace)
    assert v.flavor == "xgboost" and v.flavor_meta["objective"] == "binary:logistic"
    test = loans(seed=4)
    np.testing.assert_allclose(load_model(v.ref, workspace=workspace).predict(test),
                               classifier.predict_proba(test[["income", "debt"]])[:, 1], rtol=1e-6)


def test_an_onnx_model_imports_with_its_tensor_signature_left_out(workspace: Workspace,
                                                                   tmp_path: Path) -> None:
    skl2onnx = pytest.importorskip("skl2onnx")
    onnx = pytest.importorskip("onnx")
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = loans()
    x = frame[["income", "debt"]].to_numpy()
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, frame["approved"])
    proto = skl2onnx.to_onnx(model, x.astype(np.float32)[:1], options={id(model): {"zipmap": False}})
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(proto.SerializeToString())
    tensor = [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 2]}}]
    mlflow_dir(folder, "onnx", {"code": None, "data": "model.onnx", "onnx_version": onnx.__version__,
                                "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"]},
               data="model.onnx", inputs=tensor)
    v = import_mlflow_model(folder, "approvals", workspace=workspace)
    assert v.flavor == "onnx" and v.signature is None  # a tensor names no columns
    test = loans(seed=4)[["income", "debt"]]
    np.testing.assert_allclose(load_model(v.ref, workspace=workspace).predict(test),
                               model.predict_proba(test.to_numpy())[:, 1], atol=1e-5)


def test_a_skops_scikit_learn_model_imports(workspace: Workspace, tmp_path: Path) -> None:
    import sklearn
    import skops.io as sio
    from sklearn.ensemble import RandomForestClassifier

    frame = loans()
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(
        frame[["income", "debt"]], frame["approved"])
    folder = tmp_path / "model"
    folder.mkdir()
    sio.dump(model, folder / "model.skops")
    mlflow_dir(folder, "sklearn", {"code": None, "pickled_model": "model.skops",
                                   "serialization_format": "skops",
                                   "sklearn_version": sklearn.__version__,
                                   "skops_trusted_types": []},
               data="model.skops", inputs=COLUMNS)
    v = import_mlflow_model(folder, "forest", workspace=workspace)
    assert v.flavor == "sklearn"
    test = loans(seed=4)
    np.testing.assert_allclose(load_model(v.ref, workspace=workspace).predict(test),
                               model.predict_proba(test[["income", "debt"]])[:, 1])


class Halves(BaseEstimator, TransformerMixin):  # type: ignore[misc]
    """A custom estimator: a skops file that holds one needs a class mlwright does not trust."""

    def fit(self, x: Any, y: Any = None) -> Halves:
        return self

    def transform(self, x: Any) -> Any:
        return np.asarray(x) / 2


def test_a_skops_file_is_held_to_the_trusted_types(workspace: Workspace, tmp_path: Path) -> None:
    import skops.io as sio

    folder = tmp_path / "model"
    folder.mkdir()
    sio.dump(Halves().fit(loans()[["income"]]), folder / "model.skops")
    section = {"code": None, "pickled_model": "model.skops", "serialization_format": "skops",
               "sklearn_version": "1.6.1", "skops_trusted_types": [f"{__name__}.Halves"]}
    mlflow_dir(folder, "sklearn", section)
    with pytest.raises(RegistryError, match=rf"The skops file {folder / 'model.skops'} needs types "
                                            r"mlwright does not trust: .*Halves"):
        import_mlflow_model(folder, "halves", workspace=workspace)
    marker = tmp_path / "unpickled"
    (folder / "model.skops").write_bytes(pickle.dumps(Trap(marker)))  # a pickle in disguise
    with pytest.raises(RegistryError, match=r"model\.skops is a pickle"):
        import_mlflow_model(folder, "halves", workspace=workspace)
    assert not marker.exists() and versions(workspace) == 0


class Trap:
    """Unpickling this creates a folder: proof that a refused pickle was never loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.makedirs, (str(self.marker),)


@pytest.mark.parametrize("serialization", ["cloudpickle", "pickle"])
def test_a_pickled_scikit_learn_model_is_refused_unopened(workspace: Workspace, tmp_path: Path,
                                                          serialization: str) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    marker = tmp_path / "unpickled"
    (folder / "model.pkl").write_bytes(pickle.dumps(Trap(marker)))
    mlflow_dir(folder, "sklearn", {"code": None, "pickled_model": "model.pkl",
                                   "serialization_format": serialization, "sklearn_version": "1.5.2"},
               data="model.pkl", inputs=COLUMNS)
    with pytest.raises(RegistryError) as caught:
        import_mlflow_model(folder, "forest", workspace=workspace)
    assert str(caught.value).startswith(
        f"MLflow saved this scikit-learn model with {serialization}; mlwright does not load "
        "pickles. Re-save it with skops (skops.io.dump")
    assert "and register that" in str(caught.value)
    assert not marker.exists() and versions(workspace) == 0


def test_a_pickled_lightgbm_scikit_api_model_is_refused(workspace: Workspace,
                                                         tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    marker = tmp_path / "unpickled"
    (folder / "model.pkl").write_bytes(pickle.dumps(Trap(marker)))
    mlflow_dir(folder, "lightgbm", {"code": None, "data": "model.pkl", "lgb_version": "4.5.0",
                                    "model_class": "lightgbm.sklearn.LGBMClassifier"},
               data="model.pkl")
    with pytest.raises(RegistryError, match=r"LightGBM model \(lightgbm\.sklearn\.LGBMClassifier\) "
                                            r"as a pickle, model\.pkl; mlwright does not load "
                                            r"pickles\. Log its Booster instead"):
        import_mlflow_model(folder, "approvals", workspace=workspace)
    assert not marker.exists() and versions(workspace) == 0


# TorchScript is deprecated in recent torch, and still what many teams ship.
@pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning")
def test_pytorch_torchscript_imports_and_pickles_and_exports_are_refused(workspace: Workspace,
                                                                         tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(2, 1)).eval()
    section = {"code": None, "model_data": "data", "pytorch_version": str(torch.__version__)}

    def saved(label: str, write: Any) -> Path:
        folder = tmp_path / label
        (folder / "data").mkdir(parents=True)
        (folder / "data" / "pickle_module_info.txt").write_text("mlflow.pytorch.pickle_module")
        write(folder / "data")
        return mlflow_dir(folder, "pytorch", section, data="data")

    scripted = saved("scripted", lambda d: torch.jit.save(torch.jit.script(module), d / "model.pth"))
    v = import_mlflow_model(scripted, "net", workspace=workspace)
    assert (v.flavor, v.flavor_meta["format"]) == ("pytorch", "torchscript")
    x = np.random.default_rng(0).normal(size=(20, 2)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.tensor(x)).numpy()[:, 0]
    np.testing.assert_allclose(
        load_model(v.ref, workspace=workspace).predict(pd.DataFrame(x, columns=["a", "b"])),
        expected, rtol=1e-6)

    pickled = saved("pickled", lambda d: torch.save(module, d / "model.pth"))
    with pytest.raises(RegistryError, match=r"MLflow saved this PyTorch model with torch\.save, a "
                                            r"pickle of the whole module .*mlwright does not load "
                                            r"pickles"):
        import_mlflow_model(pickled, "net", workspace=workspace)
    exported = saved("exported", lambda d: torch.export.save(
        torch.export.export(module, (torch.tensor(x),)), d / "model.pt2"))
    with pytest.raises(RegistryError, match=r"as a torch\.export program \(model\.pt2\)"):
        import_mlflow_model(exported, "net", workspace=workspace)
    assert versions(workspace) == 1


def test_a_directory_with_no_supported_flavor_says_what_it_offers(workspace: Workspace,
                                                                  tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "python_model.pkl").write_bytes(b"\x80\x05N.")
    doc = {"artifact_path": "model", "mlflow_version": "3.1.0", "model_uuid": MODEL_UUID,
           "run_id": RUN_ID, "utc_time_created": "2025-06-01 10:00:00.000000",
           "flavors": {"python_function": {"cloudpickle_version": "3.1.1",
                                           "loader_module": "mlflow.pyfunc.model",
                                           "python_model": "python_model.pkl",
                                           "python_version": "3.11.9"},
                       "keras": {"keras_version": "3.6.0", "save_format": "keras"}}}
    (folder / "MLmodel").write_text(yaml.safe_dump(doc))
    with pytest.raises(RegistryError, match=r"offers the flavors keras, python_function \(python_"
                                            r"function loads it with mlflow\.pyfunc\.model\); "
                                            r"mlwright imports lightgbm, xgboost, onnx, sklearn, "
                                            r"pytorch"):
        import_mlflow_model(folder, "custom", workspace=workspace)


def _lightgbm_dir(folder: Path, data: str = "model.lgb", **extra: Any) -> Path:
    frame = loans(100)
    folder.mkdir(parents=True, exist_ok=True)
    booster = lgb.train({"objective": "binary", "verbose": -1},
                        lgb.Dataset(frame[["income", "debt"]], frame["approved"]),
                        num_boost_round=3)
    booster.save_model(folder.parent / "outside.lgb")
    booster.save_model(folder / "model.lgb")
    return mlflow_dir(folder, "lightgbm", {"code": None, "data": data, "lgb_version": "4.5.0",
                                           "model_class": "lightgbm.basic.Booster"}, **extra)


def test_broken_and_hostile_directories_are_refused(workspace: Workspace, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"nowhere does not exist; give an MLflow model "
                                            r"directory"):
        import_mlflow_model(tmp_path / "nowhere", "m", workspace=workspace)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RegistryError, match=r"empty has no MLmodel file"):
        import_mlflow_model(empty, "m", workspace=workspace)
    escaping = _lightgbm_dir(tmp_path / "escaping", data="../outside.lgb")
    with pytest.raises(RegistryError, match=r"'data' is '\.\./outside\.lgb', which points outside "
                                            r"the model directory"):
        import_mlflow_model(escaping, "m", workspace=workspace)
    absolute = _lightgbm_dir(tmp_path / "absolute", data=str(tmp_path / "outside.lgb"))
    with pytest.raises(RegistryError, match=r"points outside the model directory"):
        import_mlflow_model(absolute, "m", workspace=workspace)
    missing = _lightgbm_dir(tmp_path / "missing", data="model_v2.lgb")
    with pytest.raises(RegistryError, match=r"has no file 'model_v2\.lgb', which its MLmodel names for "
                                            r"the 'lightgbm' flavor \(it holds MLmodel, "):
        import_mlflow_model(missing, "m", workspace=workspace)
    garbled = _lightgbm_dir(tmp_path / "garbled")
    (garbled / "model.lgb").write_text("this is not a LightGBM model\n")
    with pytest.raises(RegistryError, match=r"The lightgbm model file .*model\.lgb of the MLflow "
                                            r"model cannot be loaded"):
        import_mlflow_model(garbled, "m", workspace=workspace)
    not_yaml = tmp_path / "not-yaml"
    not_yaml.mkdir()
    (not_yaml / "MLmodel").write_text("flavors: [unclosed\n")
    with pytest.raises(RegistryError, match=r"The MLmodel file .* cannot be read"):
        import_mlflow_model(not_yaml, "m", workspace=workspace)
    (not_yaml / "MLmodel").write_text("artifact_path: model\n")
    with pytest.raises(RegistryError, match=r"has no 'flavors' section; it is not an MLflow model"):
        import_mlflow_model(not_yaml, "m", workspace=workspace)
    assert versions(workspace) == 0


def test_signature_types_map_and_unknown_ones_ask_for_a_signature(workspace: Workspace,
                                                                  tmp_path: Path) -> None:
    kinds = {"double": "double", "float": "float", "long": "int64", "integer": "int32",
             "string": "string", "boolean": "bool", "datetime": "timestamp[ms]",
             "binary": "binary"}
    mapped = mlflow_signature(tmp_path, {
        "inputs": json.dumps([{"type": k, "name": f"c_{k}", "required": True} for k in kinds]),
        "outputs": json.dumps([{"type": "long", "name": "label", "required": True}])})
    assert mapped is not None
    assert [(c.name, c.type) for c in mapped.inputs] == [(f"c_{k}", v) for k, v in kinds.items()]
    assert mapped.output == Column("label", "int64")
    assert mlflow_signature(tmp_path, None) is None
    assert mlflow_signature(tmp_path, {"inputs": None, "outputs": None}) is None

    tags = [*COLUMNS, {"type": "array", "items": {"type": "string"}, "name": "tags",
                       "required": True}]
    folder = _lightgbm_dir(tmp_path / "model", inputs=tags)
    with pytest.raises(RegistryError, match=r"Column 'tags' of the MLflow model in .* has type "
                                            r"'array', which mlwright cannot map .*pass signature="):
        import_mlflow_model(folder, "m", workspace=workspace)
    chosen = Signature(inputs=(Column("income", "double"), Column("debt", "double")))
    v = import_mlflow_model(folder, "m", signature=chosen, workspace=workspace)
    assert v.signature == chosen


def test_cli_import_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)
    folder = _lightgbm_dir(tmp_path / "model", inputs=COLUMNS)
    init_workspace(tmp_path / "ws").close()

    def cli(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["mlwright", "-w", str(tmp_path / "ws"), *args])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    code, out, _ = cli("model", "import-mlflow", str(folder), "--name", "approvals", "--json")
    assert code == 0
    info = json.loads(out)
    assert (info["ref"], info["flavor"]) == ("approvals@1", "lightgbm")
    assert info["lineage"]["imported_from"]["run_id"] == RUN_ID
    code, out, _ = cli("model", "import-mlflow", str(folder), "--name", "approvals")
    assert code == 0 and "approvals@2" in out and RUN_ID in out
    code, _, err = cli("model", "import-mlflow", str(tmp_path), "--name", "approvals")
    assert code == 2 and "has no MLmodel file" in err
