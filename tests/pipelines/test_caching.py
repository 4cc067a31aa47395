"""Caching by content: what re-runs, what comes from the cache, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mlwright.pipelines import records
from mlwright.workspace import Workspace

from . import flows


def test_first_run_runs_every_step_and_an_unchanged_rerun_runs_none(workspace: Workspace,
                                                                   log: str) -> None:
    first = flows.chain.run(workspace=workspace, log=log, executor="inline")
    assert first.status == "succeeded"
    assert (first.ran, first.cached) == (["load", "scale", "total"], [])
    assert first.summary() == "3 steps: 3 ran, 0 cached"
    assert first.output() == {"total": 20.0, "rows": 5}

    again = flows.chain.run(workspace=workspace, log=log)
    assert (again.ran, again.cached) == ([], ["load", "scale", "total"])
    assert again.summary() == "3 steps: 0 ran, 3 cached (nothing to do)"
    assert again.output() == first.output()
    assert again.run_id != first.run_id
    assert flows.ran(log) == ["load", "scale", "total"]  # nothing executed the second time
    stored = records.get_run(workspace, again.run_id)
    assert stored.status == "succeeded"
    assert [s.status for s in stored.steps] == ["cached"] * 3
    assert [s.cache_key for s in stored.steps] == [s.cache_key for s in first.steps]


def test_a_changed_parameter_reruns_only_the_steps_downstream_of_it(workspace: Workspace,
                                                                    log: str) -> None:
    flows.chain.run(workspace=workspace, log=log, executor="inline")
    changed = flows.chain.run(workspace=workspace, log=log, factor=3.0, executor="inline")
    assert (changed.ran, changed.cached) == (["scale", "total"], ["load"])
    assert changed.summary() == "3 steps: 2 ran, 1 cached"
    assert changed.output() == {"total": 30.0, "rows": 5}
    more_rows = flows.chain.run(workspace=workspace, log=log, n=6, factor=3.0, executor="inline")
    assert (more_rows.ran, more_rows.cached) == (["load", "scale", "total"], [])
    # Back to the first parameters: all of it is still in the cache.
    back = flows.chain.run(workspace=workspace, log=log, executor="inline")
    assert back.ran == []
    assert back.output() == {"total": 20.0, "rows": 5}
    assert flows.ran(log) == ["load", "scale", "total", "scale", "total", "load", "scale", "total"]


def test_an_uncached_step_runs_every_time(workspace: Workspace, log: str) -> None:
    first = flows.with_uncached.run(workspace=workspace, log=log, executor="inline")
    second = flows.with_uncached.run(workspace=workspace, log=log, executor="inline")
    assert (first.ran, second.ran, second.cached) == (["load", "stamp"], ["stamp"], ["load"])
    assert second.output() == 3
    assert second.summary() == "2 steps: 1 ran, 1 cached"
    assert flows.ran(log) == ["load", "stamp", "stamp"]


def test_bumping_a_step_version_reruns_it(workspace: Workspace, log: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    version_one = flows.noted
    first = flows.versioned.run(workspace=workspace, log=log, executor="inline")
    assert first.ran == ["noted"]
    assert flows.versioned.run(workspace=workspace, log=log, executor="inline").ran == []
    monkeypatch.setattr(flows, "noted", dataclasses.replace(version_one, version="2"))
    bumped = flows.versioned.run(workspace=workspace, log=log, executor="inline")
    assert (bumped.ran, bumped.output()) == (["noted"], "noted")
    assert bumped.steps[0].cache_key != first.steps[0].cache_key  # same code, another version
    assert flows.versioned.run(workspace=workspace, log=log, executor="inline").ran == []
    monkeypatch.setattr(flows, "noted", version_one)
    assert flows.versioned.run(workspace=workspace, log=log, executor="inline").ran == []
    assert flows.ran(log) == ["noted", "noted"]


def test_pipelines_calling_a_step_with_the_same_inputs_share_its_cache(workspace: Workspace,
                                                                       log: str) -> None:
    flows.chain.run(workspace=workspace, log=log, executor="inline")
    other = flows.shares_load.run(workspace=workspace, log=log, executor="inline")
    assert (other.ran, other.cached) == (["scale"], ["load"])
    assert other.output().column("y").to_pylist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert flows.ran(log) == ["load", "scale", "total", "scale"]


def test_the_default_executor_reuses_the_cache_of_an_inline_run(workspace: Workspace,
                                                                log: str) -> None:
    inline = flows.chain.run(workspace=workspace, log=log, executor="inline")
    pooled = flows.chain.run(workspace=workspace, log=log)  # local process pool
    assert pooled.cached == ["load", "scale", "total"]
    assert pooled.output() == inline.output()
    assert records.get_run(workspace, pooled.run_id).executor == "local"


def test_steps_after_an_uncached_step_rerun_only_when_its_output_changes(
        workspace: Workspace, log: str, tmp_path: Path) -> None:
    text = tmp_path / "words.txt"
    text.write_text("a b c", encoding="utf-8")
    first = flows.counts_words.run(workspace=workspace, path=str(text), log=log, executor="inline")
    assert (first.ran, first.output()) == (["read_text", "word_count"], 3)
    same = flows.counts_words.run(workspace=workspace, path=str(text), log=log, executor="inline")
    assert (same.ran, same.cached, same.output()) == (["read_text"], ["word_count"], 3)
    text.write_text("a b", encoding="utf-8")
    new = flows.counts_words.run(workspace=workspace, path=str(text), log=log)  # local pool
    assert (new.ran, new.cached, new.output()) == (["read_text", "word_count"], [], 2)
    assert new.steps[1].cache_key not in (first.steps[1].cache_key, "")
    assert flows.ran(log) == ["read_text", "word_count", "read_text", "read_text", "word_count"]
