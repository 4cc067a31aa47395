"""The BentoML peer of the serving benchmark: the model as a BentoML service, two ways.

Run by ``benchmarks/serving.py`` with ``bentoml serve serving_bentoml:<Service>`` from
``benchmarks/.venvs/serving-bentoml`` (latest BentoML, pinned in
``benchmarks/requirements-serving-bentoml.txt``; never the project's environment), in this
folder (``--working-dir``). The model file is named by the environment variable
``BENCH_MODEL_FILE`` (the text file ``Booster.save_model`` wrote). Both services are what the
BentoML documentation shows for a model loaded in ``__init__`` (the ``@bentoml.service`` API
of BentoML 1.2 and later), one worker, BentoML's defaults otherwise:

* ``LightGBMService``: ``POST /predict`` with ``{"records": [{"f0": ..., ...}, ...]}`` (the
  benchmark's body: BentoML takes the parameter ``records`` from the JSON object and validates
  it against ``list[dict[str, float]]`` with pydantic), the records in a float64 array in the
  model's feature order, ``Booster.predict``, ``{"predictions": [...]}``; a sync API, which
  BentoML runs in a thread;
* ``LightGBMBatched``: the same with adaptive batching, ``@bentoml.api(batchable=True)``
  (its defaults: at most 100 rows a batch, at most 60 s of latency): BentoML queues the
  records of concurrent requests, concatenates them into one list, calls ``predict`` once and
  splits the result; the answer is the request's list of predictions, ``[...]`` (a batchable
  API returns one item per input row).

Readiness: ``GET /readyz``.
"""

from __future__ import annotations

import os

import bentoml
import lightgbm as lgb
import numpy as np

MODEL_FILE = os.environ.get("BENCH_MODEL_FILE", "model.txt")


@bentoml.service(workers=1)
class LightGBMService:
    def __init__(self) -> None:
        self.booster = lgb.Booster(model_file=MODEL_FILE)
        self.features = self.booster.feature_name()

    @bentoml.api
    def predict(self, records: list[dict[str, float]]) -> dict[str, list[float]]:
        rows = np.array([[record[name] for name in self.features] for record in records],
                        dtype=np.float64)
        return {"predictions": self.booster.predict(rows).tolist()}


@bentoml.service(workers=1)
class LightGBMBatched:
    def __init__(self) -> None:
        self.booster = lgb.Booster(model_file=MODEL_FILE)
        self.features = self.booster.feature_name()

    @bentoml.api(batchable=True)
    def predict(self, records: list[dict[str, float]]) -> list[float]:
        rows = np.array([[record[name] for name in self.features] for record in records],
                        dtype=np.float64)
        return list(self.booster.predict(rows).tolist())
