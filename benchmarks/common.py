"""What the benchmarks share: timing, formatting, the MLflow environment, scratch PostgreSQL
databases and a description of the machine. (Benchmarks run as scripts from the repository
root, so ``benchmarks/`` is on the import path and they ``import common``.)"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# MLflow for the pipelines and registry benchmarks, pinned in requirements-pipelines.txt
VENV = HERE / ".venvs" / "pipelines"
REQUIREMENTS = HERE / "requirements-pipelines.txt"


def seconds(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def fmt(value: float | None) -> str:
    """A duration, readable: 3 significant digits in s or ms."""
    if value is None:
        return "-"
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 0.1:
        return f"{value * 1000:.0f} ms"
    if value >= 0.01:
        return f"{value * 1000:.1f} ms"
    return f"{value * 1000:.2f} ms"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def ensure_venv(name: str | None = None, requirements: Path | None = None) -> Path:
    """The Python of a peer's environment, built from its pinned requirements if missing.

    Without arguments: the MLflow environment (``.venvs/pipelines``); with ``name``:
    ``.venvs/<name>`` from ``requirements`` (default ``requirements-<name>.txt``)."""
    venv = VENV if name is None else HERE / ".venvs" / name
    if requirements is None:
        requirements = REQUIREMENTS if name is None else HERE / f"requirements-{name}.txt"
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating {venv} (pip install -r {requirements.name}) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)],
                       check=True)
    return python


class Postgres:
    """Fresh databases on a PostgreSQL server, dropped again at the end."""

    def __init__(self, server: str) -> None:
        self.server = server.rstrip("/")
        self.created: list[str] = []

    def available(self) -> str | None:
        """The server version, or None when it does not answer."""
        try:
            import psycopg

            with psycopg.connect(f"{self.server}/postgres", connect_timeout=3,
                                 autocommit=True) as conn:
                row = conn.execute("SHOW server_version").fetchone()
                return str(row[0]) if row else "?"
        except Exception:
            return None

    def create(self, prefix: str) -> str:
        import psycopg

        name = f"{prefix}_{os.getpid()}_{int(time.time())}"
        with psycopg.connect(f"{self.server}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return f"{self.server}/{name}"

    def drop_all(self) -> None:
        import psycopg

        with psycopg.connect(f"{self.server}/postgres", autocommit=True) as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()


def machine() -> str:
    memory = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 ** 2:.1f} GiB"
    except OSError:
        pass
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), {memory} memory, {platform.platform()}"


def rss_mb() -> float:
    """The resident set size of this process now, in MB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_rss_mb() -> float:
    """The peak RSS of this process since it started (VmHWM), in MB. Not ``ru_maxrss``: that
    one survives ``exec``, so a child starts with the peak of the parent it was forked from."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


class Report:
    """Prints the report and keeps its lines (for --markdown)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)


def record_run(title: str, script: str, peers: str, *, load_start: str, load_end: str,
               recorded: str, heading: str, verdicts: Sequence[str], lines: Sequence[str],
               markdown: bool, append: bool, log: Callable[[str], None]) -> None:
    """The run as a section of RESULTS.md: printed (``markdown``) and/or appended (``append``).

    ``script`` is the benchmark's path under the repository, ``peers`` says where its peer
    tools came from, ``verdicts`` are the bullet lines under ``heading``, ``lines`` the
    printed report (kept verbatim in a code block)."""
    if not (markdown or append):
        return
    command = " ".join([script, *sys.argv[1:]]).replace(" --append-results", "").replace(
        " --markdown", "")
    import datetime as dt

    section = "\n".join([
        f"## {title} — {dt.date.today().isoformat()}", "",
        f"- Command: `.venv/bin/python {command}` ({peers}).",
        f"- Machine: {machine()}; load averages {load_start} at the start, {load_end} at the end.",
        f"- Recorded: {recorded}.", f"- {heading}:", *verdicts, "", "```", *lines, "```", ""])
    if markdown:
        print("\n" + section)
    if append:
        results = HERE / "RESULTS.md"
        with results.open("a", encoding="utf-8") as file:
            file.write("\n" + section)
        log(f"appended to {results}")
