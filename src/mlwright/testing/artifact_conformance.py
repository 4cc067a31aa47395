"""The conformance suite every artifact store backend passes.

Subclass :class:`ArtifactStoreConformance` in a test module and say how to build a fresh,
empty store; pytest collects the inherited tests::

    class TestLocalArtifactStore(ArtifactStoreConformance):
        def make_store(self, tmp_path: Path) -> ArtifactStore:
            return ArtifactStore(str(tmp_path / "artifacts"))

A backend that needs other fixtures (a server, credentials) overrides the ``store``
fixture instead of ``make_store``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from mlwright.errors import ArtifactError
from mlwright.store.artifacts import ArtifactStore, check_digest

BAD_KEYS = [
    "",
    "../../etc/passwd",
    "a" * 63,
    "a" * 65,
    "A" * 64,
    "ab/" + "c" * 61,
    "/" + "a" * 63,
    "a" * 64 + "\n",
    "g" * 64,
    " " + "a" * 63,
    "sha256:" + "a" * 57,
]


class ArtifactStoreConformance:
    """What every artifact store must do; subclasses provide :meth:`make_store`."""

    def make_store(self, tmp_path: Path) -> ArtifactStore:
        """A new, empty store for one test."""
        raise NotImplementedError("subclasses say how to build the store under test")

    @pytest.fixture
    def store(self, tmp_path: Path) -> ArtifactStore:
        return self.make_store(tmp_path)

    @staticmethod
    def stored_files(store: ArtifactStore) -> list[str]:
        """Every file under the store's root (objects and anything left behind)."""
        if not store.fs.exists(store.root):
            return []
        return sorted(str(path) for path in store.fs.find(store.root))

    def test_round_trip(self, store: ArtifactStore) -> None:
        data = b"mlwright \x00\xff artifact"
        digest = store.put_bytes(data)
        assert digest == hashlib.sha256(data).hexdigest()
        assert store.exists(digest)
        assert store.get_bytes(digest) == data
        assert store.size(digest) == len(data)
        store.verify(digest)
        with store.open_verified(digest) as reader:
            assert reader.read() == data

    def test_empty_object(self, store: ArtifactStore) -> None:
        digest = store.put_bytes(b"")
        assert store.get_bytes(digest) == b""
        assert store.size(digest) == 0

    def test_put_is_idempotent(self, store: ArtifactStore) -> None:
        first = store.put_bytes(b"same")
        assert store.put_bytes(b"same") == first
        assert list(store.digests()) == [first]

    def test_put_file_streams_a_large_file(self, store: ArtifactStore, tmp_path: Path) -> None:
        source = tmp_path / "big.bin"
        data = os.urandom(3 * (1 << 20) + 12345)  # spans several 1 MiB chunks
        source.write_bytes(data)
        digest = store.put_file(source)
        assert digest == hashlib.sha256(data).hexdigest()
        assert store.put_file(source) == digest
        assert store.get_bytes(digest) == data
        assert store.size(digest) == len(data)

    def test_put_file_of_a_missing_file(self, store: ArtifactStore, tmp_path: Path) -> None:
        with pytest.raises(ArtifactError, match="Cannot read"):
            store.put_file(tmp_path / "nope.bin")

    def test_tampered_bytes_are_refused(self, store: ArtifactStore) -> None:
        digest = store.put_bytes(b"the original content")
        store.fs.pipe_file(store.object_path(digest), b"the tampered content")
        with pytest.raises(ArtifactError, match=r"sha256:[0-9a-f]{12}… .*is corrupted: expected"):
            store.get_bytes(digest)
        with pytest.raises(ArtifactError, match="is corrupted"):
            store.verify(digest)
        with pytest.raises(ArtifactError, match="is corrupted"), store.open_verified(digest) as reader:
            reader.read()

    def test_a_truncated_object_is_rewritten_by_the_next_put(self, store: ArtifactStore) -> None:
        digest = store.put_bytes(b"0123456789")
        store.fs.pipe_file(store.object_path(digest), b"01234")
        assert store.put_bytes(b"0123456789") == digest
        assert store.get_bytes(digest) == b"0123456789"

    @pytest.mark.parametrize("key", BAD_KEYS)
    def test_bad_keys_are_refused(self, store: ArtifactStore, key: str) -> None:
        with pytest.raises(ArtifactError, match="is not a sha256 digest"):
            check_digest(key)
        for method in (store.exists, store.get_bytes, store.verify, store.size, store.delete,
                       store.local_path, store.open_verified):
            with pytest.raises(ArtifactError, match="is not a sha256 digest"):
                method(key)

    def test_missing_object(self, store: ArtifactStore) -> None:
        digest = hashlib.sha256(b"never stored").hexdigest()
        assert not store.exists(digest)
        for method in (store.get_bytes, store.verify, store.size, store.open_verified):
            with pytest.raises(ArtifactError, match="is missing from"):
                method(digest)

    def test_delete(self, store: ArtifactStore) -> None:
        keep, drop = store.put_bytes(b"keep"), store.put_bytes(b"drop")
        store.delete(drop)
        store.delete(drop)  # deleting a missing object is fine
        assert not store.exists(drop)
        assert store.exists(keep)
        assert list(store.digests()) == [keep]

    def test_digests_lists_every_object_sorted(self, store: ArtifactStore) -> None:
        assert list(store.digests()) == []
        digests = {store.put_bytes(f"object {n}".encode()) for n in range(20)}
        assert list(store.digests()) == sorted(digests)

    def test_no_temporary_files_are_left_behind(self, store: ArtifactStore, tmp_path: Path) -> None:
        source = tmp_path / "file.bin"
        source.write_bytes(b"x" * 5000)
        digests = {store.put_bytes(b"a"), store.put_bytes(b"a"), store.put_file(source)}
        expected = sorted(store.object_path(d) for d in digests)
        assert [p for p in self.stored_files(store) if "/sha256/" in p] == expected
        assert [p for p in self.stored_files(store) if "/sha256/" not in p] == []

    def test_concurrent_puts_of_the_same_content(self, store: ArtifactStore) -> None:
        data = os.urandom(200_000)
        results: list[str] = []
        errors: list[BaseException] = []

        def put() -> None:
            try:
                results.append(store.put_bytes(data))
            except BaseException as exc:  # collected and re-raised in the test thread
                errors.append(exc)

        threads = [threading.Thread(target=put) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert set(results) == {hashlib.sha256(data).hexdigest()}
        assert store.get_bytes(results[0]) == data

    def test_local_path_is_the_object_or_none(self, store: ArtifactStore) -> None:
        data = b"for duckdb"
        digest = store.put_bytes(data)
        path = store.local_path(digest)
        if path is not None:
            assert path.read_bytes() == data
            assert path.name == digest
            with pytest.raises(ArtifactError, match="is missing from"):
                store.local_path(hashlib.sha256(b"other").hexdigest())
