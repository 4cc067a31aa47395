"""`mlwright predict` (a table, in partitions) and `mlwright stream` (a Redis Stream)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mlwright.cli.output import console, err_console, print_json
from mlwright.cli.state import state

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def predict_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model: NAME@ALIAS, NAME@N or NAME (latest).")],
    input: Annotated[str, typer.Option(
        "--input", "-i", help="Dataset NAME@N, or a Parquet file or folder.")],
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="Folder for part-*.parquet and _manifest.json.")],
    partition_rows: Annotated[int, typer.Option(min=1, help="Rows per partition.")] = 100_000,
    workers: Annotated[int, typer.Option(min=1, help="Partitions scored at once.")] = 1,
    executor: Annotated[str, typer.Option(help="local (processes) or ray, with --workers > 1.")]
    = "local",
    id_column: Annotated[str | None, typer.Option(
        help="Input column identifying each row (default: its position, as 'row').")] = None,
    timestamp_column: Annotated[str | None, typer.Option(
        help="Time each row's features are read as of (models with a feature service; "
             "default event_timestamp).")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Start over in an output folder written by another version or "
                            "input.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Score a table with a model version, in partitions (a re-run resumes)."""
    from mlwright.serving.batch import predict_table

    workspace = state(ctx).open()
    try:
        with Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("rows"), TimeElapsedColumn(), console=err_console,
                      transient=True, disable=json_out or not err_console.is_terminal
                      ) as progress:
            task = progress.add_task("scoring", total=None)

            def step(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            summary = predict_table(model, input, output, workspace=workspace,
                                    partition_rows=partition_rows, workers=workers,
                                    executor=executor, id_column=id_column,
                                    timestamp_column=timestamp_column, overwrite=overwrite,
                                    progress=step)
    finally:
        workspace.close()
    if json_out:
        print_json(summary.to_dict())
        return
    table = Table(title=f"Predictions of {summary.ref}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    rate = summary.rows_scored / summary.seconds if summary.seconds else 0.0
    for what, value in (
        ("input", summary.input), ("output", summary.output),
        ("partitions", f"{summary.partitions:,}: {summary.scored:,} scored, "
                       f"{summary.skipped:,} skipped (finished earlier)"),
        ("rows", f"{summary.rows:,} ({summary.rows_scored:,} scored now)"),
        ("time", f"{summary.seconds:.2f} s ({rate:,.0f} rows/s)"),
    ):
        table.add_row(what, escape(value))
    console.print(table)


def stream_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model: NAME@ALIAS (follows the alias), NAME@N "
                                              "or NAME.")],
    source: Annotated[str, typer.Option(help="Events: redis://HOST:PORT/DB/STREAM.")],
    sink: Annotated[str, typer.Option(help="Predictions: redis://HOST:PORT/DB/STREAM.")],
    group: Annotated[str, typer.Option(help="Consumer group.")] = "mlwright",
    consumer: Annotated[str | None, typer.Option(
        help="This consumer's name (default HOST-PID); restart under the same name to "
             "re-read its unacknowledged events.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Events per micro-batch.")] = 256,
    block_ms: Annotated[int, typer.Option(min=1, help="How long one read waits (ms).")] = 1000,
    max_events: Annotated[int | None, typer.Option(min=1, help="Stop after this many.")]
    = None,
    idle_exit: Annotated[bool, typer.Option("--idle-exit", help="Stop when nothing new.")]
    = False,
    dead_letter: Annotated[str | None, typer.Option(
        help="Dead-letter stream: a URL or a key on the source's server (default "
             "SOURCE:dead).")] = None,
    key: Annotated[list[str] | None, typer.Option(
        "--key", help="Event field copied to each prediction (default: the feature "
                      "service's entity keys). Repeat for more.")] = None,
    claim_idle_ms: Annotated[int, typer.Option(
        min=0, help="Claim other consumers' unacknowledged events idle this long (ms).")]
    = 60_000,
    json_out: JsonFlag = False,
) -> None:
    """Score events from a Redis Stream into another (at least once; bad events
    dead-lettered)."""
    from mlwright.serving.stream import StreamAddress, consume

    shown_source = str(StreamAddress.parse(source, "source"))  # without credentials
    shown_sink = str(StreamAddress.parse(sink, "sink"))
    workspace = state(ctx).open()
    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():

        def finish(signum: int, frame: FrameType | None) -> None:
            if stop.is_set():  # asked twice: stop now, leaving this batch unacknowledged
                raise KeyboardInterrupt
            stop.set()

        for number in (signal.SIGINT, signal.SIGTERM):
            previous[number] = signal.signal(number, finish)
    if not json_out:
        err_console.print(f"scoring {escape(shown_source)} with {escape(model)} into "
                          f"{escape(shown_sink)}; Ctrl-C or SIGTERM to stop", soft_wrap=True)
    try:
        stats = consume(model, source, sink, workspace=workspace, group=group,
                        consumer=consumer, batch_size=batch_size, block_ms=block_ms,
                        max_events=max_events, idle_exit=idle_exit, dead_letter=dead_letter,
                        keys=key, claim_idle_ms=claim_idle_ms, stop=stop)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        workspace.close()
    if json_out:
        print_json({**stats.to_dict(), "source": shown_source, "sink": shown_sink})
        return
    versions = ", ".join(str(v) for v in sorted(stats.versions)) or "none"
    console.print(f"Read {stats.read:,} events: {stats.predicted:,} predictions written, "
                  f"{stats.dead:,} dead-lettered, {stats.reclaimed:,} claimed from other "
                  f"consumers (version {versions}).")
