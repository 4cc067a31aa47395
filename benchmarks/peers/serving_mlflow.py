"""The MLflow peer of the serving benchmark: ``mlflow models serve`` of the logged model.

Run by ``benchmarks/serving.py`` with the Python of ``benchmarks/.venvs/serving-mlflow``
(MLflow pinned in ``benchmarks/requirements-serving-mlflow.txt``; never the project's
environment). It loads the benchmark's LightGBM model (``--model``, the text file
``Booster.save_model`` wrote), logs it with ``mlflow.lightgbm.log_model`` in a run of a local
file store (``--store``; MLflow 3 wants ``MLFLOW_ALLOW_FILE_STORE=true`` for it), with a
signature of the 20 float64 columns (so MLflow checks the input against it, as it does for
any model logged with one) and ``pip_requirements`` given (no inference subprocess), then
replaces itself (``exec``) by

    mlflow models serve -m <the logged model's URI> --env-manager local -w 1 -h HOST -p PORT

so that the process the benchmark started (and pinned to a core) is the server. The server
answers ``POST /invocations`` with ``{"predictions": [...]}``; the benchmark sends both of
MLflow's JSON forms: ``{"dataframe_split": {"columns": [...], "data": [[...], ...]}}`` and
``{"inputs": [{"f0": ..., ...}, ...]}`` (records). Readiness: ``GET /ping``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import warnings
from importlib.metadata import version
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="LightGBM model text file")
    parser.add_argument("--store", required=True, help="folder for MLflow's file store")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    store = Path(args.store).resolve()
    store.mkdir(parents=True, exist_ok=True)
    os.environ["MLFLOW_TRACKING_URI"] = store.as_uri()
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")

    import lightgbm as lgb
    import mlflow
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature

    booster = lgb.Booster(model_file=args.model)
    names = booster.feature_name()
    sample = pd.DataFrame(np.random.default_rng(0).standard_normal((100, len(names))),
                          columns=names)
    signature = infer_signature(sample, booster.predict(sample))
    mlflow.set_experiment("serving-benchmark")
    with mlflow.start_run():
        info = mlflow.lightgbm.log_model(
            booster, name="model", signature=signature,
            pip_requirements=[f"lightgbm=={lgb.__version__}"])
    print(f"logged {info.model_uri} (MLflow {mlflow.__version__}, "
          f"lightgbm {version('lightgbm')})", file=sys.stderr, flush=True)
    bin_dir = str(Path(sys.executable).parent)  # MLflow runs `uvicorn` from the PATH
    os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    mlflow_cli = shutil.which("mlflow", path=bin_dir) or "mlflow"
    os.execv(mlflow_cli, [mlflow_cli, "models", "serve", "-m", info.model_uri,
                          "--env-manager", "local", "-w", "1", "-h", args.host,
                          "-p", str(args.port)])


if __name__ == "__main__":
    main()
