"""Exporting a version as one self-contained bundle and importing it elsewhere."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from mlwright.cli.main import main
from mlwright.errors import ArtifactError, RegistryError
from mlwright.registry import get_model_version, list_model_versions, load_model, register_model
from mlwright.registry.bundles import export_version, import_bundle
from mlwright.registry.versions import manifest_digest
from mlwright.store import Model, ModelVersion
from mlwright.workspace import WORKSPACE_ENV, Workspace, init_workspace

GATES = {"passed": True, "results": [{"gate_id": "metric_threshold(auc>=0.7)", "blocking": True,
                                      "passed": True, "message": "auc 0.91 ≥ 0.7"}]}


def loans(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.gamma(4.0, 15_000.0, n)
    debt = rng.uniform(0, 40_000, n)
    approved = (income / 1000 - debt / 2000 + rng.normal(0, 5, n)) > 40
    return pd.DataFrame({"income": income, "debt": debt, "approved": approved})


def booster(frame: pd.DataFrame) -> lgb.Booster:
    return lgb.train({"objective": "binary", "num_leaves": 7, "verbose": -1, "seed": 1},
                     lgb.Dataset(frame[["income", "debt"]], frame["approved"].astype(int)),
                     num_boost_round=15)


@pytest.fixture
def other(tmp_path: Path) -> Iterator[Workspace]:
    """A second workspace, somewhere else: where bundles are imported."""
    ws = init_workspace(tmp_path / "elsewhere")
    yield ws
    ws.close()


@pytest.fixture
def registered(workspace: Workspace) -> str:
    frame = loans()
    v = register_model("approvals", booster(frame), training_data=frame, label="approved",
                       metrics={"auc": 0.91}, params={"num_leaves": 7}, gates=GATES,
                       description="loan approvals", workspace=workspace)
    return v.ref


@pytest.fixture
def bundle(workspace: Workspace, registered: str, tmp_path: Path) -> Path:
    return export_version(registered, tmp_path / "approvals-1.tar.gz", workspace=workspace).path


@pytest.fixture(scope="module")
def shared_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One bundle for the tests that only take it apart (made once, on SQLite)."""
    root = tmp_path_factory.mktemp("source")
    with init_workspace(root / "ws") as ws:
        frame = loans()
        register_model("approvals", booster(frame), training_data=frame, label="approved",
                       workspace=ws)
        return export_version("approvals@1", root / "approvals-1.tar.gz", workspace=ws).path


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as archive:
        return {m.name: archive.extractfile(m).read()  # type: ignore[union-attr]
                for m in archive.getmembers() if m.isreg()}


def pack(path: Path, files: dict[str, bytes], *special: tarfile.TarInfo) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for info in special:
            archive.addfile(info)
    return path


def edited(files: dict[str, bytes], change: Callable[[dict[str, Any]], None]) -> dict[str, bytes]:
    manifest = json.loads(files["manifest.json"])
    change(manifest)
    return {**files, "manifest.json": json.dumps(manifest).encode()}


def counts(ws: Workspace) -> tuple[int, int, int]:
    with ws.db.session() as session:
        models = session.execute(select(func.count()).select_from(Model)).scalar()
        versions = session.execute(select(func.count()).select_from(ModelVersion)).scalar()
    return int(models or 0), int(versions or 0), len(list(ws.artifacts.digests()))


def test_a_bundle_imported_elsewhere_is_the_same_version(workspace: Workspace, registered: str,
                                                         bundle: Path, other: Workspace) -> None:
    original = get_model_version(registered, workspace=workspace)
    files = members(bundle)
    assert sorted(files) == ["files/model.txt", "manifest.json"]
    manifest = json.loads(files["manifest.json"])
    assert (manifest["format"], manifest["format_version"]) == ("mlwright-model-bundle", 1)
    assert (manifest["model"], manifest["version"], manifest["flavor"]) == ("approvals", 1,
                                                                            "lightgbm")
    assert manifest["mlwright_version"]
    assert manifest["files"] == [{"path": "model.txt", "size": len(files["files/model.txt"]),
                                  "sha256": hashlib.sha256(files["files/model.txt"]).hexdigest()}]

    imported = import_bundle(bundle, workspace=other)
    assert (imported.ref, imported.flavor) == ("approvals@1", "lightgbm")
    for field in ("flavor_meta", "signature", "metrics", "params", "gates", "gates_passed",
                  "description", "manifest_digest", "files"):
        assert getattr(imported, field) == getattr(original, field), field
    assert imported.lineage["imported_from"] == {
        "bundle": "approvals-1.tar.gz", "model": "approvals@1",
        "manifest_sha256": hashlib.sha256(files["manifest.json"]).hexdigest(),
        "mlwright_version": manifest["mlwright_version"]}
    assert imported.lineage["origin"] == original.lineage
    assert imported.lineage["datasets"] == []  # the original's datasets live in the other workspace

    frame = loans(seed=5)
    np.testing.assert_allclose(load_model("approvals@1", workspace=other).predict(frame),
                               load_model(registered, workspace=workspace).predict(frame))


def test_a_scikit_learn_bundle_predicts_the_same(workspace: Workspace, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = loans()
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(
        frame[["income", "debt"]], frame["approved"])
    register_model("clf", model, training_data=frame, label="approved", workspace=workspace)
    bundle = export_version("clf@1", tmp_path, workspace=workspace)  # a folder: NAME-N.tar.gz
    assert bundle.path == tmp_path / "clf-1.tar.gz" and bundle.files == 1
    copy = import_bundle(bundle.path, "clf-copy", workspace=workspace)
    assert (copy.ref, copy.flavor) == ("clf-copy@1", "sklearn")
    test = loans(seed=9)
    np.testing.assert_allclose(load_model("clf-copy@1", workspace=workspace).predict(test),
                               model.predict_proba(test[["income", "debt"]])[:, 1])


def test_importing_twice_makes_two_versions_that_share_files(bundle: Path,
                                                             other: Workspace) -> None:
    first = import_bundle(bundle, workspace=other)
    stored = counts(other)[2]
    second = import_bundle(bundle, workspace=other)
    assert (first.version, second.version) == (1, 2)
    assert first.files == second.files and first.manifest_digest == second.manifest_digest
    assert counts(other) == (1, 2, stored)  # no new artifact: the files are content-addressed
    assert [v.version for v in list_model_versions("approvals", workspace=other)] == [2, 1]


def test_export_writes_the_same_bytes_and_nothing_half_written(workspace: Workspace,
                                                               registered: str, bundle: Path,
                                                               tmp_path: Path) -> None:
    again = export_version(registered, tmp_path / "again.tar.gz", workspace=workspace)
    assert again.path.read_bytes() == bundle.read_bytes()
    assert again.manifest_sha256 == hashlib.sha256(members(bundle)["manifest.json"]).hexdigest()
    with pytest.raises(RegistryError, match=r"Cannot write the bundle of approvals@1 to .*nowhere"):
        export_version(registered, tmp_path / "nowhere" / "b.tar.gz", workspace=workspace)
    # A stored file that no longer hashes to its digest is refused, and no bundle is left.
    (entry,) = get_model_version(registered, workspace=workspace).files.values()
    stored = workspace.artifacts.local_path(entry["digest"])
    assert stored is not None
    stored.write_bytes(stored.read_bytes().replace(b"tree", b"TREE", 1))
    with pytest.raises(ArtifactError, match="corrupted"):
        export_version(registered, tmp_path / "bad.tar.gz", workspace=workspace)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".gz" or "partial" in p.name) \
        == ["again.tar.gz", "approvals-1.tar.gz"]


def test_an_altered_file_is_refused_before_anything_is_registered(shared_bundle: Path,
                                                                  other: Workspace,
                                                                  tmp_path: Path) -> None:
    files = members(shared_bundle)
    expected = hashlib.sha256(files["files/model.txt"]).hexdigest()
    changed = files["files/model.txt"].replace(b"tree", b"TREE", 1)
    altered = pack(tmp_path / "altered.tar.gz", {**files, "files/model.txt": changed})
    before = counts(other)
    with pytest.raises(RegistryError) as caught:
        import_bundle(altered, workspace=other)
    message = str(caught.value)
    assert str(altered) in message and "files/model.txt does not match its manifest" in message
    assert f"expected sha256 {expected}" in message
    assert f"got {hashlib.sha256(changed).hexdigest()}" in message
    assert counts(other) == before  # no model, no version, not one stored file


def _set_file(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(manifest: dict[str, Any]) -> None:
        manifest["files"][0][key] = value
        if key == "sha256":  # a manifest that is consistent with itself, lying about the file
            entry = manifest["files"][0]
            manifest["manifest_digest"] = manifest_digest({entry["path"]: {"digest": value}})
            manifest["flavor_meta"]["files"] = {entry["path"]: value}
    return change


@pytest.mark.parametrize(("change", "message"), [
    (_set_file("sha256", "0" * 64), r"files/model\.txt does not match its manifest: expected "
                                    r"sha256 0{64}"),
    (_set_file("size", 3), r"files/model\.txt does not match its manifest: .*\(3 bytes\), got"),
    (_set_file("path", "../model.txt"), r"path '\.\./model\.txt', which would land outside"),
    (_set_file("path", "/etc/model.txt"), r"path '/etc/model\.txt', which would land outside"),
    (_set_file("sha256", "XYZ"), r"sha256 of 'model\.txt' is 'XYZ'"),
    (lambda m: m.update(manifest_digest="f" * 64), r"manifest_digest f{64} does not match"),
    (lambda m: m["flavor_meta"].update(files={"model.txt": "e" * 64}),
     r"lightgbm flavor recorded 'model\.txt' with sha256 e{64}"),
    (lambda m: m.update(format_version=2, mlwright_version="9.0"),
     r"format version 2, written by mlwright 9\.0; .* upgrade mlwright"),
    (lambda m: m.update(format="zipped-model"), r"is not an mlwright model bundle"),
    (lambda m: m.update(flavor="keras"), r"flavor 'keras' is none of"),
    (lambda m: m.update(metrics={"auc": "high"}), r"metric 'auc' is 'high', expected a number"),
    (lambda m: m.pop("model"), r"'model' is None, expected a model name"),
    (lambda m: m.update(signature={"columns": []}), r"its signature cannot be read"),
    (lambda m: m["files"].append(dict(m["files"][0])), r"it lists 'model\.txt' twice"),
], ids=["sha256", "size", "dotdot-path", "absolute-path", "bad-sha", "manifest-digest",
        "flavor-meta", "newer-format", "not-a-bundle", "unknown-flavor", "bad-metric",
        "no-model", "bad-signature", "listed-twice"])
def test_a_manifest_that_does_not_hold_together_is_refused(
        shared_bundle: Path, other: Workspace, tmp_path: Path,
        change: Callable[[dict[str, Any]], None], message: str) -> None:
    altered = pack(tmp_path / "altered.tar.gz", edited(members(shared_bundle), change))
    before = counts(other)
    with pytest.raises(RegistryError, match=message) as caught:
        import_bundle(altered, workspace=other)
    assert str(altered) in str(caught.value)
    assert counts(other) == before


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize(("extra", "special", "message"), [
    ({"../evil.txt": b"x"}, None, r"path '\.\./evil\.txt', which would land outside"),
    ({"files/../../evil.txt": b"x"}, None, r"which would land outside"),
    ({"/tmp/evil.txt": b"x"}, None, r"path '/tmp/evil\.txt', which would land outside"),
    ({}, _link("files/escape", "/etc/passwd", tarfile.SYMTYPE), r"'files/escape', which is a link"),
    ({}, _link("files/hard", "/etc/passwd", tarfile.LNKTYPE), r"'files/hard', which is a link"),
    ({}, _link("files/pipe", "", tarfile.FIFOTYPE), r"'files/pipe', which is not a plain file"),
    ({"files/extra.bin": b"x"}, None, r"holds files/extra\.bin, which its manifest does not list"),
    ({"README": b"hi"}, None, r"holds 'README', which is no part of an mlwright bundle"),
], ids=["dotdot", "nested-dotdot", "absolute", "symlink", "hardlink", "fifo", "unlisted",
        "stray-entry"])
def test_an_archive_that_could_escape_or_smuggle_is_refused(
        shared_bundle: Path, other: Workspace, tmp_path: Path, extra: dict[str, bytes],
        special: tarfile.TarInfo | None, message: str) -> None:
    altered = pack(tmp_path / "altered.tar.gz", {**members(shared_bundle), **extra},
                   *([special] if special else []))
    before = counts(other)
    with pytest.raises(RegistryError, match=message):
        import_bundle(altered, workspace=other)
    assert counts(other) == before
    assert not (tmp_path / "evil.txt").exists()


def test_missing_duplicated_and_unreadable_bundles(shared_bundle: Path, other: Workspace,
                                                   tmp_path: Path) -> None:
    bundle = shared_bundle
    files = members(bundle)
    cases = {
        "missing": ({"manifest.json": files["manifest.json"]},
                    r"is missing files/model\.txt, which its manifest lists"),
        "no-manifest": ({"files/model.txt": files["files/model.txt"]}, r"has no manifest\.json"),
    }
    for label, (content, message) in cases.items():
        with pytest.raises(RegistryError, match=message):
            import_bundle(pack(tmp_path / f"{label}.tar.gz", content), workspace=other)
    twice = tmp_path / "twice.tar.gz"
    with tarfile.open(twice, "w:gz") as archive:
        for name, data in [*files.items(), ("files/model.txt", b"other")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    with pytest.raises(RegistryError, match=r"holds 'files/model\.txt' twice"):
        import_bundle(twice, workspace=other)
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(RegistryError, match=r"garbage\.tar\.gz cannot be read"):
        import_bundle(garbage, workspace=other)
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(bundle.read_bytes()[: bundle.stat().st_size // 2])
    with pytest.raises(RegistryError, match=r"truncated\.tar\.gz cannot be read"):
        import_bundle(truncated, workspace=other)
    with pytest.raises(RegistryError, match=r"No bundle at .*absent\.tar\.gz"):
        import_bundle(tmp_path / "absent.tar.gz", workspace=other)
    assert counts(other)[:2] == (0, 0)


def test_cli_export_and_import(workspace: Workspace, registered: str, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(WORKSPACE_ENV, raising=False)
    init_workspace(tmp_path / "target").close()

    def cli(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["mlwright", *args])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    out = tmp_path / "b.tar.gz"
    code, text, _ = cli("-w", str(workspace.root), "model", "export", registered, "-o", str(out),
                        "--json")
    assert code == 0
    exported = json.loads(text)
    assert (exported["ref"], exported["path"], exported["files"]) == (registered, str(out), 1)
    code, text, _ = cli("-w", str(tmp_path / "target"), "model", "import", str(out), "--name",
                        "approvals-copy", "--json")
    assert code == 0
    imported = json.loads(text)
    assert imported["ref"] == "approvals-copy@1"
    assert imported["lineage"]["imported_from"]["manifest_sha256"] == exported["manifest_sha256"]
    code, text, err = cli("-w", str(tmp_path / "target"), "model", "import", str(out))
    assert code == 0 and "approvals@1" in text and "approvals-copy" not in text
    code, _, err = cli("-w", str(tmp_path / "target"), "model", "import", str(tmp_path / "no.tgz"))
    assert code == 2 and "No bundle at" in err
