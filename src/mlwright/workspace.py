"""A workspace: a folder with ``mlwright.toml`` and the stores it names.

>>> ws = init_workspace("demo")          # doctest: +SKIP
>>> ws = open_workspace()                # finds mlwright.toml here or in a parent folder
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlwright.config import (
    CONFIG_FILE,
    STATE_DIR,
    ResolvedSettings,
    Settings,
    resolve_metadata_url,
    resolve_path,
    resolve_settings,
)
from mlwright.errors import ConfigError, MlwrightError, WorkspaceNotFoundError
from mlwright.store import ArtifactStore, Database, connect, record_event

WORKSPACE_ENV = "MLWRIGHT_WORKSPACE"


@dataclass
class Workspace:
    """Resolved settings plus lazily opened stores (nothing connects until first use)."""

    root: Path
    resolved: ResolvedSettings
    _db: Database | None = field(default=None, repr=False)
    _artifacts: ArtifactStore | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        return self.resolved.settings

    @property
    def metadata_url(self) -> str:
        return resolve_metadata_url(self.root, self.settings.metadata_url)

    @property
    def artifact_url(self) -> str:
        return resolve_path(self.root, self.settings.artifact_url)

    @property
    def db(self) -> Database:
        """The metadata database, connected and migrated on first use."""
        if self._db is None:
            self._db = connect(self.metadata_url)
        return self._db

    @property
    def online_url(self) -> str:
        return resolve_metadata_url(self.root, self.settings.online_url)

    @property
    def features_dir(self) -> str:
        """Where the workspace keeps feature data it owns (pushed rows): beside the artifacts."""
        return self.artifact_url.rstrip("/").rsplit("/", 1)[0] + "/features" \
            if "://" in self.artifact_url else str(Path(self.artifact_url).parent / "features")

    @property
    def predictions_dir(self) -> str:
        """The prediction log (Parquet, per model and hour): beside the artifacts."""
        return self.artifact_url.rstrip("/").rsplit("/", 1)[0] + "/predictions" \
            if "://" in self.artifact_url else str(Path(self.artifact_url).parent / "predictions")

    @property
    def feedback_dir(self) -> str:
        """Labels sent for logged predictions (Parquet, per hour): beside the artifacts."""
        return self.artifact_url.rstrip("/").rsplit("/", 1)[0] + "/feedback" \
            if "://" in self.artifact_url else str(Path(self.artifact_url).parent / "feedback")

    @property
    def artifacts(self) -> ArtifactStore:
        if self._artifacts is None:
            self._artifacts = ArtifactStore(self.artifact_url)
        return self._artifacts

    @property
    def actor(self) -> str:
        return self.settings.actor

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()
            self._db = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def find_root(path: str | os.PathLike[str] | None = None) -> Path:
    """The workspace folder: ``path`` (or $MLWRIGHT_WORKSPACE) exactly, else the nearest
    folder holding mlwright.toml from the current directory up."""
    explicit = path if path is not None else os.environ.get(WORKSPACE_ENV)
    if explicit:
        root = Path(explicit).expanduser().resolve()
        if not (root / CONFIG_FILE).is_file():
            raise WorkspaceNotFoundError(
                f"No mlwright workspace at {root} (no {CONFIG_FILE} there); run "
                f"`mlwright init {explicit}` first or point --workspace at an existing one."
            )
        return root
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise WorkspaceNotFoundError(
        f"No mlwright workspace in {here} or any parent folder (no {CONFIG_FILE}); run "
        "`mlwright init` here or pass --workspace DIR."
    )


def open_workspace(
    path: str | os.PathLike[str] | None = None, *, overrides: dict[str, Any] | None = None
) -> Workspace:
    """Open an existing workspace; ``overrides`` win over every other settings layer."""
    root = find_root(path)
    return Workspace(root=root, resolved=resolve_settings(root, overrides))


def as_workspace(workspace: Workspace | str | os.PathLike[str] | None) -> Workspace:
    """What public functions accept as ``workspace=``: an open one, a folder, or None (find)."""
    return workspace if isinstance(workspace, Workspace) else open_workspace(workspace)


def _toml_line(key: str, value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{key} = "{escaped}"\n'


def init_workspace(
    path: str | os.PathLike[str] = ".",
    *,
    metadata_url: str | None = None,
    artifact_url: str | None = None,
) -> Workspace:
    """Create (or re-open) a workspace: mlwright.toml, .mlwright/, a migrated database.

    Idempotent: on an existing workspace it only checks and migrates. If anything fails,
    whatever this call created is removed again.
    """
    root = Path(path).expanduser().resolve()
    config = root / CONFIG_FILE
    if config.is_file():
        workspace = open_workspace(root)
        workspace.db  # noqa: B018 - connects and migrates
        return workspace
    if root.exists() and not root.is_dir():
        raise ConfigError(f"Cannot create a workspace at {root}: it is a file, not a folder.")
    created: list[Path] = [p for p in (root, root / STATE_DIR) if not p.exists()]
    lines = ["# mlwright workspace settings; MLWRIGHT_* environment variables override them.\n"]
    if metadata_url:
        lines.append(_toml_line("metadata_url", metadata_url))
    if artifact_url:
        lines.append(_toml_line("artifact_url", artifact_url))
    try:
        (root / STATE_DIR).mkdir(parents=True, exist_ok=True)
        config.write_text("".join(lines), encoding="utf-8")
        created.append(config)
        workspace = open_workspace(root)
        workspace.artifacts  # noqa: B018 - validates the URL
        with workspace.db.session() as session:
            record_event(session, actor=workspace.actor, action="workspace.initialized",
                         object_type="workspace", object_ref=str(root),
                         details={"metadata_url": workspace.metadata_url,
                                  "artifact_url": workspace.artifact_url})
        return workspace
    except (MlwrightError, OSError) as exc:
        for item in reversed(created):
            if item.is_dir():
                shutil.rmtree(item, ignore_errors=True)
            else:
                item.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ConfigError(f"Cannot create a workspace at {root}: {exc.strerror}.") from None
        raise
