"""The inference server's settings: one typed object, filled from `mlwright serve`'s flags.

>>> ServeSettings(workers=2, max_wait_us=500).max_wait_us
500
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ServeSettings(BaseModel):
    """How `mlwright serve` runs: where it listens, how it batches, what it limits and logs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    grpc_port: int = Field(default=0, ge=0, le=65535, description="0: no gRPC listener.")
    workers: int = Field(default=1, ge=1, le=256)
    auth: bool = Field(default=True, description="Require an API token (off: local use only).")
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_request_rows: int = Field(default=10_000, ge=1, description="Rows in one request.")
    max_batch_rows: int = Field(default=256, ge=1, description="Rows in one predict call.")
    max_wait_us: int = Field(default=1000, ge=0, description="Longest a request waits for "
                             "company before its batch is predicted.")
    rate_limit: float = Field(default=0.0, ge=0, description="Requests per second per token "
                              "(0: no limit).")
    rate_burst: int = Field(default=100, ge=1)
    log_predictions: bool = True
    log_flush_seconds: float = Field(default=1.0, gt=0, le=60)
    response_cache: int = Field(default=0, ge=0, description="Responses kept per model, keyed "
                                "by the input's hash (0: off).")
    follow_seconds: float = Field(default=2.0, gt=0, description="How often the registry is "
                                  "asked whether an alias moved.")
    drain_seconds: float = Field(default=30.0, ge=0, description="How long SIGTERM waits for "
                                 "in-flight requests.")
