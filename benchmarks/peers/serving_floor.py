"""The floor of the serving benchmark: the least a Python server can do to serve the model.

Run by ``benchmarks/serving.py`` with the project's Python (it needs only lightgbm, numpy,
starlette, uvicorn, uvloop, httptools and orjson): one uvicorn worker on uvloop with the
httptools parser, no access log, and one Starlette route, ``POST /predict``, that takes the
benchmark's body ``{"records": [{"f0": ..., ..., "f19": ...}, ...]}``, puts the records in a
float64 array in the model's feature order, calls ``Booster.predict`` on it in the event loop
(no thread hop) and answers ``{"predictions": [...]}`` with orjson. Nothing else: no
validation beyond what a missing key or a wrong type raises (an error answers 400), no auth,
no logging, no metrics. ``GET /health`` answers 200 once the model is loaded.

    python benchmarks/peers/serving_floor.py --model model.txt --port 8000
"""

from __future__ import annotations

import argparse

import lightgbm as lgb
import numpy as np
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def build_app(model_file: str) -> Starlette:
    booster = lgb.Booster(model_file=model_file)
    features = booster.feature_name()

    async def predict(request: Request) -> Response:
        try:
            records = orjson.loads(await request.body())["records"]
            rows = np.array([[record[name] for name in features] for record in records],
                            dtype=np.float64)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            return Response(orjson.dumps({"error": str(exc)}), status_code=400,
                            media_type="application/json")
        predictions = np.asarray(booster.predict(rows))
        return Response(orjson.dumps({"predictions": predictions.tolist()}),
                        media_type="application/json")

    async def health(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return Starlette(routes=[Route("/predict", predict, methods=["POST"]),
                             Route("/health", health, methods=["GET"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="LightGBM model text file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(build_app(args.model), host=args.host, port=args.port, loop="uvloop",
                http="httptools", workers=1, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
