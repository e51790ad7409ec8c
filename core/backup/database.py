"""Backups of the whole database into one archive, and restores from it.

A backup reads every collection from one snapshot. A restore checks the whole archive against
its manifest before it writes anything, builds the copy in a staging database, checks the
counts there, and only then moves each collection into place. It refuses a database that holds
documents unless told to replace it.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure, PyMongoError
from pymongo.read_concern import ReadConcern

from core.backup.archive import (
    MEMBER_SUFFIX,
    BackupError,
    CollectionEntry,
    Manifest,
    app_version,
    iter_documents,
    members,
    prune,
    verify_archive,
    write_archive,
)
from core.settings import Settings
from core.tasks import JobRegistry

log = logging.getLogger(__name__)

BACKUP_JOB = "backup.create"
# MongoDB answers IllegalOperation (20) to a transaction on a standalone server.
NO_TRANSACTIONS = {20}
INSERT_BATCH_BYTES = 8 * 1024 * 1024
INSERT_BATCH_DOCS = 1000
RAW = CodecOptions(document_class=RawBSONDocument)


def _index_specs(indexes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Index definitions as createIndexes takes them (the implicit _id index left out)."""
    return [
        {k: v for k, v in spec.items() if k not in ("v", "ns")}
        for spec in indexes
        if spec.get("name") != "_id_"
    ]


async def _collections(db: AsyncDatabase[Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    async for info in await db.list_collections():
        name = str(info["name"])
        if info.get("type", "collection") == "collection" and not name.startswith("system."):
            found.append((name, dict(info.get("options") or {})))
    return sorted(found)


async def _read(
    db: AsyncDatabase[Any],
    folder: Path,
    names: list[tuple[str, dict[str, Any]]],
    indexes: dict[str, list[dict[str, Any]]],
    session: AsyncClientSession | None,
) -> list[CollectionEntry]:
    entries = []
    for name, options in names:
        digest = hashlib.sha256()
        count = size = 0
        collection = db.get_collection(name, codec_options=RAW)
        with (folder / (name + MEMBER_SUFFIX)).open("wb") as out:
            async for doc in collection.find({}, session=session):
                raw = doc.raw
                out.write(raw)
                digest.update(raw)
                count += 1
                size += len(raw)
        entries.append(
            CollectionEntry(name, count, size, digest.hexdigest(), options, indexes[name])
        )
    return entries


async def dump(db: AsyncDatabase[Any], folder: Path) -> Manifest:
    """Write every collection of `db` as folder/<name>.bson; return the manifest.

    The documents come from one snapshot (a read-only transaction with read concern
    "snapshot"); a standalone server, which has no transactions, is read collection by
    collection and the manifest says `consistent: false`.
    """
    names = await _collections(db)
    # listCollections and listIndexes are not allowed inside a transaction: read them first.
    indexes = {}
    for name, _ in names:
        indexes[name] = [dict(spec) async for spec in await db[name].list_indexes()]
    created_at = datetime.now(UTC)
    consistent = True
    try:
        async with db.client.start_session() as session:
            async with await session.start_transaction(read_concern=ReadConcern("snapshot")):
                entries = await _read(db, folder, names, indexes, session)
    except OperationFailure as exc:
        if exc.code not in NO_TRANSACTIONS:
            raise BackupError(
                f"the snapshot could not be read to the end ({exc.code}: {exc}); on a large "
                "database use mongodump --oplog (see the README)"
            ) from None
        log.warning(
            "the server has no transactions (standalone): collections are read one by one, "
            "not from one snapshot"
        )
        consistent = False
        entries = await _read(db, folder, names, indexes, None)
    return Manifest(db.name, created_at, app_version(), consistent, entries)


async def create_backup(db: AsyncDatabase[Any], directory: Path, keep: int) -> Path:
    """One archive of every collection in `directory`, then keep only the newest `keep`."""
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".backup-") as work:
        manifest = await dump(db, Path(work))
        target = write_archive(Path(work), manifest, directory)
    removed = prune(directory, manifest.database, keep)
    log.info(
        "backup written",
        extra={
            "file": str(target),
            "collections": len(manifest.collections),
            "documents": sum(c.count for c in manifest.collections),
            "consistent": manifest.consistent,
            "removed": [p.name for p in removed],
        },
    )
    return target


async def document_counts(db: AsyncDatabase[Any]) -> dict[str, int]:
    """Documents per collection, of the collections that hold any."""
    counts = {}
    for name, _ in await _collections(db):
        count = await db[name].count_documents({})
        if count:
            counts[name] = count
    return counts


async def _load(staging: AsyncDatabase[Any], path: Path, manifest: Manifest) -> None:
    by_member = {c.member: c for c in manifest.collections}
    for entry in manifest.collections:
        await staging.create_collection(entry.name, **entry.options)
    for name, stream in members(path):
        member = by_member.get(name)
        if member is None or stream is None:
            continue
        collection = staging.get_collection(member.name, codec_options=RAW)
        batch: list[RawBSONDocument] = []
        size = 0
        for raw in iter_documents(stream, member.name):
            batch.append(RawBSONDocument(raw, RAW))
            size += len(raw)
            if len(batch) >= INSERT_BATCH_DOCS or size >= INSERT_BATCH_BYTES:
                await collection.insert_many(batch, ordered=True)
                batch, size = [], 0
        if batch:
            await collection.insert_many(batch, ordered=True)
    for entry in manifest.collections:
        specs = _index_specs(entry.indexes)
        if specs:
            await staging.command({"createIndexes": entry.name, "indexes": specs})
        stored = await staging[entry.name].count_documents({})
        if stored != entry.count:
            raise BackupError(
                f"collection {entry.name}: {stored} documents restored, the manifest says "
                f"{entry.count}"
            )


async def restore_backup(db: AsyncDatabase[Any], path: Path, *, force: bool = False) -> Manifest:
    """Restore `path` into `db`: verified first, built aside, then moved into place.

    A database with documents is refused unless `force`, which replaces all of it.
    """
    manifest = verify_archive(path)
    present = await document_counts(db)
    if present and not force:
        listed = ", ".join(f"{name}: {count}" for name, count in sorted(present.items()))
        raise BackupError(
            f"the database {db.name} is not empty ({listed}): restore into an empty database, "
            "or set FORCE=1 to replace it"
        )
    staging = db.client[f"{db.name[:40]}_restore_{secrets.token_hex(4)}"]
    try:
        await _load(staging, path, manifest)
    except PyMongoError as exc:
        await db.client.drop_database(staging.name)
        raise BackupError(f"the restore failed and changed nothing ({exc})") from None
    except BaseException:
        await db.client.drop_database(staging.name)
        raise
    for entry in manifest.collections:
        await db.client.admin.command(
            {
                "renameCollection": f"{staging.name}.{entry.name}",
                "to": f"{db.name}.{entry.name}",
                "dropTarget": True,
            }
        )
    kept = {c.name for c in manifest.collections}
    for name, _ in await _collections(db):
        if name not in kept:
            await db.drop_collection(name)
    await db.client.drop_database(staging.name)
    log.info(
        "backup restored",
        extra={
            "file": str(path),
            "database": db.name,
            "from_database": manifest.database,
            "created_at": manifest.created_at.isoformat(),
            "app_version": manifest.app_version,
            "documents": sum(c.count for c in manifest.collections),
            "replaced": bool(present),
        },
    )
    return manifest


def register_backup_job(jobs: JobRegistry, db: AsyncDatabase[Any], settings: Settings) -> None:
    """The scheduled backup (Celery beat runs it every BACKUP_INTERVAL_SEC)."""

    async def backup_job(payload: dict[str, Any]) -> None:
        await create_backup(db, settings.backup_path, settings.backup_keep)

    jobs.register(BACKUP_JOB, backup_job)
