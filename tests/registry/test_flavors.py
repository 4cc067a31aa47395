"""Model flavors: every framework saves to plain files and loads back behind one ``predict``.

Real models on scikit-learn's bundled data sets (no download); each round trip is compared
with the original model's own prediction.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import xgboost as xgb
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import KMeans
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from mlwright.errors import RegistryError
from mlwright.registry.flavors import FLAVORS, Predictor, flavor_for, get_flavor

try:
    import torch
except ImportError:  # optional: the pytorch tests skip without it
    torch = None


# -- data and models ---------------------------------------------------------------------

def binary() -> tuple[pd.DataFrame, pd.Series]:
    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return x, y


def multiclass() -> tuple[pd.DataFrame, pd.Series]:
    x, y = load_iris(return_X_y=True, as_frame=True)
    return x, y


def regression() -> tuple[pd.DataFrame, pd.Series]:
    x, y = load_diabetes(return_X_y=True, as_frame=True)
    return x, y


COLOURS = ["red", "green", "blue", "amber"]


def categorical_frame(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A frame with a pandas category column whose categories are not in sorted order of
    appearance, so a wrong code assignment would change the predictions."""
    rng = np.random.default_rng(seed)
    colour = rng.choice(COLOURS, size=n)
    x = rng.normal(size=n)
    y = ((colour == "green") | (colour == "amber") & (x > 0) | (x > 1.2)).astype(int)
    frame = pd.DataFrame({"x": x, "colour": pd.Categorical(colour, categories=COLOURS)})
    return frame, y


class MeanModel:
    """A model of the generic python flavor: predicts the training mean of y."""

    def __init__(self, mean: float) -> None:
        self.mean = mean

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.full(len(frame), self.mean)

    def save(self, folder: Path) -> None:
        (folder / "mean.txt").write_text(repr(self.mean), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> MeanModel:
        return cls(float((folder / "mean.txt").read_text(encoding="utf-8")))


class PredictOnly:
    """Has predict but no save/load: the python flavor must refuse it rather than pickle it."""

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.zeros(len(frame))


class Doubler(BaseEstimator, TransformerMixin):  # type: ignore[misc]
    """A custom scikit-learn transformer: a type skops must not be trusted to rebuild."""

    def fit(self, x: Any, y: Any = None) -> Doubler:
        return self

    def transform(self, x: Any) -> Any:
        return x * 2


if torch is not None:
    class TinyNet(torch.nn.Module):
        def __init__(self, width: int = 4, hidden: int = 8) -> None:
            super().__init__()
            self.mlwright_init_kwargs = {"width": width, "hidden": hidden}
            self.layers = torch.nn.Sequential(torch.nn.Linear(width, hidden), torch.nn.ReLU(),
                                              torch.nn.Dropout(0.5), torch.nn.Linear(hidden, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.layers(x))

    class NeedsArguments(torch.nn.Module):
        def __init__(self, width: int) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(width, 1)


def needs_torch() -> Any:
    return pytest.importorskip("torch", reason="PyTorch (CPU) is optional: pip install torch")


def round_trip(model: object, folder: Path, name: str | None = None) -> tuple[Predictor, dict[str, Any]]:
    flavor = flavor_for(model, name)
    meta = flavor.save(model, folder)
    predictor = flavor.load(folder, meta)
    assert isinstance(predictor, Predictor)
    return predictor, meta


# -- scikit-learn --------------------------------------------------------------------------

def test_sklearn_binary_classifier_answers_the_positive_probability(tmp_path: Path) -> None:
    x, y = binary()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    predictor, meta = round_trip(model, tmp_path)
    np.testing.assert_array_equal(predictor.predict(x), model.predict_proba(x)[:, 1])
    assert zipfile.is_zipfile(tmp_path / "model.skops")  # skops, not a pickle
    assert set(meta["files"]) == {"model.skops"}


@pytest.mark.parametrize(("make", "data", "method"), [
    (lambda: RandomForestClassifier(n_estimators=10, random_state=0), multiclass, "predict_proba"),
    (lambda: HistGradientBoostingRegressor(max_iter=20), regression, "predict"),
    (lambda: Ridge(), regression, "predict"),
    (lambda: KMeans(n_clusters=3, n_init=2, random_state=0), multiclass, "predict"),
], ids=["multiclass", "hist-gbm-regressor", "ridge", "kmeans"])
def test_sklearn_round_trips(tmp_path: Path, make: Any, data: Any, method: str) -> None:
    x, y = data()
    model = make().fit(x, y)
    predictor, _ = round_trip(model, tmp_path)
    np.testing.assert_array_equal(predictor.predict(x), getattr(model, method)(x))


def test_sklearn_model_fitted_on_an_array_predicts_from_a_frame(tmp_path: Path) -> None:
    x, y = regression()
    model = Ridge().fit(x.to_numpy(), y)  # no feature names: a frame would warn (an error here)
    predictor, _ = round_trip(model, tmp_path)
    np.testing.assert_array_equal(predictor.predict(x), model.predict(x.to_numpy()))


def test_sklearn_refuses_a_pickle_where_skops_is_expected(tmp_path: Path) -> None:
    x, y = binary()
    with (tmp_path / "model.pkl").open("wb") as sink:
        pickle.dump(make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y), sink)
    with pytest.raises(RegistryError,
                       match=r"model\.pkl is a pickle; mlwright loads scikit-learn models only from skops"):
        get_flavor("sklearn").load(tmp_path, {})


def test_sklearn_refuses_a_pickle_named_like_a_skops_file(tmp_path: Path) -> None:
    (tmp_path / "model.skops").write_bytes(pickle.dumps(Ridge(), protocol=4))
    with pytest.raises(RegistryError, match=r"model\.skops is a pickle"):
        get_flavor("sklearn").load(tmp_path, {})


@pytest.mark.parametrize(("model", "named"), [
    (FunctionTransformer(lambda x: x + 1), "<lambda>"),
    (make_pipeline(Doubler(), Ridge()), "test_flavors.Doubler"),
], ids=["lambda", "custom-class"])
def test_sklearn_refuses_untrusted_types_on_load_and_on_save(tmp_path: Path, model: Any, named: str) -> None:
    x, y = regression()
    model.fit(x, y)
    sio.dump(model, tmp_path / "model.skops")  # written by someone else, not through the flavor
    with pytest.raises(RegistryError, match=rf"needs types mlwright does not trust: .*{named}"):
        get_flavor("sklearn").load(tmp_path, {})

    fresh = tmp_path / "fresh"
    with pytest.raises(RegistryError, match=named):
        get_flavor("sklearn").save(model, fresh)
    assert list(fresh.iterdir()) == []  # nothing half-written left behind


def test_sklearn_refuses_a_file_that_is_not_skops(tmp_path: Path) -> None:
    (tmp_path / "model.skops").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(RegistryError, match="not a readable skops file"):
        get_flavor("sklearn").load(tmp_path, {})


# -- LightGBM ------------------------------------------------------------------------------

def test_lightgbm_classifier_and_booster_round_trip(tmp_path: Path) -> None:
    x, y = binary()
    classifier = lgb.LGBMClassifier(n_estimators=20, verbose=-1).fit(x, y)
    predictor, meta = round_trip(classifier, tmp_path / "classifier")
    assert flavor_for(classifier).name == "lightgbm"
    np.testing.assert_array_equal(predictor.predict(x), classifier.predict_proba(x)[:, 1])
    np.testing.assert_array_equal(predictor.predict(x[x.columns[::-1]]), classifier.predict_proba(x)[:, 1])
    assert meta["pandas_categorical"] == []

    r, t = regression()
    booster = lgb.train({"objective": "regression", "verbose": -1}, lgb.Dataset(r, t), num_boost_round=15)
    predictor, _ = round_trip(booster, tmp_path / "booster")
    np.testing.assert_array_equal(predictor.predict(r), booster.predict(r))


def test_lightgbm_multiclass_answers_all_probabilities(tmp_path: Path) -> None:
    x, y = multiclass()
    model = lgb.LGBMClassifier(n_estimators=10, verbose=-1, min_child_samples=5).fit(x, y)
    predictor, _ = round_trip(model, tmp_path)
    out = predictor.predict(x)
    assert out.shape == (len(x), 3)
    np.testing.assert_array_equal(out, model.predict_proba(x))


def test_lightgbm_plain_strings_predict_as_the_training_categories(tmp_path: Path) -> None:
    frame, y = categorical_frame()
    model = lgb.LGBMClassifier(n_estimators=30, verbose=-1, min_child_samples=5).fit(frame, y)
    predictor, meta = round_trip(model, tmp_path)
    assert meta["categorical_columns"] == ["colour"]
    assert meta["pandas_categorical"] == [COLOURS]

    plain = frame.assign(colour=frame["colour"].astype(str))  # what a request carries
    expected = model.predict_proba(frame)[:, 1]
    np.testing.assert_array_equal(predictor.predict(plain), expected)
    # A category column whose categories came out in another order (inferred: sorted) too.
    np.testing.assert_array_equal(predictor.predict(plain.assign(colour=plain["colour"].astype("category"))),
                                  expected)
    # The conversion is needed: LightGBM alone refuses a text column.
    with pytest.raises(ValueError, match="categorical_feature do not match"):
        model.predict_proba(plain)


@pytest.fixture(scope="module")
def categorical_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Predictor]:
    frame, y = categorical_frame()
    model = lgb.LGBMClassifier(n_estimators=30, verbose=-1, min_child_samples=5).fit(frame, y)
    predictor, _ = round_trip(model, tmp_path_factory.mktemp("categorical"))
    return model, predictor


@settings(max_examples=40, deadline=None)
@given(rows=st.lists(st.tuples(st.floats(-3, 3), st.sampled_from([*COLOURS, "violet"])),
                     min_size=1, max_size=30))
def test_lightgbm_string_rows_predict_like_the_training_frame(
        categorical_model: tuple[Any, Predictor], rows: list[tuple[float, str]]) -> None:
    """The twin: the original model given the column built with the training categories
    (an unseen colour becomes missing in both)."""
    model, predictor = categorical_model
    plain = pd.DataFrame(rows, columns=["x", "colour"])
    known = plain["colour"].where(plain["colour"].isin(COLOURS))  # unseen: missing
    training = plain.assign(colour=pd.Categorical(known, categories=COLOURS))
    np.testing.assert_array_equal(predictor.predict(plain), model.predict_proba(training)[:, 1])


# -- XGBoost -------------------------------------------------------------------------------

def test_xgboost_classifier_answers_the_positive_probability(tmp_path: Path) -> None:
    x, y = binary()
    model = xgb.XGBClassifier(n_estimators=20, max_depth=3).fit(x, y)
    assert flavor_for(model).name == "xgboost"
    predictor, meta = round_trip(model, tmp_path)
    assert meta["objective"] == "binary:logistic"
    np.testing.assert_array_equal(predictor.predict(x), model.predict_proba(x)[:, 1])
    np.testing.assert_array_equal(predictor.predict(x[x.columns[::-1]]), model.predict_proba(x)[:, 1])


def test_xgboost_early_stopped_model_uses_its_best_round(tmp_path: Path) -> None:
    x, y = binary()
    model = xgb.XGBClassifier(n_estimators=200, learning_rate=0.5, early_stopping_rounds=3)
    model.fit(x.iloc[:400], y.iloc[:400], eval_set=[(x.iloc[400:], y.iloc[400:])], verbose=False)
    assert model.best_iteration < 199
    predictor, meta = round_trip(model, tmp_path)
    assert meta["best_iteration"] == model.best_iteration
    np.testing.assert_array_equal(predictor.predict(x), model.predict_proba(x)[:, 1])


def test_xgboost_regressor_multiclass_and_booster_round_trip(tmp_path: Path) -> None:
    r, t = regression()
    regressor = xgb.XGBRegressor(n_estimators=20).fit(r.to_numpy(), t)  # trained without names
    predictor, _ = round_trip(regressor, tmp_path / "regressor")
    np.testing.assert_allclose(predictor.predict(r), regressor.predict(r.to_numpy()), rtol=1e-6)

    x, y = multiclass()
    classifier = xgb.XGBClassifier(n_estimators=10).fit(x, y)
    predictor, meta = round_trip(classifier, tmp_path / "multiclass")
    assert meta["objective"] == "multi:softprob"
    np.testing.assert_array_equal(predictor.predict(x), classifier.predict_proba(x))

    booster = xgb.train({"objective": "reg:squarederror"}, xgb.DMatrix(r, t), num_boost_round=10)
    predictor, _ = round_trip(booster, tmp_path / "booster")
    np.testing.assert_array_equal(predictor.predict(r), booster.predict(xgb.DMatrix(r)))


# -- ONNX ----------------------------------------------------------------------------------

@pytest.mark.parametrize("zipmap", [False, True], ids=["probabilities-tensor", "zipmap"])
def test_onnx_sklearn_classifier_matches_predict_proba(tmp_path: Path, zipmap: bool) -> None:
    skl2onnx = pytest.importorskip("skl2onnx")
    x, y = binary()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x.to_numpy(), y)
    proto = skl2onnx.to_onnx(model, x.to_numpy(np.float32)[:1], options={id(model): {"zipmap": zipmap}})
    assert flavor_for(proto).name == "onnx"
    predictor, meta = round_trip(proto, tmp_path)
    assert meta["inputs"] == ["X"]  # skl2onnx names the input
    out = predictor.predict(x)
    assert out.shape == (len(x),)
    np.testing.assert_allclose(out, model.predict_proba(x.to_numpy())[:, 1], atol=1e-5)


def test_onnx_graph_with_one_input_per_column_from_bytes(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Sub", ["a", "b"], ["difference"])], "difference",
        [helper.make_tensor_value_info(name, TensorProto.DOUBLE, [None, 1]) for name in ("a", "b")],
        [helper.make_tensor_value_info("difference", TensorProto.DOUBLE, [None, 1])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    predictor, _ = round_trip(proto.SerializeToString(), tmp_path, name="onnx")  # bytes: named
    frame = pd.DataFrame({"b": [1.0, 2.0, 5.0], "a": [10.0, 20.0, 30.0]})  # by name, any order
    np.testing.assert_array_equal(predictor.predict(frame), [9.0, 18.0, 25.0])
    with pytest.raises(RegistryError, match=r"takes inputs \['a', 'b'\]"):
        predictor.predict(frame.assign(c=1.0))


def test_onnx_refuses_bytes_that_are_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="not an ONNX model"):
        get_flavor("onnx").save(b"\xff\xff definitely not protobuf", tmp_path)


# -- PyTorch -------------------------------------------------------------------------------

def test_pytorch_state_dict_plus_class_round_trips(tmp_path: Path) -> None:
    needs_torch()
    x, _ = binary()
    x = x.iloc[:, :6]
    torch.manual_seed(0)
    model = TinyNet(width=6, hidden=5)
    assert flavor_for(model).name == "pytorch"
    predictor, meta = round_trip(model, tmp_path)
    assert meta["format"] == "state_dict"
    assert meta["class"].endswith("test_flavors:TinyNet")
    assert meta["init_kwargs"] == {"width": 6, "hidden": 5}
    model.eval()  # dropout off, as the predictor does
    with torch.no_grad():
        expected = model(torch.tensor(x.to_numpy(np.float32))).numpy()[:, 0]
    out = predictor.predict(x)
    assert out.shape == (len(x),)
    np.testing.assert_array_equal(out, expected)
    assert predictor.predict(x.iloc[:1]).shape == (1,)


# TorchScript is deprecated in recent torch, and still what many teams ship.
@pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning")
def test_pytorch_torchscript_round_trips(tmp_path: Path) -> None:
    needs_torch()
    x, _ = regression()
    torch.manual_seed(1)
    model = torch.jit.script(TinyNet(width=x.shape[1]).eval())
    predictor, meta = round_trip(model, tmp_path)
    assert meta["format"] == "torchscript" and "class" not in meta
    with torch.no_grad():
        expected = model(torch.tensor(x.to_numpy(np.float32))).numpy()[:, 0]
    np.testing.assert_array_equal(predictor.predict(x), expected)


def test_pytorch_refuses_a_class_it_cannot_rebuild(tmp_path: Path) -> None:
    needs_torch()
    with pytest.raises(RegistryError,
                       match=r"NeedsArguments\(\*\*mlwright_init_kwargs\).*missing a required argument"):
        get_flavor("pytorch").save(NeedsArguments(3), tmp_path)
    assert not (tmp_path / "state_dict.pt").exists()


# -- python (generic) ----------------------------------------------------------------------

def test_python_flavor_round_trips_through_the_class_own_save_and_load(tmp_path: Path) -> None:
    model = MeanModel(2.5)
    assert flavor_for(model).name == "python"
    predictor, meta = round_trip(model, tmp_path)
    assert meta["class"].endswith("test_flavors:MeanModel")
    assert set(meta["files"]) == {"mean.txt"}
    np.testing.assert_array_equal(predictor.predict(pd.DataFrame({"a": [1, 2, 3]})), [2.5, 2.5, 2.5])


def test_python_flavor_refuses_an_object_without_save_and_load(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"PredictOnly has no save or classmethod load.*never pickles"):
        get_flavor("python").save(PredictOnly(), tmp_path)


class FailingSave(MeanModel):
    def save(self, folder: Path) -> None:
        (folder / "half.txt").write_text("half", encoding="utf-8")
        raise OSError("disk full")


def test_python_flavor_reports_a_failing_save_and_cleans_up(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"test_flavors:FailingSave\.save\(.*\) failed: OSError: disk"):
        get_flavor("python").save(FailingSave(1.0), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_python_flavor_refuses_a_class_defined_in_a_function(tmp_path: Path) -> None:
    class Local(MeanModel):
        pass

    with pytest.raises(RegistryError, match="importable"):
        get_flavor("python").save(Local(1.0), tmp_path)


# -- detection and names -------------------------------------------------------------------

def test_detection_prefers_the_native_flavor() -> None:
    x, y = binary()
    small = x.iloc[:, :4]
    assert flavor_for(make_pipeline(StandardScaler(), LogisticRegression()).fit(small, y)).name == "sklearn"
    assert flavor_for(make_pipeline(StandardScaler(), Ridge())).name == "sklearn"
    # LightGBM's and XGBoost's scikit-learn API subclass BaseEstimator: native wins.
    assert flavor_for(lgb.LGBMRegressor()).name == "lightgbm"
    assert flavor_for(xgb.XGBRegressor()).name == "xgboost"
    assert flavor_for(MeanModel(0.0)).name == "python"
    assert flavor_for(Ridge(), "sklearn") is FLAVORS["sklearn"]
    assert set(FLAVORS) == {"sklearn", "lightgbm", "xgboost", "onnx", "pytorch", "python"}


def test_unknown_flavor_name_lists_the_known_ones() -> None:
    with pytest.raises(RegistryError,
                       match=r"Unknown model flavor 'tensorflow'; the flavors are sklearn, .*python"):
        flavor_for(Ridge(), "tensorflow")


@pytest.mark.parametrize("model", [object(), PredictOnly(), 42], ids=["object", "predict-only", "int"])
def test_undetectable_model_says_how_to_wrap_it(model: object) -> None:
    with pytest.raises(RegistryError, match=r"Cannot tell the flavor .* classmethod load\(folder\)"):
        flavor_for(model)


@pytest.mark.parametrize(("name", "model"), [
    ("xgboost", Ridge()), ("lightgbm", MeanModel(1.0)), ("sklearn", MeanModel(1.0)), ("onnx", Ridge()),
])
def test_named_flavor_refuses_another_framework_s_model(tmp_path: Path, name: str, model: object) -> None:
    with pytest.raises(RegistryError, match=rf"The '{name}' flavor saves"):
        get_flavor(name).save(model, tmp_path)


def test_unfitted_estimator_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"sklearn\.pipeline\.Pipeline is not fitted"):
        get_flavor("sklearn").save(make_pipeline(StandardScaler(), LogisticRegression()), tmp_path)
    with pytest.raises(RegistryError, match="not fitted"):
        get_flavor("lightgbm").save(lgb.LGBMClassifier(), tmp_path)
    with pytest.raises(RegistryError, match="not fitted"):
        get_flavor("xgboost").save(xgb.XGBClassifier(), tmp_path)


# -- damaged folders -----------------------------------------------------------------------

def _saved(name: str, folder: Path) -> dict[str, Any]:
    x, y = binary()
    small = x.iloc[:, :5]
    model: object = {
        "sklearn": lambda: make_pipeline(StandardScaler(), LogisticRegression()).fit(small, y),
        "lightgbm": lambda: lgb.LGBMClassifier(n_estimators=3, verbose=-1).fit(small, y),
        "xgboost": lambda: xgb.XGBClassifier(n_estimators=3).fit(small, y),
        "python": lambda: MeanModel(1.0),
    }[name]()
    return get_flavor(name).save(model, folder)


@pytest.mark.parametrize(("name", "file"), [
    ("sklearn", "model.skops"), ("lightgbm", "model.txt"), ("xgboost", "model.ubj"),
    ("onnx", "model.onnx"), ("python", "mean.txt"),
])
def test_missing_model_file_is_named(tmp_path: Path, name: str, file: str) -> None:
    meta = _saved(name, tmp_path) if name != "onnx" else {}
    if name == "python":
        (tmp_path / file).unlink()
    else:
        for path in tmp_path.iterdir():
            path.unlink()
    with pytest.raises(RegistryError, match=rf"'{name}' model folder .* has no file '{file}'"):
        get_flavor(name).load(tmp_path, meta)


@pytest.mark.parametrize(("name", "file"), [
    ("sklearn", "model.skops"), ("lightgbm", "model.txt"), ("xgboost", "model.ubj"), ("python", "mean.txt"),
])
def test_corrupted_model_file_is_refused_by_its_hash(tmp_path: Path, name: str, file: str) -> None:
    meta = _saved(name, tmp_path)
    path = tmp_path / file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    path.write_bytes(bytes(data))
    with pytest.raises(RegistryError, match=rf"{file} is corrupted: its sha256 is .*, expected"):
        get_flavor(name).load(tmp_path, meta)


def test_importing_flavors_imports_no_framework() -> None:
    code = ("import sys, mlwright.registry.flavors; "
            "print(sorted({'sklearn', 'lightgbm', 'xgboost', 'onnx', 'onnxruntime', 'torch', 'skops', "
            "'pandas'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
