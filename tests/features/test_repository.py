"""Applying a feature repository: plans, versions, retirement, refusals and the audit log, on
SQLite and PostgreSQL where the metadata database matters."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mlwright.errors import FeatureError
from mlwright.features import Plan, apply_repository, get_historical_features, load_catalog
from mlwright.store import AuditEvent, FeatureDefinition, list_events
from mlwright.workspace import Workspace

from .support import entities, one_line, table, utc, write_parquet, write_repo

DEFS = """
user = Entity("user", join_keys={"user_id": "int64"}, description="a user")
user_stats = FeatureView(
    "user_stats", entities=[user], source=ParquetSource("stats.parquet"),
    timestamp_field="event_timestamp",
    features=[Field("clicks", "float64"), Field("visits", "FEATURE_TYPE")],
    ttl=TTL, owner="OWNER", tags={"team": "growth"}, description="DESCRIPTION")
ranking = FeatureService("ranking", features=[user_stats], owner="ana")
"""


def defs(*, feature_type: str = "float64", ttl: str = "timedelta(hours=48)",
         owner: str = "ana", description: str = "clicks per day") -> str:
    return (DEFS.replace("FEATURE_TYPE", feature_type).replace("TTL", ttl)
            .replace("OWNER", owner).replace("DESCRIPTION", description))


def make_stats_repo(folder: Path, source: str) -> Path:
    write_repo(folder, source)
    if not (folder / "stats.parquet").exists():
        write_parquet(folder / "stats.parquet", table(
            user_id=[1, 2], event_timestamp=[utc(2024, 1, 1), utc(2024, 1, 2)],
            clicks=[1.0, 2.0], visits=[3, 4]))
    return folder


def actions(plan: Plan) -> dict[tuple[str, str], tuple[str, int]]:
    return {(c.kind, c.name): (c.action, c.version) for c in plan.changes}


def definitions(ws: Workspace) -> list[tuple[str, str, int, bool]]:
    with ws.db.session() as session:
        rows = session.execute(select(FeatureDefinition).order_by(
            FeatureDefinition.kind, FeatureDefinition.name, FeatureDefinition.version)).scalars()
        return [(r.kind, r.name, r.version, r.retired_at is not None) for r in rows]


def feature_events(ws: Workspace) -> list[tuple[str, str]]:
    with ws.db.session() as session:
        return [(e.action, e.object_ref) for e in reversed(list_events(session, limit=1000))
                if e.action.startswith("feature.")]


# -- plans and versions (SQLite and PostgreSQL) ---------------------------------------------


def test_apply_creates_version_one_of_everything(db_ws: Workspace, tmp_path: Path) -> None:
    repo = make_stats_repo(tmp_path / "repo", defs())
    plan = apply_repository(repo, workspace=db_ws)
    assert plan.applied
    assert plan.repo == str(repo.resolve())
    assert actions(plan) == {("entity", "user"): ("create", 1),
                             ("view", "user_stats"): ("create", 1),
                             ("service", "ranking"): ("create", 1)}
    assert definitions(db_ws) == [("entity", "user", 1, False), ("service", "ranking", 1, False),
                                  ("view", "user_stats", 1, False)]
    catalog = load_catalog(db_ws)
    view = catalog.view("user_stats")
    assert view.ref == "user_stats@1"
    assert view.view.source.path == str(repo.resolve() / "stats.parquet")  # stored absolute
    assert catalog.services["ranking"]["features"] == ["user_stats:*"]
    assert catalog.entities["user"].join_keys == {"user_id": "int64"}


def test_reapplying_the_same_repository_changes_nothing(db_ws: Workspace, tmp_path: Path) -> None:
    repo = make_stats_repo(tmp_path / "repo", defs())
    apply_repository(repo, workspace=db_ws)
    before = (definitions(db_ws), feature_events(db_ws))
    plan = apply_repository(repo, workspace=db_ws)
    assert {a for a, _ in actions(plan).values()} == {"unchanged"}
    assert plan.changed == []
    assert (definitions(db_ws), feature_events(db_ws)) == before


@pytest.mark.parametrize(("change", "detail"), [
    ({"feature_type": "int64"}, "features"),
    ({"ttl": "timedelta(hours=24)"}, "ttl_seconds"),
    ({"ttl": "None"}, "ttl_seconds"),
])
def test_semantic_change_is_a_new_version_keeping_the_old_one(
        db_ws: Workspace, tmp_path: Path, change: dict[str, str], detail: str) -> None:
    repo = make_stats_repo(tmp_path / "repo", defs())
    apply_repository(repo, workspace=db_ws)
    make_stats_repo(repo, defs(**change))
    plan = apply_repository(repo, workspace=db_ws)
    assert actions(plan)[("view", "user_stats")] == ("new version", 2)
    assert actions(plan)[("entity", "user")] == ("unchanged", 1)
    assert actions(plan)[("service", "ranking")] == ("unchanged", 1)
    assert detail in next(c.detail for c in plan.changes if c.name == "user_stats")
    assert [d for d in definitions(db_ws) if d[0] == "view"] == [
        ("view", "user_stats", 1, False), ("view", "user_stats", 2, False)]
    with db_ws.db.session() as session:
        old, new = session.execute(select(FeatureDefinition).where(
            FeatureDefinition.name == "user_stats").order_by(FeatureDefinition.version)).scalars()
        assert old.fingerprint != new.fingerprint
        assert old.spec["ttl_seconds"] == 48 * 3600  # the old version is kept as it was
        assert old.spec["features"] == [["clicks", "float64"], ["visits", "float64"]]
    assert load_catalog(db_ws).view("user_stats").version == 2
    # the new version reads the source with its new types
    result = get_historical_features(entities([1], [utc(2024, 1, 1, 12)]), ["user_stats:visits"],
                                     workspace=db_ws).to_arrow()
    assert result.column("visits").to_pylist() == [3]


@pytest.mark.parametrize("change", [{"owner": "bob"}, {"description": "clicks, per day"}])
def test_metadata_change_updates_the_current_version(db_ws: Workspace, tmp_path: Path,
                                                     change: dict[str, str]) -> None:
    repo = make_stats_repo(tmp_path / "repo", defs())
    apply_repository(repo, workspace=db_ws)
    make_stats_repo(repo, defs(**change))
    plan = apply_repository(repo, workspace=db_ws)
    assert actions(plan)[("view", "user_stats")] == ("update", 1)
    assert [d for d in definitions(db_ws) if d[0] == "view"] == [("view", "user_stats", 1, False)]
    view = load_catalog(db_ws).view("user_stats").view
    assert (view.owner, view.description) == (change.get("owner", "ana"),
                                              change.get("description", "clicks per day"))
    assert ("feature.view.update", "user_stats@1") in feature_events(db_ws)


def test_tags_change_is_an_update(ws: Workspace, tmp_path: Path) -> None:
    repo = make_stats_repo(tmp_path / "repo", defs())
    apply_repository(repo, workspace=ws)
    make_stats_repo(repo, defs().replace('{"team": "growth"}', '{"team": "ranking", "tier": "1"}'))
    plan = apply_repository(repo, workspace=ws)
    assert actions(plan)[("view", "user_stats")] == ("update", 1)
    assert load_catalog(ws).view("user_stats").view.tags == {"team": "ranking", "tier": "1"}


def test_removing_a_view_retires_it_and_adding_it_back_is_a_new_version(
        db_ws: Workspace, tmp_path: Path) -> None:
    repo = make_stats_repo(tmp_path / "repo", defs())
    apply_repository(repo, workspace=db_ws)
    write_repo(repo, 'user = Entity("user", join_keys={"user_id": "int64"}, '
                     'description="a user")\n')
    plan = apply_repository(repo, workspace=db_ws)
    assert actions(plan) == {("entity", "user"): ("unchanged", 1),
                             ("view", "user_stats"): ("retire", 1),
                             ("service", "ranking"): ("retire", 1)}
    catalog = load_catalog(db_ws)
    assert "user_stats" not in catalog.views and "ranking" not in catalog.services
    with pytest.raises(FeatureError, match="user_stats"):
        get_historical_features(entities([1], [utc(2024, 1, 2)]), ["user_stats:clicks"],
                                workspace=db_ws)
    assert ("feature.view.retired", "user_stats@1") in feature_events(db_ws)

    make_stats_repo(repo, defs())
    plan = apply_repository(repo, workspace=db_ws)
    assert actions(plan)[("view", "user_stats")] == ("create", 2)
    assert load_catalog(db_ws).view("user_stats").version == 2


def test_dry_run_records_nothing(db_ws: Workspace, tmp_path: Path) -> None:
    repo = make_stats_repo(tmp_path / "repo", defs())
    plan = apply_repository(repo, workspace=db_ws, dry_run=True)
    assert not plan.applied
    assert actions(plan)[("view", "user_stats")] == ("create", 1)
    assert definitions(db_ws) == [] and feature_events(db_ws) == []

    apply_repository(repo, workspace=db_ws)
    make_stats_repo(repo, defs(feature_type="int64", owner="bob"))
    before = (definitions(db_ws), feature_events(db_ws))
    plan = apply_repository(repo, workspace=db_ws, dry_run=True)
    assert actions(plan)[("view", "user_stats")] == ("new version", 2)
    assert (definitions(db_ws), feature_events(db_ws)) == before


def test_audit_events_record_every_change(db_ws: Workspace, tmp_path: Path) -> None:
    repo = make_stats_repo(tmp_path / "repo", defs())
    apply_repository(repo, workspace=db_ws)
    make_stats_repo(repo, defs(ttl="timedelta(hours=1)"))
    apply_repository(repo, workspace=db_ws)
    make_stats_repo(repo, defs(ttl="timedelta(hours=1)", owner="bob"))
    apply_repository(repo, workspace=db_ws)
    assert feature_events(db_ws) == [
        ("feature.entity.create", "user@1"), ("feature.view.create", "user_stats@1"),
        ("feature.service.create", "ranking@1"),
        ("feature.view.new_version", "user_stats@2"),
        ("feature.view.update", "user_stats@2"),
    ]
    with db_ws.db.session() as session:
        event = list_events(session, action="feature.view.new_version")[0]
        stored = session.execute(select(FeatureDefinition.fingerprint).where(
            FeatureDefinition.name == "user_stats", FeatureDefinition.version == 2)).scalar_one()
        assert event.details == {"fingerprint": stored}
        assert event.actor == db_ws.actor and event.object_type == "feature_view"


# -- refusals (nothing recorded) ------------------------------------------------------------


def _refused(ws: Workspace, repo: Path) -> str:
    with pytest.raises(FeatureError) as exc:
        apply_repository(repo, workspace=ws)
    with ws.db.session() as session:
        assert session.execute(select(func.count()).select_from(FeatureDefinition)).scalar() == 0
        assert session.execute(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action.like("feature.%"))).scalar() == 0
    return one_line(exc)


def test_a_folder_that_does_not_exist_is_refused(ws: Workspace, tmp_path: Path) -> None:
    assert "nowhere" in _refused(ws, tmp_path / "nowhere")


def test_a_file_instead_of_a_folder_is_refused(ws: Workspace, tmp_path: Path) -> None:
    file = write_repo(tmp_path / "repo", defs()) / "defs.py"
    assert "defs.py" in _refused(ws, file)


def test_a_folder_without_python_files_is_refused(ws: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "README.md").write_text("no definitions here\n")
    (folder / "_private.py").write_text("x = 1\n")  # files starting with _ are skipped
    assert ".py" in _refused(ws, folder)


def test_a_file_that_raises_on_import_is_refused_naming_it(ws: Workspace, tmp_path: Path) -> None:
    repo = make_stats_repo(tmp_path / "repo", defs())
    write_repo(repo, "raise RuntimeError('broken on purpose')\n", file="zz_broken.py")
    message = _refused(ws, repo)
    assert "zz_broken.py" in message and "broken on purpose" in message


def test_a_definition_error_at_import_is_refused(ws: Workspace, tmp_path: Path) -> None:
    repo = make_stats_repo(tmp_path / "repo", defs(feature_type="decimal"))
    assert "decimal" in _refused(ws, repo)


def test_duplicate_view_names_across_files_are_refused(ws: Workspace, tmp_path: Path) -> None:
    repo = make_stats_repo(tmp_path / "repo", defs())
    write_repo(repo, """
        other = FeatureView("user_stats", entities=[Entity("user", join_keys={"user_id": "int64"})],
                            source=ParquetSource("stats.parquet"), timestamp_field="event_timestamp",
                            features=[Field("clicks", "float64")])
        """, file="more.py")
    message = _refused(ws, repo)
    assert "'user_stats'" in message and "defs.py" in message and "more.py" in message


def test_duplicate_view_names_in_one_file_are_refused(ws: Workspace, tmp_path: Path) -> None:
    copy = (defs(ttl="timedelta(hours=1)").replace("ranking = ", "again = ")
            .replace('"ranking"', '"again"').replace("user_stats = ", "copy = "))
    repo = make_stats_repo(tmp_path / "repo", defs() + copy)
    assert "'user_stats'" in _refused(ws, repo)


def test_the_same_entity_declared_in_two_files_is_one_definition(ws: Workspace,
                                                                 tmp_path: Path) -> None:
    repo = make_stats_repo(tmp_path / "repo", defs())
    write_repo(repo, """
        user = Entity("user", join_keys={"user_id": "int64"}, description="a user")
        by_visits = FeatureView("by_visits", entities=[user], source=ParquetSource("stats.parquet"),
                                timestamp_field="event_timestamp", features=[Field("visits", "int64")])
        """, file="more.py")
    plan = apply_repository(repo, workspace=ws)
    assert actions(plan)[("entity", "user")] == ("create", 1)
    assert actions(plan)[("view", "by_visits")] == ("create", 1)


def test_one_view_bound_to_two_names_is_one_definition(ws: Workspace, tmp_path: Path) -> None:
    repo = make_stats_repo(tmp_path / "repo", defs() + "stats_alias = user_stats\n")
    plan = apply_repository(repo, workspace=ws)
    assert actions(plan)[("view", "user_stats")] == ("create", 1)


@pytest.mark.parametrize(("service", "named"), [
    ('FeatureService("bad", features=["user_stats:nope"])', "'nope'"),
    ('FeatureService("bad", features=["ghost:clicks"])', "'ghost'"),
    ('FeatureService("bad", features=["ghost:*"])', "'ghost'"),
])
def test_a_service_naming_an_unknown_feature_is_refused(ws: Workspace, tmp_path: Path,
                                                        service: str, named: str) -> None:
    repo = make_stats_repo(tmp_path / "repo", defs() + f"bad = {service}\n")
    message = _refused(ws, repo)
    assert named in message and "'bad'" in message


def test_a_view_whose_source_does_not_fit_is_refused_before_anything_is_recorded(
        ws: Workspace, tmp_path: Path) -> None:
    source = defs() + """
broken = FeatureView("broken", entities=[user], source=ParquetSource("stats.parquet"),
                     timestamp_field="event_timestamp", features=[Field("missing", "float64")])
"""
    message = _refused(ws, make_stats_repo(tmp_path / "repo", source))
    assert "'missing'" in message and "'broken'" in message


def test_a_missing_source_is_refused(ws: Workspace, tmp_path: Path) -> None:
    repo = write_repo(tmp_path / "repo", defs())
    assert "stats.parquet" in _refused(ws, repo)


def test_an_on_demand_view_reading_a_view_outside_the_repository_is_refused(
        ws: Workspace, tmp_path: Path, make_repo: Callable[..., Path]) -> None:
    make_stats_repo(tmp_path / "other", defs())
    repo = make_repo("""
        import importlib.util, pathlib
        spec = importlib.util.spec_from_file_location(
            "elsewhere", pathlib.Path(__file__).parent.parent / "other" / "defs.py")
        elsewhere = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(elsewhere)

        def double(frame):
            return frame.assign(twice=frame["clicks"] * 2)[["twice"]]

        doubled = OnDemandFeatureView("doubled", sources=[elsewhere.user_stats],
                                      features=[Field("twice", "float64")], transform=double)
        """)
    assert "'user_stats'" in _refused(ws, repo)


# -- on-demand code versions, and the CLI ---------------------------------------------------

ON_DEMAND = """
def double(frame):
    return frame.assign(twice=frame["clicks"] * FACTOR)[["twice"]]


doubled = OnDemandFeatureView("doubled", sources=[user_stats],
                              features=[Field("twice", "float64")], transform=double)
"""


def test_changing_transform_code_is_a_new_on_demand_version(ws: Workspace, tmp_path: Path) -> None:
    repo = make_stats_repo(tmp_path / "repo", defs() + ON_DEMAND.replace("FACTOR", "2"))
    plan = apply_repository(repo, workspace=ws)
    assert actions(plan)[("on_demand", "doubled")] == ("create", 1)
    moment = [utc(2024, 1, 1, 1)]
    result = get_historical_features(entities([1], moment), ["doubled:twice"], workspace=ws)
    assert result.to_arrow().column("twice").to_pylist() == [2.0]

    make_stats_repo(repo, defs() + ON_DEMAND.replace("FACTOR", "3"))
    plan = apply_repository(repo, workspace=ws)
    assert actions(plan)[("on_demand", "doubled")] == ("new version", 2)
    assert actions(plan)[("view", "user_stats")] == ("unchanged", 1)
    result = get_historical_features(entities([1], moment), ["doubled:twice"], workspace=ws)
    assert result.to_arrow().column("twice").to_pylist() == [3.0]


def test_cli_apply_prints_the_plan_and_the_audit_log_shows_it(
        ws: Workspace, tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    repo = make_stats_repo(tmp_path / "repo", defs())
    root = str(ws.root)
    dry = run_cli("--workspace", root, "features", "apply", str(repo), "--dry-run", "--json")
    assert dry.code == 0, dry.err
    assert dry.json()["applied"] is False
    done = run_cli("--workspace", root, "features", "apply", str(repo), "--json")
    assert done.code == 0, done.err
    assert {(c["name"], c["action"], c["version"]) for c in done.json()["changes"]} == {
        ("user", "create", 1), ("user_stats", "create", 1), ("ranking", "create", 1)}
    log = run_cli("--workspace", root, "audit", "log", "--action", "feature.view.create", "--json")
    assert [e["object"] for e in log.json()] == ["user_stats@1"]
    missing = run_cli("--workspace", root, "features", "apply", str(tmp_path / "nowhere"))
    assert missing.code == 2
    assert "nowhere" in missing.err
