"""Where a run ran: Python, packages, and the git state of its code."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

from mlwright.tracking import code_version, environment, get_run, start_run
from mlwright.workspace import Workspace


def git(folder: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(folder), "-c", "user.name=Test",
                           "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false",
                           *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_environment_names_python_and_the_installed_packages() -> None:
    env = environment()
    assert env["python"] == platform.python_version()
    assert env["implementation"] == platform.python_implementation()
    import pyarrow

    assert env["packages"]["pyarrow"] == pyarrow.__version__
    assert "mlwright" in env["packages"] and "sqlalchemy" in env["packages"]
    assert list(env["packages"]) == sorted(env["packages"])


def test_code_version_of_a_git_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    train = repo / "train.py"
    train.write_text("print('v1')\n", encoding="utf-8")
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "first")
    commit = git(repo, "rev-parse", "HEAD")

    clean = code_version(train)
    assert clean == {"git": True, "path": str(train), "repository": str(repo.resolve()),
                     "commit": commit, "branch": "main", "dirty": False, "diff_sha256": None}
    (repo / "notes.txt").write_text("untracked\n", encoding="utf-8")
    assert code_version(repo)["dirty"] is False  # only changes to tracked files count

    train.write_text("print('v2')\n", encoding="utf-8")
    dirty = code_version(repo)
    assert dirty["dirty"] is True and dirty["commit"] == commit
    assert len(dirty["diff_sha256"]) == 64
    train.write_text("print('v3')\n", encoding="utf-8")
    assert code_version(repo)["diff_sha256"] != dirty["diff_sha256"]


def test_code_version_outside_git(tmp_path: Path) -> None:
    assert code_version(tmp_path) == {"git": False, "path": str(tmp_path)}


def test_a_run_records_environment_and_code_version(workspace: Workspace, tmp_path: Path) -> None:
    with start_run(code_path=tmp_path, workspace=workspace) as run:
        pass
    info = get_run(run.id, workspace=workspace)
    assert info.environment["python"] == platform.python_version()
    assert info.code_version == {"git": False, "path": str(tmp_path)}
    assert info.to_dict(environment=False).keys() == info.to_dict().keys() - {"environment"}
