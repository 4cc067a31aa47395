"""The content-addressed artifact store: bytes named by their sha256, over any fsspec backend.

Layout: ``<root>/sha256/<first two hex>/<64 hex>``. A write goes to a temporary name under
``<root>/tmp/`` and is renamed into place, so a reader never sees half an object; a read
re-hashes the bytes, so a corrupted object is refused rather than used.

>>> store = ArtifactStore("/tmp/artifacts")       # doctest: +SKIP
>>> digest = store.put_bytes(b"hello")            # doctest: +SKIP
>>> store.get_bytes(digest)                       # doctest: +SKIP
b'hello'
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from mlwright.errors import ArtifactError

CHUNK = 1 << 20
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def check_digest(key: str) -> str:
    """Refuse anything but a sha256 hex digest: no paths, no traversal, no odd names."""
    if not isinstance(key, str) or not _DIGEST.match(key):
        raise ArtifactError(f"Artifact key {key!r} is not a sha256 digest (64 lowercase hex "
                            "characters); artifacts are addressed by content only.")
    return key


class ArtifactStore:
    """Content-addressed bytes in a local folder or at any fsspec URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.fs, root = fsspec.core.url_to_fs(url)
        except (ValueError, ImportError) as exc:
            raise ArtifactError(f"Cannot use artifact store URL '{url}': {exc}. Check "
                                "`artifact_url` in mlwright.toml or MLWRIGHT_ARTIFACT_URL.") from None
        self.root = root.rstrip("/")
        self.local = isinstance(self.fs, LocalFileSystem)

    def _path(self, digest: str) -> str:
        check_digest(digest)
        return f"{self.root}/sha256/{digest[:2]}/{digest}"

    def _temp(self) -> str:
        self.fs.makedirs(f"{self.root}/tmp", exist_ok=True)
        return f"{self.root}/tmp/{uuid.uuid4().hex}"

    def _commit(self, temp: str, digest: str) -> str:
        final = self._path(digest)
        if self.fs.exists(final):
            self.fs.rm(temp)
            return digest
        self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        if self.local:
            Path(temp).replace(final)  # atomic on one filesystem
        else:
            self.fs.mv(temp, final)
        return digest

    def put_bytes(self, data: bytes) -> str:
        """Store bytes; returns their digest. Storing the same bytes twice is a no-op."""
        digest = hashlib.sha256(data).hexdigest()
        if self.exists(digest):
            return digest
        temp = self._temp()
        try:
            with self.fs.open(temp, "wb") as handle:
                handle.write(data)
            return self._commit(temp, digest)
        except BaseException:
            self._discard(temp)
            raise

    def put_file(self, path: str | os.PathLike[str]) -> str:
        """Store a local file, hashing it while it is copied (one pass, 1 MiB at a time)."""
        temp = self._temp()
        hasher = hashlib.sha256()
        try:
            with Path(path).open("rb") as source, self.fs.open(temp, "wb") as target:
                while chunk := source.read(CHUNK):
                    hasher.update(chunk)
                    target.write(chunk)
            return self._commit(temp, hasher.hexdigest())
        except BaseException:
            self._discard(temp)
            raise

    def _discard(self, temp: str) -> None:
        with contextlib.suppress(OSError):  # FileNotFoundError included
            self.fs.rm(temp)

    def exists(self, digest: str) -> bool:
        return bool(self.fs.exists(self._path(digest)))

    def _open(self, digest: str) -> Any:
        try:
            return self.fs.open(self._path(digest), "rb")
        except FileNotFoundError:
            raise ArtifactError(f"Artifact sha256:{digest[:12]}… is missing from {self.url}; "
                                "it was deleted or the store URL changed.") from None

    def get_bytes(self, digest: str) -> bytes:
        """The bytes of an artifact, refused if they no longer hash to ``digest``."""
        with self._open(digest) as handle:
            data: bytes = handle.read()
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise self._corrupted(digest, actual)
        return data

    def verify(self, digest: str) -> None:
        """Re-hash a stored artifact (streamed) and raise if it changed."""
        hasher = hashlib.sha256()
        with self._open(digest) as handle:
            while chunk := handle.read(CHUNK):
                hasher.update(chunk)
        if hasher.hexdigest() != digest:
            raise self._corrupted(digest, hasher.hexdigest())

    def _corrupted(self, digest: str, actual: str) -> ArtifactError:
        return ArtifactError(f"Artifact sha256:{digest[:12]}… in {self.url} is corrupted: its "
                             f"content hashes to {actual[:12]}…; restore it from a backup or "
                             "register the data again.")

    def local_path(self, digest: str) -> Path | None:
        """The object's path on local disk (for DuckDB or memory-mapping), else None."""
        return Path(self._path(digest)) if self.local else None

    def size(self, digest: str) -> int:
        try:
            return int(self.fs.size(self._path(digest)))
        except FileNotFoundError:
            raise ArtifactError(f"Artifact sha256:{digest[:12]}… is missing from {self.url}.") from None

    def delete(self, digest: str) -> None:
        """Remove an artifact; a missing one is fine."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self._path(digest))

    def digests(self) -> Iterator[str]:
        """Every stored digest."""
        base = f"{self.root}/sha256"
        if not self.fs.exists(base):
            return
        for path in self.fs.find(base):
            name = str(path).rsplit("/", 1)[-1]
            if _DIGEST.match(name):
                yield name
