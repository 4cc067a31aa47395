"""The artifact store: the conformance suite on a local folder, file:// and memory://."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from mlwright.errors import ArtifactError
from mlwright.store import ArtifactStore
from mlwright.testing.artifact_conformance import ArtifactStoreConformance


class TestLocalArtifactStore(ArtifactStoreConformance):
    def make_store(self, tmp_path: Path) -> ArtifactStore:
        return ArtifactStore(str(tmp_path / "artifacts"))


class TestFileUrlArtifactStore(ArtifactStoreConformance):
    def make_store(self, tmp_path: Path) -> ArtifactStore:
        return ArtifactStore((tmp_path / "artifacts").as_uri())


class TestMemoryArtifactStore(ArtifactStoreConformance):
    def make_store(self, tmp_path: Path) -> ArtifactStore:
        # The memory filesystem is shared by the whole process: one fresh root per test.
        return ArtifactStore(f"memory://artifacts-{uuid.uuid4().hex}")


def test_layout_is_sha256_prefix_digest(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path))
    digest = store.put_bytes(b"hello")
    assert store.local_path(digest) == tmp_path / "sha256" / digest[:2] / digest
    assert ArtifactStore(f"memory://layout-{uuid.uuid4().hex}").local_path(digest) is None


def test_construction_touches_nothing(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "not-yet"))
    assert list(store.digests()) == []
    assert not (tmp_path / "not-yet").exists()


def test_unknown_protocols_are_refused() -> None:
    with pytest.raises(ArtifactError, match="Cannot use the artifact store at 'nosuchfs://x'"):
        ArtifactStore("nosuchfs://x")


def test_write_errors_are_artifact_errors(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("a file where the store folder should be")
    store = ArtifactStore(str(tmp_path / "file" / "store"))
    with pytest.raises(ArtifactError, match="Cannot write to the artifact store"):
        store.put_bytes(b"x")
