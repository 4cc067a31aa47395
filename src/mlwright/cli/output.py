"""Printing for the CLI: rich tables for people, JSON for scripts, errors on stderr."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from mlwright.errors import MlwrightError

console = Console()
err_console = Console(stderr=True)

_BLOCKS = "▁▂▃▄▅▆▇█"


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def sparkline(counts: list[int], width: int = 10) -> str:
    """A histogram as one line of at most ``width`` block characters."""
    step = max(1, -(-len(counts) // width))
    counts = [sum(counts[i : i + step]) for i in range(0, len(counts), step)]
    top = max(counts) if counts else 0
    if not top:
        return ""
    return "".join(_BLOCKS[min(len(_BLOCKS) - 1, (c * (len(_BLOCKS) - 1) + top - 1) // top)]
                   if c else " " for c in counts)


def short(value: Any, width: int = 24, digits: int = 6) -> str:
    """A value shortened for a table cell, with rich markup escaped."""
    if value is None:
        return "—"
    text = f"{value:.{digits}g}" if isinstance(value, float) else str(value)
    return escape(text if len(text) <= width else text[: width - 1] + "…")


def human_bytes(size: int) -> str:
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} TiB"  # pragma: no cover


def brief(value: Any) -> str:
    """A detail value for one table cell: hashes shortened, long text cut."""
    text = str(value)
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return text[:12]
    return text if len(text) <= 40 else text[:39] + "…"


def write_whole(path: Path, write: Callable[[Path], object], what: str) -> None:
    """Write ``path`` through ``write(temporary path)`` then rename it into place, so that a
    failure never leaves half a file; an OSError becomes a one-line MlwrightError."""
    partial = path.with_name(path.name + ".partial")
    try:
        write(partial)
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise MlwrightError(f"Cannot write {what} to {path}: {exc.strerror or exc}.") from None
