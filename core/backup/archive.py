"""The backup archive: a manifest and one BSON stream per collection, in a .tar.gz.

`backup-<database>-<UTC time>.tar.gz` holds `manifest.json` first, then one
`collections/<name>.bson` per collection: the documents exactly as the server stored them,
concatenated (the layout of mongodump's .bson files). The manifest (Extended JSON) lists every
collection with its document count, size, SHA-256, options and index definitions, plus the
database name, the app version and whether the documents were read from one snapshot.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import IO, Any

from bson import json_util
from bson.json_util import CANONICAL_JSON_OPTIONS

FORMAT = "interview-platform-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MEMBER_PREFIX = "collections/"
MEMBER_SUFFIX = ".bson"


class BackupError(RuntimeError):
    """A backup or restore that cannot go on; the message says why in one line."""


def app_version() -> str:
    try:
        return metadata.version("interview-platform")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True, slots=True)
class CollectionEntry:
    name: str
    count: int
    size: int
    sha256: str
    options: dict[str, Any] = field(default_factory=dict)
    indexes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def member(self) -> str:
        return MEMBER_PREFIX + self.name + MEMBER_SUFFIX


@dataclass(frozen=True, slots=True)
class Manifest:
    database: str
    created_at: datetime
    app_version: str
    consistent: bool
    collections: list[CollectionEntry]

    def to_json(self) -> bytes:
        data = {
            "format": FORMAT,
            "formatVersion": FORMAT_VERSION,
            "appVersion": self.app_version,
            "database": self.database,
            "createdAt": self.created_at.isoformat(),
            "consistent": self.consistent,
            "collections": [
                {
                    "name": c.name,
                    "count": c.count,
                    "bytes": c.size,
                    "sha256": c.sha256,
                    "options": c.options,
                    "indexes": c.indexes,
                }
                for c in self.collections
            ],
        }
        return json_util.dumps(data, json_options=CANONICAL_JSON_OPTIONS, indent=2).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        try:
            data = json_util.loads(raw)
            if data.get("format") != FORMAT:
                raise BackupError("manifest.json is not an Interview Platform backup manifest")
            version = int(data["formatVersion"])
            if version > FORMAT_VERSION:
                raise BackupError(
                    f"the archive has format version {version}; this version reads up to "
                    f"{FORMAT_VERSION}"
                )
            return cls(
                database=str(data["database"]),
                created_at=datetime.fromisoformat(data["createdAt"]),
                app_version=str(data["appVersion"]),
                consistent=bool(data["consistent"]),
                collections=[
                    CollectionEntry(
                        name=str(c["name"]),
                        count=int(c["count"]),
                        size=int(c["bytes"]),
                        sha256=str(c["sha256"]),
                        options=dict(c.get("options") or {}),
                        indexes=list(c.get("indexes") or []),
                    )
                    for c in data["collections"]
                ],
            )
        except BackupError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise BackupError(f"manifest.json is not valid ({exc.__class__.__name__})") from None


# What reading a damaged .tar.gz raises (gzip CRC or length, a cut stream, bad tar headers).
DAMAGE = (tarfile.TarError, OSError, EOFError, zlib.error, ValueError)


def read(stream: IO[bytes], size: int, name: str) -> bytes:
    """`size` bytes (fewer at the end) of an archive member; damage becomes a BackupError."""
    try:
        return stream.read(size)
    except DAMAGE as exc:
        detail = str(exc) or exc.__class__.__name__
        raise BackupError(f"{name}: the archive is damaged ({detail})") from None


def iter_documents(stream: IO[bytes], name: str) -> Iterator[bytes]:
    """The raw BSON documents of a .bson stream, each checked for its length and terminator."""
    while True:
        head = read(stream, 4, f"collection {name}")
        if not head:
            return
        if len(head) < 4:
            raise BackupError(f"collection {name}: truncated document")
        length = int.from_bytes(head, "little")
        if length < 5:
            raise BackupError(f"collection {name}: a document has an invalid length")
        rest = read(stream, length - 4, f"collection {name}")
        if len(rest) != length - 4 or rest[-1:] != b"\x00":
            raise BackupError(f"collection {name}: truncated document")
        yield head + rest


def archive_name(database: str, created_at: datetime) -> str:
    return f"backup-{database}-{created_at:%Y%m%dT%H%M%S%fZ}.tar.gz"


def list_backups(directory: Path, database: str) -> list[Path]:
    """The archives of `database` in `directory`, oldest first (the names sort by time)."""
    return sorted(directory.glob(f"backup-{database}-*.tar.gz"))


def prune(directory: Path, database: str, keep: int) -> list[Path]:
    """Delete all but the newest `keep` archives of `database`; return what was deleted."""
    old = list_backups(directory, database)[:-keep] if keep > 0 else []
    for path in old:
        path.unlink(missing_ok=True)
    return old


def _open(path: Path) -> tarfile.TarFile:
    if not path.is_file():
        raise BackupError(f"{path}: no such file")
    try:
        return tarfile.open(path, "r:gz")
    except DAMAGE as exc:
        raise BackupError(f"{path.name} is not a readable .tar.gz archive ({exc})") from None


def members(path: Path) -> Iterator[tuple[str, IO[bytes] | None]]:
    """(name, stream) of each archive member in order; damage becomes a BackupError."""
    with _open(path) as tar:
        try:
            for member in tar:
                stream = tar.extractfile(member) if member.isfile() else None
                yield member.name, stream
        except DAMAGE as exc:
            detail = str(exc) or exc.__class__.__name__
            raise BackupError(f"{path.name} is damaged ({detail})") from None


def verify_archive(path: Path) -> Manifest:
    """Read the whole archive and check it against its manifest; the manifest when all match."""
    manifest: Manifest | None = None
    seen: set[str] = set()
    for name, stream in members(path):
        if name == MANIFEST and stream is not None:
            manifest = Manifest.from_json(read(stream, -1, MANIFEST))
            continue
        if manifest is None:
            raise BackupError(f"{path.name}: manifest.json must come first in the archive")
        entry = next((c for c in manifest.collections if c.member == name), None)
        if entry is None or stream is None:
            raise BackupError(f"{path.name}: {name} is not listed in the manifest")
        digest = hashlib.sha256()
        count = 0
        for raw in iter_documents(stream, entry.name):
            digest.update(raw)
            count += 1
        if digest.hexdigest() != entry.sha256:
            raise BackupError(
                f"collection {entry.name}: SHA-256 differs from the manifest (the archive is "
                "damaged)"
            )
        if count != entry.count:
            raise BackupError(
                f"collection {entry.name}: {count} documents, the manifest says {entry.count}"
            )
        seen.add(entry.name)
    if manifest is None:
        raise BackupError(f"{path.name}: no manifest.json in the archive")
    missing = [c.name for c in manifest.collections if c.name not in seen]
    if missing:
        raise BackupError(f"{path.name}: collections missing from the archive: {missing}")
    return manifest


def write_archive(folder: Path, manifest: Manifest, directory: Path) -> Path:
    """Pack folder/<name>.bson under `manifest` into `directory`, atomically; the new path."""
    partial = folder / "archive.tar.gz"
    with tarfile.open(partial, "w:gz") as tar:
        raw = manifest.to_json()
        info = tarfile.TarInfo(MANIFEST)
        info.size = len(raw)
        info.mtime = int(manifest.created_at.timestamp())
        tar.addfile(info, io.BytesIO(raw))
        for entry in manifest.collections:
            tar.add(folder / (entry.name + MEMBER_SUFFIX), arcname=entry.member)
    with partial.open("rb") as written:
        os.fsync(written.fileno())
    target = directory / archive_name(manifest.database, manifest.created_at)
    os.replace(partial, target)
    return target
