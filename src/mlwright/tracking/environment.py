"""What a run records about where it ran: Python, platform, packages, and the code's git state."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any


@cache  # the installed packages do not change under a running process
def environment() -> dict[str, Any]:
    """Python version, platform and every installed distribution with its version."""
    packages: dict[str, str] = {}
    for dist in metadata.distributions():
        meta = dist.metadata  # parsed once per distribution (dist.version would parse again)
        name = meta["Name"]
        if name:
            packages[name.lower()] = meta["Version"]
    return {"python": platform.python_version(), "implementation": platform.python_implementation(),
            "platform": platform.platform(), "executable": sys.executable,
            "packages": dict(sorted(packages.items()))}


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, timeout=10,
                              check=False)
    except (OSError, subprocess.SubprocessError):  # no git on this machine
        return None
    return done.stdout.decode(errors="replace") if done.returncode == 0 else None


def code_version(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The git commit of the code at ``path`` (a file or folder; default: the current folder),
    whether tracked files differ from it, and the sha256 of that difference.

    >>> code_version(".")["commit"]               # doctest: +SKIP
    '50456e0...'
    """
    where = Path(path) if path is not None else Path.cwd()
    folder = where if where.is_dir() else where.parent
    # Two processes, not four: rev-parse answers all three questions at once.
    facts = _git(folder, "rev-parse", "--show-toplevel", "HEAD", "--abbrev-ref", "HEAD")
    if facts is None:  # not a repository (or a repository without a commit yet)
        return {"git": False, "path": str(where)}
    top, commit, branch = [*facts.splitlines(), "", "", ""][:3]
    diff = _git(folder, "diff", "HEAD", "--no-color") or ""
    return {"git": True, "path": str(where), "repository": top.strip(),
            "commit": commit.strip() or None, "branch": branch.strip() or None,
            "dirty": bool(diff),
            "diff_sha256": hashlib.sha256(diff.encode()).hexdigest() if diff else None}
