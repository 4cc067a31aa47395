"""The `mlwright` command, run in-process through its real entry point, and as a process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

CONTRACT = """\
name: tx
columns:
  id: {type: int64, not_null: true, unique: true}
  amount: {range: {min: 0, max: 100}}
  kind: {allowed: [a, b], regex: {pattern: '^a', severity: warn}}
table:
  row_count: {min: 1}
"""


@pytest.fixture
def cli(run_cli: Any) -> Any:
    return run_cli


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"id": [1, 2, 3], "amount": [5.0, 50.0, 99.0],
                             "kind": ["a", "a", "b"]}), good)
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"id": [1, 1, 3], "amount": [5.0, 500.0, -1.0],
                             "kind": ["a", "zz", "b"]}), bad)
    contract = tmp_path / "contract.yaml"
    contract.write_text(CONTRACT)
    return {"good": good, "bad": bad, "contract": contract}


def test_the_whole_flow_on_both_databases(cli, files, database_url: str) -> None:  # type: ignore[no-untyped-def]
    init = cli("--metadata-url", database_url, "init", "ws", "--json")
    assert init.code == 0, init.err
    assert init.json()["created"] is True
    base = ("-w", "ws", "--metadata-url", database_url)
    registered = cli(*base, "data", "register", "tx", str(files["good"]), "--json")
    assert registered.code == 0, registered.err
    assert registered.json()["ref"] == "tx@1"
    assert cli(*base, "data", "register", "tx", str(files["good"]), "--json").json()["created"] is False
    assert cli(*base, "data", "register", "tx", str(files["bad"])).code == 0

    listed = cli(*base, "data", "list", "--json").json()
    assert [(d["name"], d["versions"]) for d in listed] == [("tx", 2)]
    shown = cli(*base, "data", "show", "tx@1", "--json").json()
    assert (shown["num_rows"], shown["versions"]) == (3, [1, 2])
    assert shown["profile"]["columns"]["amount"]["max"] == 99.0
    diff = cli(*base, "data", "diff", "tx@1", "tx@2", "--json").json()
    assert any(c["column"] == "amount" and c["statistic"] == "max" for c in diff["changes"])

    passed = cli(*base, "data", "validate", "tx@1", "--contract", str(files["contract"]), "--json")
    assert passed.code == 0, passed.err
    assert passed.json()["passed"] is True and passed.json()["warnings"] == 1
    failed = cli(*base, "data", "validate", "tx@2", "-c", str(files["contract"]), "--json")
    assert failed.code == 1
    results = {r["rule"]: r for r in failed.json()["results"]}
    assert results["unique(id)"]["failing_rows"] == 2
    assert results["range(amount)"]["failing_rows"] == 2
    assert results["range(amount)"]["first_failing_row"] == 1
    assert results["allowed(kind)"]["samples"][0]["kind"] == "zz"

    assert cli(*base, "data", "attach-contract", "tx", str(files["contract"])).code == 0
    table_report = cli(*base, "data", "validate", "tx")
    assert table_report.code == 1
    assert "FAILED: 3 errors" in table_report.out

    events = cli(*base, "audit", "log", "--json").json()
    assert [e["action"] for e in events][:3] == ["dataset.validated", "contract.attached",
                                                 "dataset.validated"]
    assert cli(*base, "audit", "log", "--action", "dataset.version.registered", "--json").json()[0][
        "object"] == "tx@2"


def test_human_output_reads_well(cli, files) -> None:  # type: ignore[no-untyped-def]
    assert cli("init", "ws").code == 0
    out = cli("-w", "ws", "data", "register", "tx", str(files["good"])).out
    assert "Registered tx@1: 3 rows, 3 columns" in out
    assert "Unchanged: identical content is already tx@1" in cli(
        "-w", "ws", "data", "register", "tx", str(files["good"])).out
    shown = cli("-w", "ws", "data", "show", "tx").out
    assert "Profile" in shown and "amount" in shown
    report = cli("-w", "ws", "data", "validate", "tx", "-c", str(files["contract"])).out
    assert "PASSED: 0 errors, 1 warnings" in report
    assert "Reinitialized existing" in cli("init", "ws").out


def test_config_show_names_the_source_of_each_value(cli, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert cli("init", "ws").code == 0
    Path("ws/mlwright.toml").write_text('sample_failures = 9\nactor = "from-toml"\n')
    monkeypatch.setenv("MLWRIGHT_ACTOR", "from-env")
    settings = {s["key"]: s for s in cli("-w", "ws", "config", "show", "--json").json()["settings"]}
    assert (settings["sample_failures"]["value"], settings["sample_failures"]["source"]) == (
        9, str(Path("ws/mlwright.toml").resolve()))
    assert (settings["actor"]["value"], settings["actor"]["source"]) == ("from-env", "environment")
    assert settings["artifact_url"]["source"] == "default"
    flagged = cli("-w", "ws", "--actor", "from-flag", "config", "show", "--json").json()
    assert {s["key"]: s for s in flagged["settings"]}["actor"]["source"] == "command line"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("data", "list"), "No mlwright workspace in"),
        (("-w", "nowhere", "data", "list"), "No mlwright workspace at"),
    ],
)
def test_a_missing_workspace_is_a_one_line_error(cli, args, message) -> None:  # type: ignore[no-untyped-def]
    result = cli(*args)
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.err
    assert result.err.count("\n") == 1


def test_bad_inputs_exit_2_with_one_line_and_change_nothing(cli, files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert cli("init", "ws").code == 0
    ws = ("-w", "ws")
    broken_csv = tmp_path / "broken.csv"
    broken_csv.write_text("a,b\n1,2\n3,4,5\n")
    fake = tmp_path / "fake.parquet"
    fake.write_text("not parquet")
    unknown_column = tmp_path / "unknown.yaml"
    unknown_column.write_text("name: tx\ncolumns:\n  nope: {not_null: true}\n")
    wrong_type = tmp_path / "wrongtype.yaml"
    wrong_type.write_text("name: tx\ncolumns:\n  id:\n    type: integr\n")
    assert cli(*ws, "data", "register", "tx", str(files["good"])).code == 0
    cases = [
        ((*ws, "data", "register", "x", str(tmp_path / "missing.parquet")), "No file or folder"),
        ((*ws, "data", "register", "x", str(broken_csv)), "Cannot read CSV"),
        ((*ws, "data", "register", "x", str(fake)), "Is it really a Parquet file?"),
        ((*ws, "data", "register", "../x", str(files["good"])), "Dataset name '../x' is not "),
        ((*ws, "data", "validate", "tx", "-c", str(unknown_column)), "names column 'nope'"),
        ((*ws, "data", "attach-contract", "tx", str(unknown_column)), "names column 'nope'"),
        ((*ws, "data", "validate", "tx", "-c", str(wrong_type)), ":4: columns.id.type: unknown "),
        ((*ws, "data", "validate", "tx", "-c", str(tmp_path / "none.yaml")), "does not exist"),
        ((*ws, "data", "validate", "tx"), "has no contract attached"),
        ((*ws, "data", "show", "missing"), "No dataset named 'missing'"),
        ((*ws, "--metadata-url", "postgresql://postgres@127.0.0.1:5999/x", "data", "list"),
         "Cannot reach the metadata database"),
    ]
    for args, message in cases:
        result = cli(*args)
        assert result.code == 2, (args, result.out, result.err)
        assert message in result.err, (args, result.err)
        assert "Traceback" not in result.err
    listed = cli(*ws, "data", "list", "--json").json()
    assert [(d["name"], d["versions"]) for d in listed] == [("tx", 1)]
    actions = [e["action"] for e in cli(*ws, "audit", "log", "--json").json()]
    assert "contract.attached" not in actions


def test_debug_shows_the_traceback(cli) -> None:  # type: ignore[no-untyped-def]
    from mlwright.errors import WorkspaceNotFoundError

    with pytest.raises(WorkspaceNotFoundError):
        cli("--debug", "data", "list")


def test_the_installed_command_runs_as_a_process(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "mlwright.cli.main"]
    done = subprocess.run([*command, "-w", str(tmp_path), "data", "list"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("error: No mlwright workspace at")
    assert "Traceback" not in done.stderr
    help_text = subprocess.run([*command, "--help"], capture_output=True, text=True, check=True)
    assert "data" in help_text.stdout and "audit" in help_text.stdout
