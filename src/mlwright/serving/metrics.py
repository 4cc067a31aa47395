"""Prometheus metrics of the inference server, per model and version.

>>> metrics = ServingMetrics()
>>> metrics.observe("delays", 3, rows=1, latency_ms=0.4)
>>> b"mlwright_requests_total" in metrics.render()[0]
True

Served on ``/metrics``. With several workers the supervisor sets
``PROMETHEUS_MULTIPROC_DIR`` before they start, and prometheus-client then keeps each
worker's values in a shared folder that any worker aggregates when scraped.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    0.5, 1.0, 2.5)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


class ServingMetrics:
    """The server's counters and histograms, in a registry of its own (not the global one,
    so that two servers in one process, as in tests, do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["model", "version"]
        self.requests = Counter("mlwright_requests", "Prediction requests answered.",
                                labels, registry=self.registry)
        self.rows = Counter("mlwright_predicted_rows", "Rows predicted.", labels,
                            registry=self.registry)
        self.latency = Histogram("mlwright_request_latency_seconds",
                                 "Time from a request's arrival to its answer.", labels,
                                 buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.batch_rows = Histogram("mlwright_batch_rows", "Rows per predict call (dynamic "
                                    "batching).", labels, buckets=_BATCH_BUCKETS,
                                    registry=self.registry)
        self.errors = Counter("mlwright_request_errors", "Requests answered with an error, by "
                              "status code.", ["model", "version", "code"],
                              registry=self.registry)
        self.loaded = Gauge("mlwright_model_version", "The version each served model answers "
                            "with.", ["model"], registry=self.registry,
                            multiprocess_mode="liveall")
        self._children: dict[tuple[str, int], tuple[Any, Any, Any, Any]] = {}

    def _for(self, model: str, version: int) -> tuple[Any, Any, Any, Any]:
        children = self._children.get((model, version))
        if children is None:
            labels = (model, str(version))
            children = (self.requests.labels(*labels), self.rows.labels(*labels),
                        self.latency.labels(*labels), self.batch_rows.labels(*labels))
            self._children[(model, version)] = children
        return children

    def observe(self, model: str, version: int, rows: int, latency_ms: float) -> None:
        requests, predicted, latency, _ = self._for(model, version)
        requests.inc()
        predicted.inc(rows)
        latency.observe(latency_ms / 1000)

    def batch(self, model: str, version: int, rows: int) -> None:
        self._for(model, version)[3].observe(rows)

    def error(self, model: str, code: int, version: int | None = None) -> None:
        """An error answer; ``version`` is the served one (none for an unknown model)."""
        self.errors.labels(model, "-" if version is None else str(version), str(code)).inc()

    def model_loaded(self, model: str, version: int) -> None:
        self.loaded.labels(model).set(version)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type (all workers' values when several)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
