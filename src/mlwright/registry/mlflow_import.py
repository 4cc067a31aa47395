"""An MLflow model directory (the folder with an ``MLmodel`` file) registered as a version.

mlwright reads the ``MLmodel`` YAML, picks the flavor it can load safely, loads the model
file with the framework's own loader and registers it in the matching mlwright flavor:

| MLflow flavor | file                                   | becomes            |
|---------------|----------------------------------------|--------------------|
| ``lightgbm``  | ``model.lgb`` (LightGBM text)          | ``lightgbm``       |
| ``xgboost``   | ``model.xgb`` / ``.json`` / ``.ubj``   | ``xgboost``        |
| ``onnx``      | ``model.onnx``                         | ``onnx``           |
| ``sklearn``   | ``model.skops`` (MLflow 3, skops)      | ``sklearn``        |
| ``pytorch``   | ``data/model.pth`` holding TorchScript | ``pytorch``        |

Pickles are refused, whoever wrote them: MLflow pickles scikit-learn models (``pickle``,
``cloudpickle``), LightGBM's scikit-learn API models and whole PyTorch modules, and
unpickling runs whatever code the file names. The message says how to re-save the model.

>>> v = import_mlflow_model("mlruns/1/3f2a/artifacts/model", "churn", workspace=ws)  # doctest: +SKIP
>>> v.flavor, v.lineage["imported_from"]["run_id"]                                   # doctest: +SKIP
('lightgbm', '3f2a...')
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlwright.errors import RegistryError
from mlwright.registry.flavors import get_flavor
from mlwright.registry.flavors._common import framework
from mlwright.registry.signature import Column, Signature
from mlwright.registry.versions import ModelVersionInfo, WorkspaceLike, register_folder
from mlwright.store import check_name
from mlwright.workspace import as_workspace

MLMODEL = "MLmodel"
# MLflow column types (mlflow.types.DataType) -> the Arrow type names of a Signature.
COLUMN_TYPES = {
    "double": "double", "float": "float", "long": "int64", "integer": "int32",
    "string": "string", "boolean": "bool", "datetime": "timestamp[ms]", "binary": "binary",
}
_PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".cloudpickle")

Loader = Callable[[Path, dict[str, Any]], tuple[str, object]]


def import_mlflow_model(
    path: str | Path,
    name: str,
    *,
    signature: Signature | None = None,
    metrics: dict[str, float] | None = None,
    params: dict[str, Any] | None = None,
    description: str | None = None,
    workspace: WorkspaceLike = None,
) -> ModelVersionInfo:
    """Register the MLflow model in directory ``path`` as the next version of ``name``.

    The signature comes from the ``MLmodel``'s column-based ``signature.inputs`` (a tensor
    signature names no columns: the version then has none) unless ``signature`` is given.
    The lineage records the MLflow directory, run and model uuid under ``imported_from``.
    """
    root = Path(path)
    if root.is_file() and root.name == MLMODEL:
        root = root.parent
    check_name("model", name)
    ws = as_workspace(workspace)
    mlmodel = read_mlmodel(root)
    flavor_name, conf = _pick_flavor(root, mlmodel)
    flavor, model = _LOADERS[flavor_name](root, conf)
    if signature is None:
        signature = mlflow_signature(root, mlmodel.get("signature"))
    imported = {"mlflow_model": str(root.resolve()), "mlflow_flavor": flavor_name,
                **{key: mlmodel.get(key) for key in ("run_id", "model_uuid", "model_id",
                                                     "artifact_path", "mlflow_version",
                                                     "utc_time_created") if mlmodel.get(key)}}
    folder = Path(tempfile.mkdtemp(prefix="mlwright-mlflow-"))
    try:
        meta = get_flavor(flavor).save(model, folder)
        return register_folder(name, folder, flavor=flavor, flavor_meta=meta, signature=signature,
                               metrics=metrics, params=params,
                               lineage={"imported_from": _plain(imported)},
                               description=description, workspace=ws)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def read_mlmodel(root: Path) -> dict[str, Any]:
    """The parsed ``MLmodel`` file of an MLflow model directory."""
    import yaml

    file = root / MLMODEL
    if not file.is_file():
        what = "does not exist" if not root.exists() else (
            "is a file" if not root.is_dir() else f"has no {MLMODEL} file")
        raise RegistryError(f"{root} {what}; give an MLflow model directory, the folder that "
                            f"holds the {MLMODEL} file (e.g. mlruns/<experiment>/<run>/artifacts/"
                            "model, or what mlflow.<flavor>.save_model wrote).")
    try:
        mlmodel = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RegistryError(f"The {MLMODEL} file {file} cannot be read ({exc}).") from None
    if not isinstance(mlmodel, dict) or not isinstance(mlmodel.get("flavors"), dict):
        raise RegistryError(f"The {MLMODEL} file {file} has no 'flavors' section; it is not an "
                            "MLflow model.")
    return mlmodel


def _pick_flavor(root: Path, mlmodel: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    offered = list(mlmodel["flavors"])
    for candidate in _LOADERS:
        if candidate not in mlmodel["flavors"]:
            continue
        conf = mlmodel["flavors"][candidate]
        if not isinstance(conf, dict):
            raise RegistryError(f"The {MLMODEL} file in {root} has a {candidate!r} flavor that is "
                                f"{conf!r}, not a section; it is damaged.")
        return candidate, conf
    loader = (mlmodel["flavors"].get("python_function") or {}).get("loader_module")
    custom = f" (python_function loads it with {loader})" if loader else ""
    raise RegistryError(
        f"The MLflow model in {root} offers the flavors {', '.join(offered) or 'none'}{custom}; "
        f"mlwright imports {', '.join(_LOADERS)}. Save the model with one of those MLflow flavors, "
        "or register the model object itself with mlwright.register_model.")


def _file(root: Path, conf: dict[str, Any], key: str, default: str, flavor: str, *,
          folder: bool = False) -> Path:
    """The file (or ``folder``) ``conf[key]`` names, which must lie inside ``root``."""
    relative = conf.get(key) or default
    if not isinstance(relative, str):
        raise RegistryError(f"The {MLMODEL} file in {root}: the {flavor!r} flavor's {key!r} is "
                            f"{relative!r}, expected a path inside the model directory.")
    base = root.resolve()
    path = (base / relative).resolve()
    if not path.is_relative_to(base):
        raise RegistryError(f"The {MLMODEL} file in {root}: the {flavor!r} flavor's {key!r} is "
                            f"{relative!r}, which points outside the model directory; refused.")
    if not (path.is_dir() if folder else path.is_file()):
        present = ", ".join(sorted(p.name for p in root.iterdir()))
        raise RegistryError(f"The MLflow model in {root} has no {'folder' if folder else 'file'} "
                            f"{relative!r}, which its {MLMODEL} names for the {flavor!r} flavor "
                            f"(it holds {present}); the directory is incomplete: copy it whole.")
    return path


def _is_pickle(path: Path) -> bool:
    if path.suffix.lower() in _PICKLE_SUFFIXES:
        return True
    with path.open("rb") as source:
        return source.read(1) == b"\x80"  # the PROTO opcode that opens every modern pickle


def _framework_error(path: Path, flavor: str, exc: Exception) -> RegistryError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return RegistryError(f"The {flavor} model file {path} of the MLflow model cannot be loaded "
                         f"({first}); check that the directory is whole and was written by "
                         f"mlflow.{flavor}.")


# -- one loader per MLflow flavor: (mlwright flavor, model object) --------------------------


def _lightgbm(root: Path, conf: dict[str, Any]) -> tuple[str, object]:
    path = _file(root, conf, "data", "model.lgb", "lightgbm")
    if _is_pickle(path):
        kind = conf.get("model_class") or "a scikit-learn-API LightGBM model"
        raise RegistryError(
            f"MLflow saved this LightGBM model ({kind}) as a pickle, {path.name}; mlwright does not "
            "load pickles. Log its Booster instead (mlflow.lightgbm.log_model(model.booster_, ...)), "
            "or register the model object itself with mlwright.register_model.")
    lgb = framework("lightgbm", "lightgbm")
    try:
        booster = lgb.Booster(model_file=str(path))
    except lgb.basic.LightGBMError as exc:
        raise _framework_error(path, "lightgbm", exc) from None
    return "lightgbm", booster


def _xgboost(root: Path, conf: dict[str, Any]) -> tuple[str, object]:
    default = f"model.{conf.get('model_format') or 'xgb'}"
    path = _file(root, conf, "data", default, "xgboost")
    if _is_pickle(path):
        raise RegistryError(f"The xgboost model file {path} of the MLflow model is a pickle; "
                            "mlwright does not load pickles. Save it with save_model('model.ubj') "
                            "and register that.")
    xgb = framework("xgboost", "xgboost")
    booster = xgb.Booster()
    try:
        # From the bytes, not the file name: XGBoost picks the format from the content then,
        # and "model.xgb" (MLflow's default name) is no extension it knows.
        booster.load_model(bytearray(path.read_bytes()))
    except xgb.core.XGBoostError as exc:
        raise _framework_error(path, "xgboost", exc) from None
    return "xgboost", booster


def _onnx(root: Path, conf: dict[str, Any]) -> tuple[str, object]:
    path = _file(root, conf, "data", "model.onnx", "onnx")
    onnx = framework("onnx", "onnx")
    try:
        proto = onnx.load(str(path))  # external data files are read from beside it
    except Exception as exc:  # protobuf's DecodeError, onnx's own errors, OSError
        raise _framework_error(path, "onnx", exc) from None
    return "onnx", proto


def _sklearn(root: Path, conf: dict[str, Any]) -> tuple[str, object]:
    serialization = conf.get("serialization_format") or "pickle"
    if serialization != "skops":
        raise RegistryError(
            f"MLflow saved this scikit-learn model with {serialization}; mlwright does not load "
            "pickles. Re-save it with skops (skops.io.dump, or mlflow.sklearn.log_model(..., "
            "serialization_format='skops')) and register that.")
    path = _file(root, conf, "pickled_model", "model.skops", "sklearn")
    from mlwright.registry.flavors.sklearn import FILE, SklearnFlavor, SklearnPredictor

    # The sklearn flavor's loader: it refuses pickles and any type outside its trusted list.
    staging = Path(tempfile.mkdtemp(prefix="mlwright-skops-"))
    try:
        shutil.copyfile(path, staging / FILE)
        predictor = SklearnFlavor().load(staging, {})
    except RegistryError as exc:  # name the MLflow file, not the copy
        raise RegistryError(str(exc).replace(str(staging / FILE), str(path))) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    assert isinstance(predictor, SklearnPredictor)
    return "sklearn", predictor.model


def _pytorch(root: Path, conf: dict[str, Any]) -> tuple[str, object]:
    data = _file(root, conf, "model_data", "data", "pytorch", folder=True)
    script = data / "model.pth"
    if (data / "model.pt2").is_file() and not script.is_file():
        raise RegistryError(
            f"MLflow saved this PyTorch model in {data} as a torch.export program (model.pt2), "
            "which mlwright's pytorch flavor does not load. Register the module itself with "
            "mlwright.register_model (TorchScript, or its weights and importable class).")
    if not script.is_file() or not _is_torchscript(script):
        raise RegistryError(
            f"MLflow saved this PyTorch model with torch.save, a pickle of the whole module "
            f"({script}); mlwright does not load pickles. Register the module itself with "
            "mlwright.register_model (its weights and importable class), or log a TorchScript "
            "version of it (mlflow.pytorch.log_model(torch.jit.script(model), ...)).")
    torch = framework("torch", "pytorch")
    try:
        module = torch.jit.load(str(script), map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError and its own classes
        raise _framework_error(script, "pytorch", exc) from None
    return "pytorch", module


def _is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive (code and constants, loaded without
    unpickling arbitrary classes) rather than a ``torch.save`` pickle of a module."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


# The order of preference when an MLmodel offers several.
_LOADERS: dict[str, Loader] = {
    "lightgbm": _lightgbm, "xgboost": _xgboost, "onnx": _onnx, "sklearn": _sklearn,
    "pytorch": _pytorch,
}


# -- signature -----------------------------------------------------------------------------


def mlflow_signature(root: Path, signature: Any) -> Signature | None:
    """Our :class:`Signature` from an ``MLmodel``'s ``signature`` section (None when it has
    none or only tensors, which name no columns)."""
    if not isinstance(signature, dict) or not signature.get("inputs"):
        return None
    inputs = _specs(root, signature["inputs"], "inputs")
    if not inputs or any(s.get("type") == "tensor" or "name" not in s for s in inputs):
        return None
    columns = tuple(_column(root, spec) for spec in inputs)
    outputs = _specs(root, signature.get("outputs"), "outputs") if signature.get("outputs") else []
    output = None
    if len(outputs) == 1 and outputs[0].get("name") and outputs[0].get("type") in COLUMN_TYPES:
        output = _column(root, outputs[0])
    return Signature(inputs=columns, output=output)


def _specs(root: Path, text: Any, part: str) -> list[dict[str, Any]]:
    try:
        specs = json.loads(text) if isinstance(text, str) else text
    except ValueError as exc:
        raise RegistryError(f"The {MLMODEL} file in {root} has signature {part} that are not "
                            f"JSON ({exc}); pass signature= to import_mlflow_model.") from None
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        raise RegistryError(f"The {MLMODEL} file in {root} has signature {part} {text!r}, not a "
                            "list of column specs; pass signature= to import_mlflow_model.")
    return specs


def _column(root: Path, spec: dict[str, Any]) -> Column:
    kind = spec.get("type")
    if kind not in COLUMN_TYPES:
        raise RegistryError(
            f"Column {spec.get('name')!r} of the MLflow model in {root} has type {kind!r}, which "
            f"mlwright cannot map (it maps {', '.join(COLUMN_TYPES)}); pass signature= to "
            "import_mlflow_model.")
    return Column(str(spec["name"]), COLUMN_TYPES[kind], True)


def _plain(value: dict[str, Any]) -> dict[str, Any]:
    """YAML gives datetimes for unquoted timestamps; lineage is JSON."""
    return {k: v if isinstance(v, str | int | float | bool) or v is None else str(v)
            for k, v in value.items()}
