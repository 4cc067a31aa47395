"""Typed settings, resolved in layers: defaults < mlwright.toml < MLWRIGHT_* environment < flags.

Settings are read once, at the edge (the CLI or ``open_workspace``), and passed down as a
value; nothing reads configuration at import time.

>>> resolved = resolve_settings(Path("."), overrides={"actor": "ci"})  # doctest: +SKIP
>>> resolved.settings.actor, resolved.origins["actor"]                   # doctest: +SKIP
('ci', 'command line')
"""

from __future__ import annotations

import getpass
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

from mlwright.errors import ConfigError

CONFIG_FILE = "mlwright.toml"
STATE_DIR = ".mlwright"
ENV_PREFIX = "MLWRIGHT_"


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. in a bare container
        return "unknown"


class Settings(BaseSettings):
    """Everything a workspace can be configured with.

    Relative paths (in ``artifact_url`` and a ``sqlite:///`` ``metadata_url``) are relative to
    the workspace root.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    metadata_url: str = Field(
        default=f"sqlite:///{STATE_DIR}/metadata.db",
        description="SQLAlchemy URL of the metadata database (SQLite or PostgreSQL).",
    )
    artifact_url: str = Field(
        default=f"{STATE_DIR}/artifacts",
        description="Where artifacts live: a local folder or any fsspec URL (s3://, gs://, ...).",
    )
    actor: str = Field(
        default_factory=_default_actor,
        description="Who is acting; written to the audit log.",
    )
    sample_failures: int = Field(
        default=5, ge=0, le=1000, description="Sample failing rows shown per contract rule."
    )
    online_url: str = Field(
        default=f"sqlite:///{STATE_DIR}/online.db",
        description="The online feature store: sqlite:///PATH (embedded) or redis://HOST:PORT/DB.",
    )
    online_prefix: str = Field(
        default="mlwright", min_length=1, max_length=128,
        description="Key prefix of this workspace's features in a shared Redis online store.",
    )
    offline_memory_limit: str = Field(
        default="2GB",
        description="DuckDB memory limit for historical retrieval and materialization; "
        "larger inputs spill to disk.",
    )
    offline_join: Literal["auto", "memory", "spill"] = Field(
        default="auto",
        description="How historical retrieval joins: in memory (polars) when the views' rows "
        "fit in a third of offline_memory_limit (auto), always in memory (memory), or always "
        "as a DuckDB join that spills to disk (spill).",
    )


@dataclass(frozen=True)
class ResolvedSettings:
    """Settings plus where each value came from (``default``, the toml file, env, flags)."""

    settings: Settings
    origins: dict[str, str]


def read_toml(path: Path) -> dict[str, Any]:
    """Read a workspace's mlwright.toml; a missing file is an empty layer."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}. Fix the file.") from None
    except OSError as exc:
        raise ConfigError(f"Cannot read {path}: {exc.strerror}.") from None


def _first_error(exc: ValidationError, origins: dict[str, str]) -> str:
    error = exc.errors()[0]
    key = ".".join(str(part) for part in error["loc"]) or "settings"
    where = origins.get(key, "settings")
    if error["type"] == "extra_forbidden":
        known = ", ".join(Settings.model_fields)
        return f"Unknown setting '{key}' in {where} (known: {known})."
    return f"Setting '{key}' from {where} is invalid: {error['msg']} (got {error.get('input')!r})."


def resolve_settings(root: Path, overrides: dict[str, Any] | None = None) -> ResolvedSettings:
    """Resolve the settings of the workspace at ``root`` with their origins."""
    toml_path = root / CONFIG_FILE
    layers: list[tuple[str, dict[str, Any]]] = [
        (str(toml_path), read_toml(toml_path)),
        ("environment", {k: v for k, v in EnvSettingsSource(Settings)().items() if v is not None}),
        ("command line", {k: v for k, v in (overrides or {}).items() if v is not None}),
    ]
    merged: dict[str, Any] = {}
    origins = {name: "default" for name in Settings.model_fields}
    for origin, values in layers:
        for key, value in values.items():
            merged[key] = value
            origins[key] = origin
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_first_error(exc, origins)) from None
    return ResolvedSettings(settings=settings, origins=origins)


def resolve_path(root: Path, value: str) -> str:
    """Make a relative local path absolute against ``root``; leave URLs alone."""
    if "://" in value:
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else root / path)


def resolve_metadata_url(root: Path, url: str) -> str:
    """Make a relative ``sqlite:///`` path absolute against ``root``."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://":
        rest = url[len(prefix) :]
        if rest and rest != ":memory:":
            return prefix + str(root / rest)
    return url
