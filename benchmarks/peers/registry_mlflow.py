"""The peer of the registry benchmark: MLflow's model registry on one store, timed like mlwright.

Run by ``benchmarks/registry.py`` with the Python of ``benchmarks/.venvs/pipelines`` (never
the project's), once per store (``--uri``: ``sqlite:///…`` for MLflow's SQLAlchemy store on
SQLite, ``file:/…`` for its file store, ``postgresql://…`` on PostgreSQL; the same URI is
the tracking and the registry URI). Artifacts go to a local folder (``--artifacts``, the
experiment's artifact location). It loads the benchmark's LightGBM model from ``--model``
(the text file ``Booster.save_model`` wrote, the same one mlwright registers), predicts the
rows of ``--frame`` (Parquet) with what it loads, and prints one JSON object: every
repetition's time of each operation, in seconds, the creation time of the 1,000 versions,
the predictions (written to ``--predictions``, ``.npy``) and what the checks found.

The operations (the store is created and migrated, the experiment created, before any
timing; the first repetition of each is a warm-up, not reported; ``--repeats`` timed
repetitions of the two ``register`` and of ``list``, ``--quick-repeats`` of the others, which
take milliseconds):

* ``register``: ``mlflow.lightgbm.log_model(booster, name="model",
  registered_model_name=NAME, signature=...)`` in an active run (the run is started before
  and ended after the timer): saving the model folder (MLmodel, model file, environment
  files; pip requirements inferred, MLflow's default), copying it into the artifact store,
  creating the logged model and the registered version;
* ``register_reqs``: the same with ``pip_requirements`` given, which skips the inference
  (a subprocess that loads the model): MLflow's fastest way to log and register;
* ``create_version``: ``client.create_model_version(NAME, source, run_id, model_id=...)`` of
  the model already logged: the registry's own cost, no file written;
* ``set_alias``: ``client.set_registered_model_alias(NAME, "champion", version)``;
* ``resolve``: ``client.get_model_version_by_alias(NAME, "champion")``;
* ``load``: ``mlflow.lightgbm.load_model("models:/NAME@champion")`` (resolves the alias,
  copies the model folder out of the artifact store into a temporary folder, reads the
  Booster: every load does all of it, MLflow keeps no cache);
* ``load_pyfunc``: ``mlflow.pyfunc.load_model`` of the same URI;
* ``create_1000``: 1,000 ``create_model_version`` of a second model from the same logged
  model (timed once, in total);
* ``list``: every one of the 1,000 versions by ``client.search_model_versions("name='…'",
  max_results=--page-size)``, following ``next_page_token`` to the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import sys
import time
import warnings
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

# MLflow 3.x refuses the file store (in "maintenance mode") unless this is set.
os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature

NAME = "flights_delay"
LIST_NAME = "flights_delay_list"
ALIAS = "champion"

Times = dict[str, list[float]]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def repeat(times: Times, name: str, fn: Callable[[], Any], repeats: int) -> Any:
    """Run ``fn`` once as a warm-up and ``repeats`` times timed; return its last value."""
    value = fn()
    for _ in range(repeats):
        seconds, value = timed(fn)
        times.setdefault(name, []).append(seconds)
    return value


def search_all(client: MlflowClient, name: str, page_size: int) -> tuple[list[Any], int]:
    """Every version of ``name`` through ``search_model_versions``, page by page."""
    found: list[Any] = []
    pages = 0
    token: str | None = None
    while True:
        page = client.search_model_versions(f"name='{name}'", max_results=page_size,
                                            page_token=token)
        pages += 1
        found.extend(page)
        token = page.token
        if not token:
            return found, pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uri", required=True, help="MLflow tracking and registry URI")
    parser.add_argument("--artifacts", required=True, help="folder for the artifact store")
    parser.add_argument("--model", required=True, help="LightGBM model text file")
    parser.add_argument("--frame", required=True, help="Parquet: rows to predict")
    parser.add_argument("--predictions", required=True, help="where to write predictions (.npy)")
    parser.add_argument("--repeats", type=int, default=7, help="for register and list")
    parser.add_argument("--quick-repeats", type=int, default=25,
                        help="for create_version, set_alias, resolve and the loads")
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--page-size", type=int, default=1000)
    args = parser.parse_args()
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")

    booster = lgb.Booster(model_file=args.model)
    frame = pd.read_parquet(args.frame)
    signature = infer_signature(frame.head(100), booster.predict(frame.head(100)))
    requirements = [f"lightgbm=={lgb.__version__}"]

    def setup() -> str:
        mlflow.set_tracking_uri(args.uri)
        mlflow.set_registry_uri(args.uri)
        return str(MlflowClient().create_experiment(
            "registry-bench", artifact_location=Path(args.artifacts).resolve().as_uri()))

    setup_s, experiment_id = timed(setup)
    client = MlflowClient()
    times: Times = {}
    problems: list[str] = []

    def log_and_register(**extra: Any) -> Callable[[], Any]:
        def register() -> Any:
            mlflow.start_run(experiment_id=experiment_id)
            try:
                seconds, info = timed(lambda: mlflow.lightgbm.log_model(
                    booster, name="model", registered_model_name=NAME, signature=signature,
                    **extra))
            finally:
                mlflow.end_run()
            return seconds, info
        return register

    for name, fn in (("register", log_and_register()),
                     ("register_reqs", log_and_register(pip_requirements=requirements))):
        fn()  # warm-up
        for _ in range(args.repeats):
            seconds, info = fn()
            times.setdefault(name, []).append(seconds)
    logged = client.get_model_version(NAME, str(info.registered_model_version))
    source, run_id, model_id = logged.source, logged.run_id, info.model_id

    repeat(times, "create_version", lambda: client.create_model_version(
        NAME, source, run_id, model_id=model_id), args.quick_repeats)
    champion = "1"
    repeat(times, "set_alias", lambda: client.set_registered_model_alias(NAME, ALIAS, champion),
           args.quick_repeats)
    resolved = repeat(times, "resolve", lambda: client.get_model_version_by_alias(NAME, ALIAS),
                      args.quick_repeats)
    if str(resolved.version) != champion:
        problems.append(f"resolve: {NAME}@{ALIAS} gave version {resolved.version}")

    uri = f"models:/{NAME}@{ALIAS}"
    model = repeat(times, "load", lambda: mlflow.lightgbm.load_model(uri), args.quick_repeats)
    pyfunc = repeat(times, "load_pyfunc", lambda: mlflow.pyfunc.load_model(uri),
                    args.quick_repeats)
    predictions = np.asarray(model.predict(frame))
    via_pyfunc = np.asarray(pyfunc.predict(frame))
    if not np.array_equal(predictions, via_pyfunc):
        problems.append("pyfunc predictions differ from the Booster's")
    if not np.array_equal(predictions, booster.predict(frame)):
        problems.append("loaded model's predictions differ from the original Booster's")
    np.save(args.predictions, predictions)

    def create_many() -> None:
        for _ in range(args.versions):
            client.create_model_version(LIST_NAME, source, run_id, model_id=model_id)

    client.create_registered_model(LIST_NAME)
    create_s, _ = timed(create_many)
    listed, pages = repeat(times, "list", lambda: search_all(client, LIST_NAME, args.page_size),
                           args.repeats)
    numbers = sorted(int(v.version) for v in listed)
    if numbers != list(range(1, args.versions + 1)):
        problems.append(f"list: {len(listed)} versions found, {args.versions} created")

    json.dump({"tool": "mlflow", "version": version("mlflow"),
               "lightgbm": lgb.__version__, "sqlalchemy": version("sqlalchemy"),
               "pandas": pd.__version__, "numpy": np.__version__,
               "python": sys.version.split()[0], "sqlite": sqlite3.sqlite_version,
               "uri_scheme": args.uri.split(":", 1)[0], "setup_s": setup_s,
               "repeats": args.repeats, "quick_repeats": args.quick_repeats, "times": times,
               "create_many_s": create_s,
               "versions": args.versions, "pages": pages, "page_size": args.page_size,
               "model_files": sorted(p.name for p in Path(
                   mlflow.artifacts.download_artifacts(uri)).iterdir()),
               "problems": problems}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
