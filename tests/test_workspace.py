"""Workspaces and settings: creation, discovery, layering, and the ways they go wrong."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import mlwright
from mlwright.config import resolve_metadata_url, resolve_settings
from mlwright.errors import ConfigError, StoreError, WorkspaceNotFoundError
from mlwright.workspace import find_root, init_workspace, open_workspace


def test_init_creates_the_workspace_and_is_idempotent(tmp_path: Path, database_url: str) -> None:
    root = tmp_path / "ws"
    with init_workspace(root, metadata_url=database_url) as ws:
        assert (root / "mlwright.toml").is_file()
        assert (root / ".mlwright").is_dir()
        assert ws.metadata_url == database_url
        assert "metadata_url" in (root / "mlwright.toml").read_text()
    with init_workspace(root) as again:  # reads the url back from mlwright.toml
        assert again.metadata_url == database_url
        events = mlwright.audit_log(workspace=again)
    assert [e["action"] for e in events] == ["workspace.initialized"]


def test_the_default_workspace_is_sqlite_inside_the_folder(tmp_path: Path) -> None:
    with init_workspace(tmp_path / "ws") as ws:
        assert ws.metadata_url == f"sqlite:///{tmp_path / 'ws' / '.mlwright' / 'metadata.db'}"
        assert ws.artifact_url == str(tmp_path / "ws" / ".mlwright" / "artifacts")
        ws.db.check()
    assert (tmp_path / "ws" / ".mlwright" / "metadata.db").is_file()


def test_a_failed_init_leaves_nothing_behind(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    with pytest.raises(StoreError, match=r"Cannot reach the metadata database at "
                                         r"postgresql\+psycopg://postgres@127\.0\.0\.1:5999/x"):
        init_workspace(root, metadata_url="postgresql://postgres@127.0.0.1:5999/x")
    assert not root.exists()


def test_init_refuses_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ConfigError, match="it is a file, not a folder"):
        init_workspace(target)


def test_workspaces_are_found_upwards_or_by_name(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    init_workspace(tmp_path / "ws").close()
    nested = tmp_path / "ws" / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    monkeypatch.delenv("MLWRIGHT_WORKSPACE", raising=False)
    assert find_root() == (tmp_path / "ws").resolve()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(WorkspaceNotFoundError, match="run `mlwright init` here"):
        find_root()
    monkeypatch.setenv("MLWRIGHT_WORKSPACE", str(tmp_path / "ws"))
    assert open_workspace().root == (tmp_path / "ws").resolve()
    with pytest.raises(WorkspaceNotFoundError, match="No mlwright workspace at"):
        open_workspace(tmp_path / "elsewhere")


def test_settings_resolve_in_layers_with_their_origins(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mlwright.toml").write_text('actor = "toml"\nsample_failures = 3\n'
                                            'artifact_url = "s3://bucket/x"\n')
    monkeypatch.setenv("MLWRIGHT_ACTOR", "env")
    monkeypatch.setenv("MLWRIGHT_SAMPLE_FAILURES", "7")
    resolved = resolve_settings(tmp_path, overrides={"sample_failures": 9, "actor": None})
    settings, origins = resolved.settings, resolved.origins
    assert (settings.actor, origins["actor"]) == ("env", "environment")
    assert (settings.sample_failures, origins["sample_failures"]) == (9, "command line")
    assert (settings.artifact_url, origins["artifact_url"]) == ("s3://bucket/x",
                                                                str(tmp_path / "mlwright.toml"))
    assert origins["metadata_url"] == "default"


@pytest.mark.parametrize(("toml", "message"), [
    ('metdata_url = "x"\n', "Unknown setting 'metdata_url' in "),
    ("sample_failures = -1\n", "Setting 'sample_failures' from "),
    ("actor = \n", "is not valid TOML"),
])
def test_bad_settings_are_one_line_errors(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "mlwright.toml").write_text(toml)
    with pytest.raises(ConfigError) as caught:
        resolve_settings(tmp_path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_bad_environment_values_name_the_environment(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLWRIGHT_SAMPLE_FAILURES", "many")
    with pytest.raises(ConfigError, match="Setting 'sample_failures' from environment"):
        resolve_settings(tmp_path)


def test_relative_sqlite_urls_resolve_against_the_root(tmp_path: Path) -> None:
    assert resolve_metadata_url(tmp_path, "sqlite:///db/m.db") == f"sqlite:///{tmp_path}/db/m.db"
    assert resolve_metadata_url(tmp_path, "sqlite:////abs/m.db") == "sqlite:////abs/m.db"
    assert resolve_metadata_url(tmp_path, "sqlite://") == "sqlite://"
    url = "postgresql://u@h/db"
    assert resolve_metadata_url(tmp_path, url) == url


def test_importing_mlwright_is_lazy_and_fast() -> None:
    code = ("import sys, time; t = time.perf_counter(); import mlwright; "
            "heavy = [m for m in ('duckdb', 'pyarrow', 'sqlalchemy', 'pandas') if m in sys.modules];"
            "print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    assert "register_dataset" in dir(mlwright)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mlwright.nope  # noqa: B018
