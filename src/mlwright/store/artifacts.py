"""The content-addressed artifact store: bytes named by their sha256, over any fsspec backend.

Layout: ``<root>/sha256/<first two hex>/<64 hex>``. A write goes to a temporary name under
``<root>/tmp/`` and is moved into place only when complete, so a reader never sees half an
object; every read re-hashes, so a corrupted object is refused rather than used.

>>> store = ArtifactStore("memory://doctest-artifacts")
>>> digest = store.put_bytes(b"hello")
>>> digest[:12], store.get_bytes(digest)
('2cf24dba5fb0', b'hello')
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlwright.errors import ArtifactError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

CHUNK = 1 << 20
_DIGEST = re.compile(r"[0-9a-f]{64}")
_FIX = "Check `artifact_url` in mlwright.toml or MLWRIGHT_ARTIFACT_URL."


def check_digest(key: str) -> str:
    """Return ``key`` if it is a sha256 hex digest (64 lowercase hex characters), else raise.

    Anything else (``"../../etc/passwd"``, slashes, upper case, 63 characters) is refused,
    so a key can never name a path outside the store.

    >>> check_digest("0" * 64) == "0" * 64
    True
    """
    if not isinstance(key, str) or not _DIGEST.fullmatch(key):
        shown = repr(key) if len(repr(key)) <= 80 else repr(key)[:77] + "..."
        raise ArtifactError(f"Artifact key {shown} is not a sha256 digest (64 lowercase hex "
                            "characters); artifacts are addressed by their content hash only.")
    return key


def _short(digest: str) -> str:
    return f"sha256:{digest[:12]}…"


class ArtifactStore:
    """Content-addressed bytes in a local folder or at any fsspec URL.

    >>> store = ArtifactStore("memory://doctest-store")
    >>> digest = store.put_bytes(b"abc")
    >>> store.exists(digest), store.size(digest)
    (True, 3)
    """

    def __init__(self, url: str) -> None:
        import fsspec  # imported here: `import mlwright` stays fast
        from fsspec.implementations.local import LocalFileSystem

        self.url = url
        location = url if "://" in url else str(Path(url).expanduser())
        try:
            fs, root = fsspec.core.url_to_fs(location)
        except ImportError as exc:
            raise ArtifactError(f"Cannot use the artifact store at '{url}': {exc}. Install the "
                                f"fsspec backend it needs. {_FIX}") from None
        except ValueError as exc:
            raise ArtifactError(f"Cannot use the artifact store at '{url}': {exc}. {_FIX}") from None
        self.fs: AbstractFileSystem = fs
        self.root: str = str(root).rstrip("/") or "/"
        self._local = isinstance(fs, LocalFileSystem)

    def __repr__(self) -> str:
        return f"ArtifactStore({self.url!r})"

    def object_path(self, digest: str) -> str:
        """Where the object lives in the backend (after checking ``digest``)."""
        check_digest(digest)
        return f"{self.root}/sha256/{digest[:2]}/{digest}"

    # -- writing ---------------------------------------------------------------------------

    def put_bytes(self, data: bytes) -> str:
        """Store ``data``; return its hex digest. Storing the same bytes again is a no-op.

        >>> ArtifactStore("memory://doctest-put").put_bytes(b"")[:8]
        'e3b0c442'
        """
        digest = hashlib.sha256(data).hexdigest()
        if self._present(digest, len(data)):
            return digest
        return self._write([data], expected=digest)

    def put_file(self, path: str | os.PathLike[str]) -> str:
        """Store a local file, hashed and copied 1 MiB at a time; return its hex digest."""
        source = Path(path)
        try:
            hasher, size = hashlib.sha256(), 0
            with source.open("rb") as handle:
                while chunk := handle.read(CHUNK):
                    hasher.update(chunk)
                    size += len(chunk)
        except OSError as exc:
            raise ArtifactError(f"Cannot read {source} to store it: {exc.strerror or exc}.") from None
        digest = hasher.hexdigest()
        if self._present(digest, size):
            return digest
        with source.open("rb") as handle:
            return self._write(iter(lambda: handle.read(CHUNK), b""), expected=digest)

    def _present(self, digest: str, size: int) -> bool:
        # A stored object of the wrong size (a truncated copy) is rewritten, not trusted.
        path = self.object_path(digest)
        try:
            present = int(self.fs.size(path)) == size
        except OSError:
            return False  # absent or unreadable: the write that follows says which
        if present and self._local:
            # Stored again = used again: a fresh time keeps `gc`'s grace period from taking an
            # old unreferenced object that a registration in flight is about to reference.
            with contextlib.suppress(OSError):
                os.utime(path)
        return present

    def _write(self, chunks: Iterable[bytes], *, expected: str) -> str:
        temp = f"{self.root}/tmp/{uuid.uuid4().hex}.part"
        hasher = hashlib.sha256()
        try:
            self.fs.makedirs(f"{self.root}/tmp", exist_ok=True)
            if self._local:
                with Path(temp).open("wb") as target:
                    for chunk in chunks:
                        hasher.update(chunk)
                        target.write(chunk)
                    target.flush()
                    os.fsync(target.fileno())  # the bytes are on disk before the name is
            else:
                with self.fs.open(temp, "wb") as target:
                    for chunk in chunks:
                        hasher.update(chunk)
                        target.write(chunk)
            if hasher.hexdigest() != expected:
                raise ArtifactError(f"The content changed while it was being stored (expected "
                                    f"{_short(expected)}, got {_short(hasher.hexdigest())}); "
                                    "store it again once nothing is writing to it.")
            final = self.object_path(expected)
            self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
            if self._local:
                Path(temp).replace(final)  # atomic within one filesystem
            else:
                self.fs.mv(temp, final)
        except OSError as exc:
            raise ArtifactError(f"Cannot write to the artifact store at {self.url}: "
                                f"{exc.strerror or exc}. {_FIX}") from None
        finally:
            self._discard(temp)
        return expected

    def _discard(self, temp: str) -> None:
        try:
            if self.fs.exists(temp):
                self.fs.rm_file(temp)
        except OSError:
            pass  # best effort: a leftover under tmp/ is never read as an object

    # -- reading ---------------------------------------------------------------------------

    def exists(self, digest: str) -> bool:
        """Whether an object with this digest is stored (its content is not checked)."""
        return bool(self.fs.exists(self.object_path(digest)))

    def _missing(self, digest: str) -> ArtifactError:
        return ArtifactError(f"Artifact {_short(digest)} is missing from {self.url}; it was "
                             "deleted, or the store URL changed since it was written.")

    def _corrupted(self, digest: str, actual: str) -> ArtifactError:
        return ArtifactError(f"Artifact {_short(digest)} in {self.url} is corrupted: expected "
                             f"{digest}, got {actual}; restore it from a backup or store the "
                             "data again.")

    @contextlib.contextmanager
    def _reading(self, digest: str) -> Iterator[str]:
        """The object's backend path, with read errors turned into ArtifactErrors."""
        path = self.object_path(digest)
        try:
            yield path
        except (FileNotFoundError, NotADirectoryError):
            raise self._missing(digest) from None
        except OSError as exc:
            raise ArtifactError(f"Cannot read artifact {_short(digest)} from {self.url}: "
                                f"{exc.strerror or exc}. {_FIX}") from None

    def _open(self, digest: str) -> Any:
        with self._reading(digest) as path:
            return self.fs.open(path, "rb")

    def get_bytes(self, digest: str) -> bytes:
        """The stored bytes, refused with :class:`ArtifactError` unless they hash to ``digest``."""
        with self._reading(digest) as path:
            data = bytes(self.fs.cat_file(path))
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise self._corrupted(digest, actual)
        return data

    def open_verified(self, digest: str) -> VerifiedReader:
        """A streaming reader that raises :class:`ArtifactError` at the end if the bytes read
        do not hash to ``digest``. Read it to the end before trusting what it gave.

        >>> store = ArtifactStore("memory://doctest-open")
        >>> with store.open_verified(store.put_bytes(b"abc")) as reader:
        ...     reader.read()
        b'abc'
        """
        return VerifiedReader(self._open(digest), digest, self)

    def verify(self, digest: str) -> None:
        """Re-hash a stored object (streamed) and raise :class:`ArtifactError` if it changed."""
        with self.open_verified(digest) as reader:
            while reader.read(CHUNK):
                pass

    def local_path(self, digest: str) -> Path | None:
        """The object's path on local disk (for DuckDB or memory-mapping), or None when the
        backend is not local. The content is not re-hashed; call :meth:`verify` for that."""
        location = self.object_path(digest)
        if not self._local:
            return None
        path = Path(location)
        if not path.is_file():
            raise self._missing(digest)
        return path

    def size(self, digest: str) -> int:
        """The stored object's size in bytes."""
        with self._reading(digest) as path:
            return int(self.fs.size(path))

    def delete(self, digest: str) -> None:
        """Remove an object; deleting a missing one is fine."""
        path = self.object_path(digest)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            self.fs.rm_file(path)

    def digests(self) -> Iterator[str]:
        """Every stored digest, in sorted order."""
        base = f"{self.root}/sha256"
        if not self.fs.exists(base):
            return iter(())
        names = (str(path).rsplit("/", 1)[-1] for path in self.fs.find(base))
        return iter(sorted(name for name in names if _DIGEST.fullmatch(name)))


class VerifiedReader(io.RawIOBase):
    """A read-only stream over one artifact that checks its hash when it reaches the end."""

    def __init__(self, handle: Any, digest: str, store: ArtifactStore) -> None:
        super().__init__()
        self._handle = handle
        self._digest = digest
        self._store = store
        self._hasher = hashlib.sha256()
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data: bytes = self._handle.read(len(view))
        if data:
            self._hasher.update(data)
            view[: len(data)] = data
        elif len(view) and not self._checked:
            self._checked = True
            actual = self._hasher.hexdigest()
            if actual != self._digest:
                raise self._store._corrupted(self._digest, actual)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._handle.close()
        super().close()
