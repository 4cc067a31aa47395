"""A model version as one self-contained file, and that file registered elsewhere.

A bundle is a ``.tar.gz`` holding ``manifest.json`` (everything the registry knows about
the version, and every file's path, sha256 and size) and the version's files under
``files/``. Importing checks the whole bundle against its manifest before it registers
anything: a file changed by one byte, a missing or extra file, a path that would escape the
folder (``../``, an absolute path, a link) is refused with the bundle and file named.

>>> bundle = export_version("delays@3", "delays-3.tar.gz", workspace=ws)      # doctest: +SKIP
>>> bundle.manifest_sha256[:12]                                               # doctest: +SKIP
'5b1f0c9e2a44'
>>> v = import_bundle("delays-3.tar.gz", workspace=other)                     # doctest: +SKIP
>>> v.ref, v.lineage["imported_from"]["model"]                                # doctest: +SKIP
('delays@1', 'delays@3')

Exporting the same version twice writes the same bytes; importing the same bundle twice
registers two versions that share their stored files (the store is content-addressed).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import lzma
import re
import shutil
import tarfile
import tempfile
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

from mlwright.errors import RegistryError
from mlwright.registry.flavors import FLAVORS
from mlwright.registry.signature import Signature
from mlwright.registry.versions import (
    ModelVersionInfo,
    WorkspaceLike,
    get_model_version,
    manifest_digest,
    register_folder,
)
from mlwright.workspace import Workspace, as_workspace

FORMAT = "mlwright-model-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
FILES = "files"
_MAX_MANIFEST = 16 << 20
_CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")
# What a manifest must hold: key -> (type, may be null, how to say it in an error).
_FIELDS: dict[str, tuple[type, bool, str]] = {
    "format_version": (int, False, "an integer"), "model": (str, False, "a model name"),
    "version": (int, False, "a version number"), "flavor": (str, False, "a flavor name"),
    "flavor_meta": (dict, False, "an object"), "manifest_digest": (str, False, "a sha256"),
    "files": (list, False, "a list of files"), "signature": (dict, True, "an object or null"),
    "metrics": (dict, False, "an object"), "params": (dict, False, "an object"),
    "lineage": (dict, False, "an object"), "gates": (dict, True, "an object or null"),
    "description": (str, True, "a string or null"),
}


@dataclass(frozen=True)
class ExportedBundle:
    """A bundle written by :func:`export_version`."""

    path: Path
    ref: str
    manifest_sha256: str
    files: int
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "ref": self.ref, "manifest_sha256": self.manifest_sha256,
                "files": self.files, "size": self.size}


# -- export --------------------------------------------------------------------------------


def export_version(ref: str, path: str | Path, *, workspace: WorkspaceLike = None) -> ExportedBundle:
    """Write version ``ref`` to ``path`` (a ``.tar.gz``; a folder gets ``NAME-N.tar.gz``).

    The file appears complete or not at all: it is written under a temporary name beside
    ``path`` and renamed. Every stored file is re-hashed on the way out.
    """
    ws = as_workspace(workspace)
    info = get_model_version(ref, workspace=ws)
    target = Path(path)
    if target.is_dir():
        target = target / f"{info.name}-{info.version}.tar.gz"
    manifest = json.dumps(_manifest(info), indent=2, sort_keys=True).encode() + b"\n"
    created = info.created_at if info.created_at.tzinfo else info.created_at.replace(tzinfo=UTC)
    mtime = int(created.timestamp())
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")
    try:
        # gzip without a name or a time in its header: the same version, the same bytes.
        with partial.open("wb") as handle, \
                gzip.GzipFile(filename="", mode="wb", fileobj=handle, mtime=0) as compressed, \
                tarfile.open(fileobj=compressed, mode="w|", format=tarfile.PAX_FORMAT) as archive:
            archive.addfile(_member(MANIFEST, len(manifest), mtime), io.BytesIO(manifest))
            for relative, entry in sorted(info.files.items()):
                _add_stored(ws, archive, info, relative, entry, mtime)
        partial.replace(target)
    except OSError as exc:
        raise RegistryError(f"Cannot write the bundle of {info.ref} to {target}: "
                            f"{exc.strerror or exc}.") from None
    finally:
        partial.unlink(missing_ok=True)
    return ExportedBundle(target, info.ref, hashlib.sha256(manifest).hexdigest(), len(info.files),
                          target.stat().st_size)


def _manifest(info: ModelVersionInfo) -> dict[str, Any]:
    from mlwright import __version__

    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "mlwright_version": __version__,
        "model": info.name, "version": info.version, "flavor": info.flavor,
        "flavor_meta": info.flavor_meta, "manifest_digest": info.manifest_digest,
        "signature": info.signature.to_dict() if info.signature else None,
        "metrics": info.metrics, "params": info.params, "lineage": info.lineage,
        "gates": info.gates, "gates_passed": info.gates_passed, "description": info.description,
        "created_at": info.created_at.isoformat(), "created_by": info.created_by,
        "files": [{"path": relative, "sha256": entry["digest"], "size": entry["size"]}
                  for relative, entry in sorted(info.files.items())],
    }


def _member(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.size, member.mtime, member.mode = size, mtime, 0o644
    return member


def _add_stored(ws: Workspace, archive: tarfile.TarFile, info: ModelVersionInfo, relative: str,
                entry: dict[str, Any], mtime: int) -> None:
    digest, size = entry["digest"], int(entry["size"])
    stored = ws.artifacts.size(digest)
    if stored != size:
        raise RegistryError(f"File {relative!r} of {info.ref} is {stored} bytes in the artifact "
                            f"store, but the registry recorded {size}; the artifact is damaged: "
                            "restore it or register the model again.")
    with ws.artifacts.open_verified(digest) as reader, io.BufferedReader(reader, _CHUNK) as source:
        archive.addfile(_member(f"{FILES}/{relative}", size, mtime), source)
        source.read(1)  # reaching the end makes the reader check the hash (ArtifactError)


# -- import --------------------------------------------------------------------------------


def import_bundle(path: str | Path, name: str | None = None, *,
                  workspace: WorkspaceLike = None) -> ModelVersionInfo:
    """Register the bundle at ``path`` as the next version of ``name`` (default: its model).

    The version keeps the bundle's flavor, signature, metrics, parameters, gates and
    description; its lineage says where it was imported from and keeps the original lineage
    under ``"origin"``. Nothing is registered unless every file matches the manifest.
    """
    source = Path(path)
    ws = as_workspace(workspace)
    if not source.is_file():
        raise RegistryError(f"No bundle at {source}; give the .tar.gz that `mlwright model "
                            "export` wrote.")
    scratch = Path(tempfile.mkdtemp(prefix="mlwright-bundle-"))
    try:
        raw, found = _unpack(source, scratch / FILES)
        manifest = _check_manifest(source, raw)
        _check_files(source, manifest, found)
        origin = f"{manifest['model']}@{manifest['version']}"
        lineage = {"imported_from": {"bundle": source.name, "model": origin,
                                     "manifest_sha256": hashlib.sha256(raw).hexdigest(),
                                     "mlwright_version": manifest.get("mlwright_version")},
                   "origin": manifest["lineage"]}
        signature = manifest["signature"]
        return register_folder(
            name or manifest["model"], scratch / FILES, flavor=manifest["flavor"],
            flavor_meta=manifest["flavor_meta"],
            signature=Signature.from_dict(signature) if signature else None,
            metrics=manifest["metrics"], params=manifest["params"], lineage=lineage,
            gates=manifest["gates"], description=manifest["description"], workspace=ws)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _unpack(source: Path, folder: Path) -> tuple[bytes, dict[str, tuple[str, int]]]:
    """The manifest's bytes and ``{path: (sha256, size)}`` of the files, unpacked into
    ``folder`` in one pass over the archive; any entry that is not a plain file at a plain
    relative path is refused before anything is written for it."""
    raw: bytes | None = None
    found: dict[str, tuple[str, int]] = {}
    seen: set[str] = set()
    try:
        with tarfile.open(source, mode="r|*") as archive:
            for member in archive:
                parts = _parts(source, member.name, "entry")
                normal = "/".join(parts)
                if normal in seen:
                    raise RegistryError(f"Bundle {source} holds {normal!r} twice; a bundle "
                                        "written by mlwright never does: it was altered.")
                seen.add(normal)
                if member.isdir() and parts[0] == FILES:
                    continue
                if not member.isreg():
                    kind = "a link" if member.issym() or member.islnk() else "not a plain file"
                    raise RegistryError(f"Bundle {source} holds {member.name!r}, which is {kind}; "
                                        "bundles hold plain files only, so it is refused.")
                handle = archive.extractfile(member)
                assert handle is not None  # a regular file always has one
                if normal == MANIFEST:
                    if member.size > _MAX_MANIFEST:
                        raise RegistryError(f"Bundle {source} has a {member.size:,}-byte "
                                            "manifest.json; that is no mlwright manifest.")
                    raw = handle.read()
                elif parts[0] == FILES and len(parts) > 1:
                    found["/".join(parts[1:])] = _extract(handle, folder.joinpath(*parts[1:]))
                else:
                    raise RegistryError(f"Bundle {source} holds {member.name!r}, which is no "
                                        f"part of an mlwright bundle ({MANIFEST} and {FILES}/ "
                                        "only).")
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as exc:
        raise RegistryError(f"Bundle {source} cannot be read ({type(exc).__name__}: {exc}); give "
                            "the .tar.gz that `mlwright model export` wrote, whole.") from None
    if raw is None:
        raise RegistryError(f"Bundle {source} has no {MANIFEST}; it is not an mlwright bundle "
                            "(write one with `mlwright model export`).")
    return raw, found


def _parts(source: Path, name: str, what: str) -> tuple[str, ...]:
    """The components of a relative POSIX path, refusing anything that could leave its folder."""
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if (name.startswith("/") or "\\" in name or "\x00" in name
            or re.match(r"^[A-Za-z]:", name) or not parts or ".." in parts):
        raise RegistryError(f"Bundle {source} has an {what} with the path {name!r}, which would "
                            "land outside the folder it is unpacked into; it is refused.")
    return parts


def _extract(handle: Any, target: Path) -> tuple[str, int]:
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with target.open("xb") as out:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return digest.hexdigest(), size


def _check_manifest(source: Path, raw: bytes) -> dict[str, Any]:
    def bad(problem: str) -> RegistryError:
        return RegistryError(f"Bundle {source} has an invalid {MANIFEST}: {problem}. Nothing was "
                             "imported; export the version again.")

    try:
        manifest = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise bad(f"it is not JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RegistryError(f"Bundle {source} is not an mlwright model bundle (its {MANIFEST} "
                            f"does not say format {FORMAT!r}).")
    version = manifest.get("format_version")
    if isinstance(version, int) and version > FORMAT_VERSION:
        raise RegistryError(f"Bundle {source} has format version {version}, written by mlwright "
                            f"{manifest.get('mlwright_version')}; this mlwright reads format "
                            f"{FORMAT_VERSION}: upgrade mlwright to import it.")
    for key, (kind, nullable, shown) in _FIELDS.items():
        value = manifest.get(key)
        if not ((isinstance(value, kind) and not isinstance(value, bool))
                or (nullable and value is None)):
            raise bad(f"{key!r} is {value!r}, expected {shown}")
    if version != FORMAT_VERSION:
        raise bad(f"format_version is {version!r}, expected {FORMAT_VERSION}")
    if manifest["flavor"] not in FLAVORS:
        raise bad(f"flavor {manifest['flavor']!r} is none of {', '.join(FLAVORS)}")
    for metric, value in manifest["metrics"].items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise bad(f"metric {metric!r} is {value!r}, expected a number")
    if manifest["signature"] is not None:
        try:
            Signature.from_dict(manifest["signature"])
        except (KeyError, TypeError) as exc:
            raise bad(f"its signature cannot be read ({type(exc).__name__}: {exc})") from None
    files: dict[str, dict[str, Any]] = {}
    for entry in manifest["files"]:
        path = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(path, str):
            raise bad(f"a file entry is {entry!r}, expected {{'path', 'sha256', 'size'}}")
        if "/".join(_parts(source, path, "manifest file")) != path:
            raise bad(f"file path {path!r} is not in its plain form")
        if path in files:
            raise bad(f"it lists {path!r} twice")
        sha, size = entry.get("sha256"), entry.get("size")
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise bad(f"the sha256 of {path!r} is {sha!r}, expected 64 lowercase hex characters")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise bad(f"the size of {path!r} is {size!r}, expected a byte count")
        files[path] = {"digest": sha, "size": size}
    if not files:
        raise bad("it lists no file")
    if manifest_digest(files) != manifest["manifest_digest"]:
        raise bad(f"its manifest_digest {manifest['manifest_digest']} does not match its file list "
                  f"(which hashes to {manifest_digest(files)})")
    recorded = manifest["flavor_meta"].get("files") or {}
    for path, sha in recorded.items() if isinstance(recorded, dict) else ():
        if files.get(path, {}).get("digest") != sha:
            raise bad(f"the {manifest['flavor']} flavor recorded {path!r} with sha256 {sha}, but "
                      f"the file list says {files.get(path, {}).get('digest', 'nothing')}")
    manifest["files"] = files
    return manifest


def _check_files(source: Path, manifest: dict[str, Any], found: dict[str, tuple[str, int]]) -> None:
    listed: dict[str, dict[str, Any]] = manifest["files"]
    missing = sorted(set(listed) - set(found))
    if missing:
        raise RegistryError(f"Bundle {source} is missing {FILES}/{missing[0]}, which its manifest "
                            f"lists ({len(missing)} missing in all); nothing was imported: export "
                            "the version again.")
    extra = sorted(set(found) - set(listed))
    if extra:
        raise RegistryError(f"Bundle {source} holds {FILES}/{extra[0]}, which its manifest does "
                            "not list; it was altered, so nothing was imported.")
    for path, entry in sorted(listed.items()):
        sha, size = found[path]
        if (sha, size) != (entry["digest"], entry["size"]):
            raise RegistryError(
                f"Bundle {source}: {FILES}/{path} does not match its manifest: expected sha256 "
                f"{entry['digest']} ({entry['size']:,} bytes), got {sha} ({size:,} bytes). The "
                "bundle was altered or damaged; nothing was imported: export the version again.")
